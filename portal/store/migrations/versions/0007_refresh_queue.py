"""refresh queue: the jobs that follow an event, the emails they sent, and each customer's page revision

Revision ID: 0007_refresh_queue
Revises: 0006_positions
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_refresh_queue"
down_revision = "0006_positions"
branch_labels = None
depends_on = None

QUEUED_REFRESH = sa.text("state = 'queued' AND kind = 'refresh'")


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("job_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("run_after", sa.DateTime(), nullable=False),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("worker", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_jobs")),
    )
    op.create_index("ix_jobs_state_run_after", "jobs", ["state", "run_after"])
    op.create_index("ix_jobs_customer_id_state", "jobs", ["customer_id", "state"])
    op.create_index("uq_jobs_queued_refresh", "jobs", ["customer_id"], unique=True, sqlite_where=QUEUED_REFRESH,
                    postgresql_where=QUEUED_REFRESH)
    op.create_table(
        "job_messages",
        sa.Column("job_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "recipient", name=op.f("pk_job_messages")),
    )
    op.create_table(
        "page_revisions",
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("published", sa.BigInteger(), nullable=False),
        sa.Column("unmerged", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_page_revisions")),
    )


def downgrade() -> None:
    op.drop_table("page_revisions")
    op.drop_table("job_messages")
    op.drop_index("uq_jobs_queued_refresh", table_name="jobs")
    op.drop_index("ix_jobs_customer_id_state", table_name="jobs")
    op.drop_index("ix_jobs_state_run_after", table_name="jobs")
    op.drop_table("jobs")
