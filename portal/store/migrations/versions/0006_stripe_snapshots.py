"""stripe snapshots: the newest state of each Stripe object an event showed (order-independent events)

Revision ID: 0006_stripe_snapshots
Revises: 0002_payments
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_stripe_snapshots"
down_revision = "0002_payments"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stripe_snapshots",
        sa.Column("object_id", sa.String(length=255), nullable=False),
        sa.Column("attempt_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("intent", sa.String(length=255), nullable=False),
        sa.Column("charge", sa.String(length=255), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("object_id", name=op.f("pk_stripe_snapshots")),
    )
    with op.batch_alter_table("stripe_snapshots", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_stripe_snapshots_attempt_id"), ["attempt_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_stripe_snapshots_intent"), ["intent"], unique=False)
        batch_op.create_index(batch_op.f("ix_stripe_snapshots_charge"), ["charge"], unique=False)
    # Attempts from before this revision keep their status; their later events start the snapshots.


def downgrade() -> None:
    with op.batch_alter_table("stripe_snapshots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stripe_snapshots_charge"))
        batch_op.drop_index(batch_op.f("ix_stripe_snapshots_intent"))
        batch_op.drop_index(batch_op.f("ix_stripe_snapshots_attempt_id"))
    op.drop_table("stripe_snapshots")
