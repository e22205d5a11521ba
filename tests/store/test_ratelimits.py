"""Rate-limit counters in the database (WEBHOOK_RATE_LIMIT_BACKEND=database), on SQLite and PostgreSQL: one
budget across app instances (workers, machines, Lambda instances), windows that reset, expired rows pruned."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from portal.core.signing import Signer
from portal.store import ratelimits
from portal.store.database import Store
from portal.store.ratelimits import DatabaseRateLimitStore, rate_limit_hits
from tests.webhook_helpers import import_sample, make_app


@pytest.fixture
def ledger(store, settings, export_dir):
    return import_sample(store, settings, export_dir)


def _rows(store):
    with store.begin() as conn:
        return conn.execute(select(func.count()).select_from(rate_limit_hits)).scalar_one()


def test_counts_within_a_window_and_starts_again_after_it(store):
    counters = DatabaseRateLimitStore(store)
    assert [counters.hit("ip:1/60", 60, 1000.0)[0] for _ in range(3)] == [1, 2, 3]
    hits, reset = counters.hit("ip:1/60", 60, 1030.5)
    assert (hits, reset) == (4, 29.5)
    assert counters.hit("ip:2/60", 60, 1030.5) == (1, 60.0)  # another key, its own window
    assert counters.hit("ip:1/60", 60, 1060.0) == (1, 60.0)  # the window ended: a new one starts


def test_two_app_instances_share_one_budget(settings, tmp_path, store, ledger):
    """Two webhook instances over one database (two machines, two Lambda instances): a token limited to 3 uses
    gets 3 in all, not 3 per instance."""
    customer = sorted(ledger.customers)[0]
    token = Signer(settings).link_token(customer, "c1", "", 1)
    config = {"RATE_LIMIT_BACKEND": "database", "RATE_LIMIT_TOKEN": "3/60"}
    with make_app(settings, tmp_path / "a", **config) as one, make_app(settings, tmp_path / "b", **config) as two:
        clients = [one.test_client(), two.test_client()]
        codes = [clients[n % 2].get(f"/l/{token}").status_code for n in range(6)]
        limited = clients[1].get(f"/l/{token}")
    assert codes == [303, 303, 303, 429, 429, 429]
    assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 60
    assert store.count_events(kind="link_opened") == 3
    # The memory backend (the default) counts per instance: the same six requests all pass.
    with make_app(settings, tmp_path / "c", RATE_LIMIT_TOKEN="3/60") as one, \
            make_app(settings, tmp_path / "d", RATE_LIMIT_TOKEN="3/60") as two:
        clients = [one.test_client(), two.test_client()]
        assert [clients[n % 2].get(f"/l/{token}").status_code for n in range(6)] == [303] * 6


def test_concurrent_hits_are_all_counted(settings, store):
    """Each hit is one atomic upsert: threads on their own connections lose no count."""
    stores = [Store(settings.database_url) for _ in range(4)]
    try:
        def hammer(own: Store) -> None:
            counters = DatabaseRateLimitStore(own)
            for _ in range(25):
                counters.hit("token:abc/60", 60, 5000.0)

        threads = [threading.Thread(target=hammer, args=(own,)) for own in stores]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for own in stores:
            own.close()
    assert DatabaseRateLimitStore(store).hit("token:abc/60", 60, 5000.0)[0] == 101


def test_expired_windows_are_pruned(store, monkeypatch):
    monkeypatch.setattr(ratelimits, "PRUNE_EVERY", 5)
    counters = DatabaseRateLimitStore(store)
    for n in range(4):
        counters.hit(f"ip:old-{n}/60", 60, 1000.0)
    assert _rows(store) == 4
    counters.hit("ip:new/60", 60, 1000.0 + 60 + ratelimits.PRUNE_AFTER_MS / 1000 + 1)  # the 5th hit prunes
    assert _rows(store) == 1


def test_an_unknown_backend_is_refused_by_name(settings, tmp_path):
    with pytest.raises(ValueError, match="WEBHOOK_RATE_LIMIT_BACKEND: 'redis' is not one of memory, database"):
        with make_app(settings, tmp_path, RATE_LIMIT_BACKEND="redis"):
            pass


def test_the_backend_is_chosen_from_the_environment(settings, tmp_path, monkeypatch):
    """As deployments set it (infra/template.yaml): WEBHOOK_RATE_LIMIT_BACKEND=database."""
    monkeypatch.setenv("WEBHOOK_RATE_LIMIT_BACKEND", "database")
    with make_app(settings, tmp_path) as app:
        assert isinstance(app.extensions["portal"].limiter.store, DatabaseRateLimitStore)
    monkeypatch.delenv("WEBHOOK_RATE_LIMIT_BACKEND")
    with make_app(settings, tmp_path / "default") as app:
        assert not isinstance(app.extensions["portal"].limiter.store, DatabaseRateLimitStore)
