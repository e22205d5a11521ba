"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 10:50:44.368668
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('contacts',
    sa.Column('customer_id', sa.String(length=200), nullable=False),
    sa.Column('contact_id', sa.String(length=320), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.PrimaryKeyConstraint('customer_id', 'contact_id', name=op.f('pk_contacts'))
    )
    op.create_table('credits',
    sa.Column('credit_id', sa.String(length=200), nullable=False),
    sa.Column('customer_id', sa.String(length=200), nullable=False),
    sa.Column('number', sa.String(length=200), nullable=False),
    sa.Column('issue_date', sa.Date(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('balance', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('credit_id', name=op.f('pk_credits'))
    )
    with op.batch_alter_table('credits', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_credits_customer_id'), ['customer_id'], unique=False)

    op.create_table('customer_keys',
    sa.Column('customer_id', sa.String(length=200), nullable=False),
    sa.Column('key_version', sa.Integer(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_customer_keys'))
    )
    op.create_table('customers',
    sa.Column('customer_id', sa.String(length=200), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('locale', sa.String(length=20), nullable=False),
    sa.Column('group_name', sa.String(length=200), nullable=False),
    sa.Column('collector', sa.String(length=320), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('first_seen_at', sa.DateTime(), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_customers'))
    )
    op.create_table('documents',
    sa.Column('document_id', sa.String(length=200), nullable=False),
    sa.Column('customer_id', sa.String(length=200), nullable=False),
    sa.Column('invoice_id', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('file', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('document_id', name=op.f('pk_documents'))
    )
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_documents_customer_id'), ['customer_id'], unique=False)

    op.create_table('events',
    sa.Column('event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('occurred_at', sa.DateTime(), nullable=False),
    sa.Column('customer_id', sa.String(length=200), nullable=False),
    sa.Column('contact_id', sa.String(length=320), nullable=False),
    sa.Column('invoice_id', sa.String(length=200), nullable=False),
    sa.Column('document_id', sa.String(length=200), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=False),
    sa.Column('user_agent', sa.Text(), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_events'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_customer_invoice_kind', ['customer_id', 'invoice_id', 'kind'], unique=False)
        batch_op.create_index('ix_events_kind_occurred_at', ['kind', 'occurred_at'], unique=False)

    op.create_table('invoice_lines',
    sa.Column('invoice_id', sa.String(length=200), nullable=False),
    sa.Column('line_no', sa.Integer(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('quantity', sa.String(length=40), nullable=True),
    sa.Column('unit_price', sa.String(length=40), nullable=True),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('invoice_id', 'line_no', name=op.f('pk_invoice_lines'))
    )
    op.create_table('invoices',
    sa.Column('invoice_id', sa.String(length=200), nullable=False),
    sa.Column('customer_id', sa.String(length=200), nullable=False),
    sa.Column('number', sa.String(length=200), nullable=False),
    sa.Column('issue_date', sa.Date(), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('balance', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('po_number', sa.String(length=200), nullable=False),
    sa.Column('terms', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('is_open', sa.Boolean(), nullable=False),
    sa.Column('first_seen_at', sa.DateTime(), nullable=False),
    sa.Column('changed_at', sa.DateTime(), nullable=False),
    sa.Column('closed_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('invoice_id', name=op.f('pk_invoices'))
    )
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invoices_customer_id'), ['customer_id'], unique=False)

    op.create_table('snapshots',
    sa.Column('snapshot_id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('as_of', sa.DateTime(), nullable=False),
    sa.Column('imported_at', sa.DateTime(), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('customers', sa.Integer(), nullable=False),
    sa.Column('invoices', sa.Integer(), nullable=False),
    sa.Column('invoices_new', sa.Integer(), nullable=False),
    sa.Column('invoices_changed', sa.Integer(), nullable=False),
    sa.Column('invoices_closed', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('snapshot_id', name=op.f('pk_snapshots'))
    )



def downgrade() -> None:

    op.drop_table('snapshots')
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invoices_customer_id'))

    op.drop_table('invoices')
    op.drop_table('invoice_lines')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_kind_occurred_at')
        batch_op.drop_index('ix_events_customer_invoice_kind')

    op.drop_table('events')
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_documents_customer_id'))

    op.drop_table('documents')
    op.drop_table('customers')
    op.drop_table('customer_keys')
    with op.batch_alter_table('credits', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_credits_customer_id'))

    op.drop_table('credits')
    op.drop_table('contacts')

