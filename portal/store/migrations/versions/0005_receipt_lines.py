"""receipt lines: each invoice's row of the receipts CSV export, ready-made (filled on PostgreSQL)

Revision ID: 0005_receipt_lines
Revises: 0001
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_receipt_lines"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "receipt_lines",
        sa.Column("invoice_id", sa.String(length=200), nullable=False),
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("is_open", sa.Boolean(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("head", sa.Text(), nullable=False),
        sa.Column("tail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("invoice_id", name=op.f("pk_receipt_lines")),
    )
    op.create_index("ix_receipt_lines_open_due_date", "receipt_lines", ["due_date", "invoice_id"], unique=False,
                    postgresql_where=sa.text("is_open"), sqlite_where=sa.text("is_open"))
    # Store.migrate then writes the lines of the invoices already imported (portal/staff/receiptlines.py).


def downgrade() -> None:
    op.drop_index("ix_receipt_lines_open_due_date", table_name="receipt_lines")
    op.drop_table("receipt_lines")
