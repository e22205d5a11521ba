"""Alembic environment: runs on the connection the store hands over, or on PORTAL_DATABASE_URL."""

from __future__ import annotations

from alembic import context

from portal.store.engine import make_engine
from portal.store.registry import metadata

config = context.config


def run(connection) -> None:
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:  # the `alembic` command line, for writing new revisions
    from portal.core.config import load_settings

    engine = make_engine(load_settings().database_url)
    with engine.begin() as conn:
        run(conn)
