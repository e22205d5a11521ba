"""payments: attempts, allocations, Stripe events

Revision ID: 0002_payments
Revises: 0001
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002_payments'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('payment_attempts',
    sa.Column('attempt_id', sa.String(length=64), nullable=False),
    sa.Column('customer_id', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('method', sa.String(length=20), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('subtotal', sa.BigInteger(), nullable=False),
    sa.Column('adjustment', sa.BigInteger(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('unapplied', sa.BigInteger(), nullable=False),
    sa.Column('credit_applied', sa.BigInteger(), nullable=False),
    sa.Column('refunded', sa.BigInteger(), nullable=False),
    sa.Column('needs_review', sa.Boolean(), nullable=False),
    sa.Column('payer_email', sa.String(length=320), nullable=False),
    sa.Column('checkout_session', sa.String(length=255), nullable=False),
    sa.Column('payment_intent', sa.String(length=255), nullable=False),
    sa.Column('charge', sa.String(length=255), nullable=False),
    sa.Column('failure_reason', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('counted_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('attempt_id', name=op.f('pk_payment_attempts'))
    )
    with op.batch_alter_table('payment_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_attempts_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payment_attempts_payment_intent'), ['payment_intent'], unique=False)

    op.create_table('payment_allocations',
    sa.Column('attempt_id', sa.String(length=64), nullable=False),
    sa.Column('invoice_id', sa.String(length=200), nullable=False),
    sa.Column('customer_id', sa.String(length=200), nullable=False),
    sa.Column('number', sa.String(length=200), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('applied', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('attempt_id', 'invoice_id', name=op.f('pk_payment_allocations'))
    )
    with op.batch_alter_table('payment_allocations', schema=None) as batch_op:
        batch_op.create_index('ix_payment_allocations_invoice_id', ['invoice_id'], unique=False)

    op.create_table('payment_credits',
    sa.Column('attempt_id', sa.String(length=64), nullable=False),
    sa.Column('credit_id', sa.String(length=200), nullable=False),
    sa.Column('customer_id', sa.String(length=200), nullable=False),
    sa.Column('number', sa.String(length=200), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('applied', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('attempt_id', 'credit_id', name=op.f('pk_payment_credits'))
    )
    with op.batch_alter_table('payment_credits', schema=None) as batch_op:
        batch_op.create_index('ix_payment_credits_credit_id', ['credit_id'], unique=False)

    op.create_table('stripe_events',
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=100), nullable=False),
    sa.Column('attempt_id', sa.String(length=64), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_stripe_events'))
    )


def downgrade() -> None:
    op.drop_table('stripe_events')
    with op.batch_alter_table('payment_credits', schema=None) as batch_op:
        batch_op.drop_index('ix_payment_credits_credit_id')
    op.drop_table('payment_credits')
    with op.batch_alter_table('payment_allocations', schema=None) as batch_op:
        batch_op.drop_index('ix_payment_allocations_invoice_id')
    op.drop_table('payment_allocations')
    with op.batch_alter_table('payment_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payment_attempts_payment_intent'))
        batch_op.drop_index(batch_op.f('ix_payment_attempts_customer_id'))
    op.drop_table('payment_attempts')
