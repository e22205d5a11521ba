"""collections: the collector's workbench (touches and their invoices, holds, promises, answers, who asked)

Revision ID: 0008_collections
Revises: 0007_refresh_queue
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_collections"
down_revision = "0007_refresh_queue"
branch_labels = None
depends_on = None

TOUCH_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "touches",
        sa.Column("touch_id", TOUCH_ID, autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("collector", sa.String(length=320), nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=False),
        sa.Column("contact_id", sa.String(length=320), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("touch_id", name=op.f("pk_touches")),
    )
    op.create_index("ix_touches_customer_id_occurred_at", "touches", ["customer_id", "occurred_at"])
    op.create_index("ix_touches_collector_occurred_at", "touches", ["collector", "occurred_at"])
    op.create_table(
        "touch_invoices",
        sa.Column("touch_id", TOUCH_ID, nullable=False),
        sa.Column("invoice_id", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("touch_id", "invoice_id", name=op.f("pk_touch_invoices")),
    )
    op.create_index("ix_touch_invoices_invoice_id", "touch_invoices", ["invoice_id"])
    op.create_table(
        "holds",
        sa.Column("hold_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("until", sa.Date(), nullable=False),
        sa.Column("placed_by", sa.String(length=320), nullable=False),
        sa.Column("placed_at", sa.DateTime(), nullable=False),
        sa.Column("released_by", sa.String(length=320), nullable=False),
        sa.Column("released_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("hold_id", name=op.f("pk_holds")),
    )
    op.create_index("ix_holds_customer_id_released_at", "holds", ["customer_id", "released_at"])
    op.create_table(
        "promises",
        sa.Column("promise_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("promised_for", sa.Date(), nullable=False),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("made_by", sa.String(length=320), nullable=False),
        sa.Column("collector", sa.String(length=320), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("settled_at", sa.DateTime(), nullable=True),
        sa.Column("arrived", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("promise_id", name=op.f("pk_promises")),
    )
    op.create_index("ix_promises_status_promised_for", "promises", ["status", "promised_for"])
    op.create_index("ix_promises_customer_id", "promises", ["customer_id"])
    op.create_table(
        "promise_invoices",
        sa.Column("promise_id", sa.Integer(), nullable=False),
        sa.Column("invoice_id", sa.String(length=200), nullable=False),
        sa.Column("unsettled_at_promise", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("promise_id", "invoice_id", name=op.f("pk_promise_invoices")),
    )
    op.create_index("ix_promise_invoices_invoice_id", "promise_invoices", ["invoice_id"])
    op.create_table(
        "question_answers",
        sa.Column("question_id", TOUCH_ID, autoincrement=False, nullable=False),
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("answered_by", sa.String(length=320), nullable=False),
        sa.Column("answered_at", sa.DateTime(), nullable=False),
        sa.Column("sent_to", sa.Text(), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("question_id", name=op.f("pk_question_answers")),
    )
    op.create_table(
        "collector_assignments",
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("collector", sa.String(length=320), nullable=False),
        sa.Column("assigned_by", sa.String(length=320), nullable=False),
        sa.Column("assigned_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_collector_assignments")),
    )
    op.create_table(
        "worklist_snoozes",
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.String(length=30), nullable=False),
        sa.Column("until", sa.Date(), nullable=False),
        sa.Column("snoozed_by", sa.String(length=320), nullable=False),
        sa.Column("snoozed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "reason", name=op.f("pk_worklist_snoozes")),
    )
    with op.batch_alter_table("questions") as batch_op:
        batch_op.add_column(sa.Column("contact_id", sa.String(length=320), server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("questions") as batch_op:
        batch_op.drop_column("contact_id")
    op.drop_table("question_answers")
    op.drop_table("worklist_snoozes")
    op.drop_table("collector_assignments")
    op.drop_index("ix_promise_invoices_invoice_id", table_name="promise_invoices")
    op.drop_table("promise_invoices")
    op.drop_index("ix_promises_customer_id", table_name="promises")
    op.drop_index("ix_promises_status_promised_for", table_name="promises")
    op.drop_table("promises")
    op.drop_index("ix_holds_customer_id_released_at", table_name="holds")
    op.drop_table("holds")
    op.drop_index("ix_touch_invoices_invoice_id", table_name="touch_invoices")
    op.drop_table("touch_invoices")
    op.drop_index("ix_touches_collector_occurred_at", table_name="touches")
    op.drop_index("ix_touches_customer_id_occurred_at", table_name="touches")
    op.drop_table("touches")
