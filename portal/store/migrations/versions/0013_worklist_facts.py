"""worklist facts: the invoices a person has viewed (a trigger on events, portal/store/tables.py) and each
customer's latest touch by staff (a trigger on touches, portal/store/collect.py)

Revision ID: 0013_worklist_facts
Revises: 0008_collections (depends on 0001)
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_worklist_facts"
down_revision = "0008_collections"  # creates touches
branch_labels = None
depends_on = None

# The trigger's condition: a person's browser displayed an invoice's page. The first such event wins; later ones
# leave the row as it is.
_BACKFILL = ("INSERT INTO invoice_views (invoice_id, first_viewed_at) "
             "SELECT invoice_id, min(occurred_at) FROM events "
             "WHERE kind = 'page_viewed' AND invoice_id <> '' GROUP BY invoice_id")
_SQLITE_TRIGGER = """
CREATE TRIGGER events_invoice_viewed AFTER INSERT ON events
WHEN NEW.kind = 'page_viewed' AND NEW.invoice_id <> ''
BEGIN
    INSERT OR IGNORE INTO invoice_views (invoice_id, first_viewed_at)
    VALUES (NEW.invoice_id, NEW.occurred_at);
END
"""
_PG_FUNCTION = """
CREATE FUNCTION events_invoice_viewed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO invoice_views (invoice_id, first_viewed_at)
    VALUES (NEW.invoice_id, NEW.occurred_at)
    ON CONFLICT (invoice_id) DO NOTHING;
    RETURN NULL;
END
$$
"""
_PG_TRIGGER = """
CREATE TRIGGER events_invoice_viewed AFTER INSERT ON events
FOR EACH ROW WHEN (NEW.kind = 'page_viewed' AND NEW.invoice_id <> '')
EXECUTE FUNCTION events_invoice_viewed()
"""

# What marks a worklist item done (portal/collect/worklist.py STAFF_TOUCHES); touches are never updated or deleted.
_STAFF_KINDS = "('call', 'email', 'note', 'promise', 'answer')"
_TOUCHED_BACKFILL = ("INSERT INTO last_staff_touches (customer_id, touched_at) "
                     f"SELECT customer_id, max(occurred_at) FROM touches WHERE kind IN {_STAFF_KINDS} "
                     "GROUP BY customer_id")
_SQLITE_TOUCH_TRIGGER = f"""
CREATE TRIGGER touches_last_staff_touch AFTER INSERT ON touches
WHEN NEW.kind IN {_STAFF_KINDS}
BEGIN
    INSERT OR IGNORE INTO last_staff_touches (customer_id, touched_at) VALUES (NEW.customer_id, NEW.occurred_at);
    UPDATE last_staff_touches SET touched_at = NEW.occurred_at
    WHERE customer_id = NEW.customer_id AND touched_at < NEW.occurred_at;
END
"""
_PG_TOUCH_FUNCTION = """
CREATE FUNCTION touches_last_staff_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO last_staff_touches (customer_id, touched_at) VALUES (NEW.customer_id, NEW.occurred_at)
    ON CONFLICT (customer_id) DO UPDATE SET touched_at = GREATEST(last_staff_touches.touched_at, EXCLUDED.touched_at);
    RETURN NULL;
END
$$
"""
_PG_TOUCH_TRIGGER = f"""
CREATE TRIGGER touches_last_staff_touch AFTER INSERT ON touches
FOR EACH ROW WHEN (NEW.kind IN {_STAFF_KINDS})
EXECUTE FUNCTION touches_last_staff_touch()
"""


def upgrade() -> None:
    op.create_table(
        "invoice_views",
        sa.Column("invoice_id", sa.String(length=200), nullable=False),
        sa.Column("first_viewed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("invoice_id", name=op.f("pk_invoice_views")),
    )
    op.create_table(
        "last_staff_touches",
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("touched_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_last_staff_touches")),
    )
    op.execute(_BACKFILL)
    op.execute(_TOUCHED_BACKFILL)
    if op.get_bind().dialect.name == "postgresql":
        for statement in (_PG_FUNCTION, _PG_TRIGGER, _PG_TOUCH_FUNCTION, _PG_TOUCH_TRIGGER):
            op.execute(statement)
    else:
        op.execute(_SQLITE_TRIGGER)
        op.execute(_SQLITE_TOUCH_TRIGGER)


def downgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    for trigger, table in (("events_invoice_viewed", "events"), ("touches_last_staff_touch", "touches")):
        op.execute(f"DROP TRIGGER {trigger}" + (f" ON {table}" if pg else ""))
        if pg:
            op.execute(f"DROP FUNCTION {trigger}()")
    op.drop_table("last_staff_touches")
    op.drop_table("invoice_views")
