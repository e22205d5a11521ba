"""staff data: the receipt rollup, its state row, and the indexes the staff views need

Revision ID: 0003_staff_data
Revises: 0001
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003_staff_data'
down_revision = '0001'
branch_labels = None
# Not a merge: 0003 stays a head beside its siblings, but indexes on their tables need them applied first.
depends_on = ('0002_payments', '0002_disputes')

# (table, index name, columns)
INDEXES = [
    ('events', 'ix_events_customer_id_occurred_at_event_id', ['customer_id', 'occurred_at', 'event_id']),
    ('invoices', 'ix_invoices_due_date_invoice_id', ['due_date', 'invoice_id']),
    ('invoices', 'ix_invoices_is_open_currency', ['is_open', 'currency']),
    ('invoices', 'ix_invoices_closed_at', ['closed_at']),
    ('invoices', 'ix_invoices_issue_date', ['issue_date']),
]
# On tables of the sibling revisions named in depends_on.
SIBLING_INDEXES = [
    ('payment_attempts', 'ix_payment_attempts_created_at', ['created_at']),
    ('payment_attempts', 'ix_payment_attempts_status', ['status']),
    ('disputes', 'ix_disputes_status_created_at', ['status', 'created_at']),
]


def upgrade() -> None:
    op.create_table('receipt_rollup',
    sa.Column('customer_id', sa.String(length=200), nullable=False),
    sa.Column('invoice_id', sa.String(length=200), nullable=False),
    sa.Column('emails_sent', sa.Integer(), nullable=False),
    sa.Column('link_opened', sa.Integer(), nullable=False),
    sa.Column('page_viewed', sa.Integer(), nullable=False),
    sa.Column('documents_viewed', sa.Integer(), nullable=False),
    sa.Column('first_sent_at', sa.DateTime(), nullable=True),
    sa.Column('first_opened_at', sa.DateTime(), nullable=True),
    sa.Column('first_viewed_at', sa.DateTime(), nullable=True),
    sa.Column('last_viewed_at', sa.DateTime(), nullable=True),
    sa.Column('last_event_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('customer_id', 'invoice_id', name=op.f('pk_receipt_rollup'))
    )
    state = op.create_table('receipt_rollup_state',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('last_event_id', sa.BigInteger(), nullable=False),
    sa.Column('gaps', sa.Text(), nullable=False),
    sa.Column('refreshed_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_receipt_rollup_state'))
    )
    # The row every refresh locks (portal/staff/receiptrollup.py).
    op.bulk_insert(state, [{'id': 1, 'last_event_id': 0, 'gaps': '[]', 'refreshed_at': None}])
    for table, name, columns in INDEXES + SIBLING_INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for table, name, _ in reversed(INDEXES + SIBLING_INDEXES):
        op.drop_index(name, table_name=table)
    op.drop_table('receipt_rollup_state')
    op.drop_table('receipt_rollup')
