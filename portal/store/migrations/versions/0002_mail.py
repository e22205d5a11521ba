"""mail: messages sent per invoice, reminder unsubscribes

Revision ID: 0002_mail
Revises: 0001
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_mail"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mail_sent",
        sa.Column("mail_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("rule", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("contact_id", sa.String(length=320), nullable=False),
        sa.Column("invoice_id", sa.String(length=200), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("mail_id", name=op.f("pk_mail_sent")),
    )
    with op.batch_alter_table("mail_sent", schema=None) as batch_op:
        batch_op.create_index("ix_mail_sent_customer_contact_kind", ["customer_id", "contact_id", "kind"],
                              unique=False)
        batch_op.create_index("ix_mail_sent_invoice_kind", ["invoice_id", "kind"], unique=False)
    op.create_table(
        "mail_unsubscribes",
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("contact_id", sa.String(length=320), nullable=False),
        sa.Column("unsubscribed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "contact_id", name=op.f("pk_mail_unsubscribes")),
    )


def downgrade() -> None:
    op.drop_table("mail_unsubscribes")
    with op.batch_alter_table("mail_sent", schema=None) as batch_op:
        batch_op.drop_index("ix_mail_sent_invoice_kind")
        batch_op.drop_index("ix_mail_sent_customer_contact_kind")
    op.drop_table("mail_sent")
