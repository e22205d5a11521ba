"""payment plans: an invoice split into dated instalments (portal/collect/plans.py)

Revision ID: 0011_payment_plans
Revises: 0008_collections
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_payment_plans"
down_revision = "0008_collections"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payment_plans",
        sa.Column("plan_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("invoice_id", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("unsettled_at_plan", sa.BigInteger(), nullable=False),
        sa.Column("frequency", sa.String(length=10), nullable=False),
        sa.Column("made_by", sa.String(length=320), nullable=False),
        sa.Column("collector", sa.String(length=320), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("settled_at", sa.DateTime(), nullable=True),
        sa.Column("arrived", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("plan_id", name=op.f("pk_payment_plans")),
    )
    op.create_index("ix_payment_plans_status", "payment_plans", ["status"])
    op.create_index("ix_payment_plans_customer_id", "payment_plans", ["customer_id"])
    op.create_index("ix_payment_plans_invoice_id", "payment_plans", ["invoice_id"])
    op.create_table(
        "plan_instalments",
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("missed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("plan_id", "seq", name=op.f("pk_plan_instalments")),
    )
    op.create_index("ix_plan_instalments_missed_at", "plan_instalments", ["missed_at"])


def downgrade() -> None:
    op.drop_index("ix_plan_instalments_missed_at", table_name="plan_instalments")
    op.drop_table("plan_instalments")
    op.drop_index("ix_payment_plans_invoice_id", table_name="payment_plans")
    op.drop_index("ix_payment_plans_customer_id", table_name="payment_plans")
    op.drop_index("ix_payment_plans_status", table_name="payment_plans")
    op.drop_table("payment_plans")
