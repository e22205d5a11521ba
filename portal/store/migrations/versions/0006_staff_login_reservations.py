"""staff logins are counted in rate_limit_hits, reserved before the password is checked: drop the failures table

Revision ID: 0006_staff_login_reservations
Revises: 0003_staff_users
Depends on: 0004_rate_limits
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_staff_login_reservations"
down_revision = "0003_staff_users"
branch_labels = None
# The attempts are counted in rate_limit_hits from now on.
depends_on = "0004_rate_limits"


def upgrade() -> None:
    # Failures recorded before the upgrade are forgotten: at worst a guesser gets one fresh window.
    with op.batch_alter_table("staff_login_failures", schema=None) as batch_op:
        batch_op.drop_index("ix_staff_login_failures_key_failed_at")
    op.drop_table("staff_login_failures")


def downgrade() -> None:
    op.create_table(
        "staff_login_failures",
        sa.Column("failure_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("failed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("failure_id", name=op.f("pk_staff_login_failures")),
    )
    with op.batch_alter_table("staff_login_failures", schema=None) as batch_op:
        batch_op.create_index("ix_staff_login_failures_key_failed_at", ["key", "failed_at"], unique=False)
