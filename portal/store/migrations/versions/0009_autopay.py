"""saved payment methods and autopay: Stripe customers, methods, the customer's choice, autopay's charges

Revision ID: 0009_autopay
Revises: 0007_refresh_queue
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_autopay"
down_revision = "0007_refresh_queue"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stripe_customers",
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("stripe_customer", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_stripe_customers")),
        sa.UniqueConstraint("stripe_customer", name=op.f("uq_stripe_customers_stripe_customer")),
    )
    op.create_table(
        "saved_methods",
        sa.Column("method_id", sa.String(length=255), nullable=False),
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("last4", sa.String(length=4), nullable=False),
        sa.Column("mandate", sa.String(length=255), nullable=False),
        sa.Column("ready", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("detached_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("method_id", name=op.f("pk_saved_methods")),
    )
    op.create_index("ix_saved_methods_customer_id", "saved_methods", ["customer_id"])
    op.create_table(
        "autopay_settings",
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("method_id", sa.String(length=255), nullable=False),
        sa.Column("days_before", sa.Integer(), nullable=False),
        sa.Column("cap", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("stopped_reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_autopay_settings")),
    )
    op.create_table(
        "autopay_charges",
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("invoice_id", sa.String(length=200), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("charge_on", sa.Date(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("noticed_at", sa.DateTime(), nullable=True),
        sa.Column("attempt_id", sa.String(length=64), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("next_try_at", sa.DateTime(), nullable=True),
        sa.Column("failure", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "invoice_id", "due_date", name=op.f("pk_autopay_charges")),
    )


def downgrade() -> None:
    op.drop_table("autopay_charges")
    op.drop_table("autopay_settings")
    op.drop_index("ix_saved_methods_customer_id", table_name="saved_methods")
    op.drop_table("saved_methods")
    op.drop_table("stripe_customers")
