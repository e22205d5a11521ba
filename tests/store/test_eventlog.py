"""portal/store/eventlog.py, the webhook's hot path, on SQLite and PostgreSQL: a receipt is committed when
`record_if_current` returns, a revoked or rotated key records nothing from the very next call, and
connections are per process (a forked child opens its own and never touches its parent's)."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from datetime import UTC, datetime

import pytest

from portal.store import eventlog
from portal.store.database import Store, StoreUnavailable
from portal.store.eventlog import EventLog, Receipt
from tests.webhook_helpers import all_events, import_sample


@pytest.fixture
def ledger(store, settings, export_dir):
    return import_sample(store, settings, export_dir)


@pytest.fixture
def log(store):
    log = EventLog(store)
    yield log
    log.close()


def _customer_with_invoices(ledger):
    invoice = sorted(ledger.invoices.values(), key=lambda i: i.invoice_id)[0]
    return invoice.customer_id, invoice


def _record(log, customer_id, key_version=1, invoice_id="", **fields):
    return log.record_if_current("link_opened", customer_id, key_version, invoice_id, contact_id="c1",
                                 ip="127.0.0.1", user_agent="Mail/1.0", **fields)


def test_a_receipt_is_committed_when_it_returns(log, store, ledger):
    customer, invoice = _customer_with_invoices(ledger)
    receipt = _record(log, customer, invoice_id=invoice.invoice_id)
    assert receipt == Receipt(invoice.invoice_id, True)
    # Read through the Store's own connection: only committed rows are visible there.
    [row] = all_events(store)
    assert (row.kind, row.customer_id, row.contact_id, row.invoice_id, row.document_id, row.ip, row.user_agent,
            row.detail) == ("link_opened", customer, "c1", invoice.invoice_id, "", "127.0.0.1", "Mail/1.0", "")
    assert abs((datetime.now(UTC) - row.occurred_at).total_seconds()) < 60
    assert store.count_events_since("link_opened", row.occurred_at) == 1  # same stored format as SQLAlchemy's


def test_an_invoice_of_another_customer_is_never_recorded(log, store, ledger):
    customer, _ = _customer_with_invoices(ledger)
    theirs = next(i for i in ledger.invoices.values() if i.customer_id != customer)
    assert _record(log, customer, invoice_id=theirs.invoice_id) == Receipt("", False)
    assert _record(log, customer, invoice_id=theirs.invoice_id, require_invoice=True) is None
    assert [r.invoice_id for r in all_events(store)] == [""]


def test_unknown_customers_record_nothing(log, store, ledger):
    assert _record(log, "NOBODY") is None
    assert all_events(store) == []


def test_revoked_key_records_nothing_from_the_next_call(log, store, ledger):
    customer, _ = _customer_with_invoices(ledger)
    assert _record(log, customer) is not None  # the connection is open and pooled now
    store.revoke(customer)
    assert _record(log, customer, key_version=1) is None
    assert len(all_events(store)) == 1
    # The rotated version works at once, and the old one stays refused after it.
    assert _record(log, customer, key_version=2) is not None
    store.revoke(customer)
    assert _record(log, customer, key_version=2) is None
    assert _record(log, customer, key_version=3) is not None
    assert [r.customer_id for r in all_events(store)] == [customer, customer, customer]


def test_a_forked_child_opens_its_own_connection(log, store, ledger):
    customer, _ = _customer_with_invoices(ledger)
    assert _record(log, customer) is not None
    [(parent_conn, *_)] = log._idle
    pid = os.fork()
    if pid == 0:  # the child: must not reuse (or close) the parent's connection
        status = 1
        try:
            inherited = any(conn is parent_conn for conn, *_ in eventlog._inherited)
            if inherited and not log._idle and _record(log, customer) is not None:
                status = 0 if log._idle[0][0] is not parent_conn else 2
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent's connection still works (closing it in the child would have ended a PostgreSQL session).
    assert _record(log, customer) is not None
    assert log._idle[0][0] is parent_conn
    assert len(all_events(store)) == 3


def test_store_close_closes_its_connections(settings, ledger):
    store = Store(settings.database_url)
    log = EventLog(store)
    customer, _ = _customer_with_invoices(ledger)
    assert _record(log, customer) is not None
    [(conn, *_)] = log._idle
    store.close()
    assert log._idle == []
    with pytest.raises(Exception):  # noqa: B017 - sqlite3.ProgrammingError or psycopg.OperationalError
        conn.execute("SELECT 1")


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)  # SQLite has no server to end a session
def test_a_connection_the_server_ended_while_idle_is_replaced_not_answered_503(log, store, ledger):
    """A restart or failover ends the pooled sessions while they sit idle. The next request must not fail
    with them: a connection idle for a while is checked first and replaced when dead. A busy one is not
    checked (no round trip under load), so a session ended mid-burst still fails once, as before."""
    customer, _ = _customer_with_invoices(ledger)

    def end_pooled_session():
        [(conn, cursor, _)] = log._idle
        with store.engine.connect() as admin:
            admin.exec_driver_sql(f"SELECT pg_terminate_backend({conn.info.backend_pid})")
        return conn, cursor

    assert _record(log, customer) is not None
    ended, cursor = end_pooled_session()
    log._idle[0] = (ended, cursor, time.monotonic() - eventlog.PING_AFTER_IDLE_SECONDS - 1)  # idle a while
    assert _record(log, customer) is not None
    assert log._idle[0][0] is not ended and len(all_events(store)) == 2

    end_pooled_session()  # just used: not checked, so this request meets the dead session
    with pytest.raises(StoreUnavailable):
        _record(log, customer)
    assert log._idle == [] and _record(log, customer) is not None and len(all_events(store)) == 3


def test_database_trouble_is_store_unavailable(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'empty.db'}")  # no schema
    log = EventLog(store)
    try:
        with pytest.raises(StoreUnavailable):
            _record(log, "C1")
        assert log._idle == []  # a failed connection is not pooled
    finally:
        store.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # SQLite's write lock; PostgreSQL has row locks
def test_sqlite_waits_for_the_write_lock_then_gives_up(log, store, ledger, settings, monkeypatch):
    customer, _ = _customer_with_invoices(ledger)
    other = sqlite3.connect(settings.database_url.removeprefix("sqlite:///"), isolation_level=None,
                            check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")  # another worker holds the write lock...
        timer = threading.Timer(0.05, other.execute, ["COMMIT"])  # ...for 50 ms
        timer.start()
        assert _record(log, customer) is not None
        timer.join()
        monkeypatch.setattr(eventlog, "BUSY_SECONDS", 0.05)
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable, match="locked"):
            _record(log, customer)
        other.execute("COMMIT")
    finally:
        other.close()
    assert len(all_events(store)) == 1
    assert _record(log, customer) is not None
