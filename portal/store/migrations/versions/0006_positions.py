"""positions: the journal of money movements per invoice and credit note, each invoice's stored position, and
the receipt lines' position cells

Revision ID: 0006_positions
Revises: 0005_receipt_lines, 0002_payments, 0002_disputes
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_positions"
down_revision = ("0005_receipt_lines", "0002_payments", "0002_disputes")
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "position_entries",
        sa.Column("entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True,
                  nullable=False),
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("item_kind", sa.String(length=10), nullable=False),
        sa.Column("item_id", sa.String(length=200), nullable=False),
        sa.Column("attempt_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("method", sa.String(length=20), nullable=False),
        sa.Column("settled", sa.BigInteger(), nullable=False),
        sa.Column("pending", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("entry_id", name=op.f("pk_position_entries")),
    )
    op.create_index("ix_position_entries_item_kind_item_id", "position_entries", ["item_kind", "item_id"])
    op.create_index("ix_position_entries_customer_id", "position_entries", ["customer_id"])
    op.create_index("ix_position_entries_attempt_id", "position_entries", ["attempt_id"])
    op.create_index("ix_position_entries_recorded_at", "position_entries", ["recorded_at"])
    op.create_table(
        "invoice_positions",
        sa.Column("invoice_id", sa.String(length=200), nullable=False),
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("open_amount", sa.BigInteger(), nullable=False),
        sa.Column("disputed_amount", sa.BigInteger(), nullable=False),
        sa.Column("pending_amount", sa.BigInteger(), nullable=False),
        sa.Column("paid_amount", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("invoice_id", name=op.f("pk_invoice_positions")),
    )
    with op.batch_alter_table("receipt_lines") as batch:
        batch.add_column(sa.Column("position_cells", sa.Text(), nullable=False, server_default=""))
    # Store.migrate then journals the payments already made, stores every invoice's position and rebuilds the
    # receipt lines (portal/position.ensure_complete, portal/receiptlines.ensure_complete).


def downgrade() -> None:
    with op.batch_alter_table("receipt_lines") as batch:
        batch.drop_column("position_cells")
    op.drop_table("invoice_positions")
    op.drop_index("ix_position_entries_recorded_at", table_name="position_entries")
    op.drop_index("ix_position_entries_attempt_id", table_name="position_entries")
    op.drop_index("ix_position_entries_customer_id", table_name="position_entries")
    op.drop_index("ix_position_entries_item_kind_item_id", table_name="position_entries")
    op.drop_table("position_entries")
