"""The `portal` group (portal/cli/group.py): errors as one line and an exit code, the context every command shares
(settings and store opened once, lazily, and closed at the end), and the commands other packages plug in."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from portal.cli.group import PortalContext
from portal.cli.main import cli
from portal.store import database


def test_config_errors_are_one_line(run, tmp_path):
    (tmp_path / "portal.toml").write_text('secret_key = "in-the-file-is-wrong"\n')
    result = run("validate", "x")
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("error: ")


@pytest.fixture
def stores(monkeypatch):
    """Every Store the commands open, in order, each recording whether it was closed."""
    opened: list = []

    class Recorded(database.Store):
        closed = False

        def __init__(self, url: str):
            super().__init__(url)
            opened.append(self)

        def close(self) -> None:
            self.closed = True
            super().close()

    monkeypatch.setattr(database, "Store", Recorded)
    return opened


def test_the_store_is_opened_only_by_commands_that_need_it_and_closed_when_the_run_ends(run, stores):
    assert run("sample-data", "export", "--customers", "2", "--invoices", "3").exit_code == 0
    assert run("validate", "export").exit_code == 0
    assert stores == []  # neither needs the database: nothing was opened (or migrated)
    result = run("demo", "--no-serve", "--customers", "2", "--invoices", "3")
    assert result.exit_code == 0, result.output
    assert len(stores) == 1 and stores[0].closed  # the sample build and the links read one store
    assert run("revoke", "NOPE").exit_code == 3  # a PortalError: the store is closed all the same
    assert len(stores) == 2 and stores[1].closed


def test_the_context_keeps_one_store_and_its_settings_fixed_once_it_is_open(settings):
    portal = PortalContext(settings=settings)
    store = portal.store()
    try:
        assert portal.store() is store and portal.settings is settings
        with pytest.raises(RuntimeError):
            portal.use_settings(settings.replace(site_url="http://127.0.0.1:9999"))
    finally:
        portal.close()
    portal.close()  # closing twice is harmless (the group closes what a command may have closed)


def test_serve_is_the_webhooks_command_and_the_cli_imports_no_web_layer():
    """`portal` may not import webhook or Flask (the web layer sits on top of it): importing the command line
    loads neither, and `serve` comes from the webhook through the portal.commands entry point, when named."""
    code = ("import sys, portal.cli.main; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('webhook', 'flask', 'werkzeug')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"
    ctx = click.Context(cli)
    assert "serve" in cli.list_commands(ctx)
    assert cli.get_command(ctx, "serve").callback.__module__ == "webhook.devserver"
