"""disputes: disputes, their invoices and attachments; questions

Revision ID: 0002_disputes
Revises: 0001
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002_disputes'
down_revision = '0001'
branch_labels = None
depends_on = None

SERIAL = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('disputes',
    sa.Column('dispute_id', SERIAL, autoincrement=True, nullable=False),
    sa.Column('customer_id', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.String(length=40), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('updated_by', sa.String(length=320), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('reviewed_at', sa.DateTime(), nullable=True),
    sa.Column('resolved_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('dispute_id', name=op.f('pk_disputes'))
    )
    with op.batch_alter_table('disputes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_disputes_customer_id'), ['customer_id'], unique=False)

    op.create_table('dispute_invoices',
    sa.Column('dispute_id', SERIAL, autoincrement=False, nullable=False),
    sa.Column('invoice_id', sa.String(length=200), nullable=False),
    sa.Column('number', sa.String(length=200), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('dispute_id', 'invoice_id', name=op.f('pk_dispute_invoices'))
    )
    op.create_table('dispute_attachments',
    sa.Column('dispute_id', SERIAL, autoincrement=False, nullable=False),
    sa.Column('n', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('filename', sa.Text(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('dispute_id', 'n', name=op.f('pk_dispute_attachments'))
    )
    op.create_table('questions',
    sa.Column('question_id', SERIAL, autoincrement=True, nullable=False),
    sa.Column('customer_id', sa.String(length=200), nullable=False),
    sa.Column('invoice_id', sa.String(length=200), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('question_id', name=op.f('pk_questions'))
    )
    with op.batch_alter_table('questions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_questions_customer_id'), ['customer_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('questions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_questions_customer_id'))
    op.drop_table('questions')
    op.drop_table('dispute_attachments')
    op.drop_table('dispute_invoices')
    with op.batch_alter_table('disputes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_disputes_customer_id'))
    op.drop_table('disputes')
