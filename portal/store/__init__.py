"""The database (SQLite by default, PostgreSQL by URL): every table (tables.py and one module per domain), the
Store and its queries (database.py), importing an export (importer.py), the tables derived from others and who
keeps them (derived.py), Alembic's migrations, the event log, run locks and rate-limit counters. The store
imports no package above it.
"""
