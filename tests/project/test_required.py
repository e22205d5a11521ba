"""tests/required.py: a missing server skips its tests, except where CI requires it (then they fail)."""

from __future__ import annotations

import pytest

from tests.required import running, unavailable


def test_a_missing_part_skips_where_it_is_not_required(monkeypatch):
    monkeypatch.delenv("PORTAL_REQUIRE_EXAMPLE", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Example not available: no binary"):
        unavailable("Example", "no binary", "PORTAL_REQUIRE_EXAMPLE")


def test_a_missing_part_fails_where_it_is_required(monkeypatch):
    monkeypatch.setenv("PORTAL_REQUIRE_EXAMPLE", "1")
    with pytest.raises(pytest.fail.Exception, match="Example is required here"):
        unavailable("Example", "no binary", "PORTAL_REQUIRE_EXAMPLE")


def test_a_server_that_cannot_start_is_unavailable_and_one_that_starts_is_stopped_after(monkeypatch):
    monkeypatch.setenv("PORTAL_REQUIRE_EXAMPLE", "1")

    def broken():
        raise OSError("port in use")

    with pytest.raises(pytest.fail.Exception, match="port in use"):
        next(running(broken, "Example", "PORTAL_REQUIRE_EXAMPLE"))

    class Server:
        stopped = False

        def stop(self):
            self.stopped = True

    fixture = running(Server, "Example", "PORTAL_REQUIRE_EXAMPLE")
    server = next(fixture)
    assert not server.stopped
    with pytest.raises(StopIteration):
        next(fixture)
    assert server.stopped
