"""bounces: messages refused for good (at sending time or by a delivery status notification), and finding a
sent message by its Message-ID

Revision ID: 0012_bounces
Revises: 0010_selfservice (depends on 0002_mail)
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_bounces"
down_revision = "0010_selfservice"
branch_labels = None
depends_on = "0002_mail"  # alters mail_sent, which that branch creates


def upgrade() -> None:
    op.create_table(
        "mail_bounces",
        sa.Column("bounce_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("contact_id", sa.String(length=320), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("diagnostic", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("bounced_at", sa.DateTime(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("bounce_id", name=op.f("pk_mail_bounces")),
        sa.UniqueConstraint("message_id", "recipient", name=op.f("uq_mail_bounces_message_id_recipient")),
    )
    with op.batch_alter_table("mail_bounces", schema=None) as batch_op:
        batch_op.create_index("ix_mail_bounces_customer_id_bounced_at", ["customer_id", "bounced_at"], unique=False)
    with op.batch_alter_table("mail_sent", schema=None) as batch_op:
        batch_op.create_index("ix_mail_sent_message_id", ["message_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("mail_sent", schema=None) as batch_op:
        batch_op.drop_index("ix_mail_sent_message_id")
    with op.batch_alter_table("mail_bounces", schema=None) as batch_op:
        batch_op.drop_index("ix_mail_bounces_customer_id_bounced_at")
    op.drop_table("mail_bounces")
