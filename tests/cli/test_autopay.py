"""`portal autopay` on the command line: one run at a time (exit 75 while another holds the lock), `--now` checked,
and a clear error without Stripe configured."""

from __future__ import annotations

from click.testing import CliRunner

from portal.cli.autopay import EXIT_RUN_IN_PROGRESS
from portal.cli.group import PortalContext
from portal.cli.main import cli
from portal.store.locks import exclusive_run


def _run(settings, *args):
    return CliRunner().invoke(cli, list(args), obj=PortalContext(settings=settings), catch_exceptions=False)


def test_a_second_autopay_run_refuses_to_start_while_one_is_in_progress(built, store, standin):
    with exclusive_run(store, "autopay"):
        refused = _run(built, "autopay", "--now", "2026-12-01T09:00:00Z")
        assert refused.exit_code == EXIT_RUN_IN_PROGRESS
        assert "another `portal autopay` run is still in progress" in refused.output
    done = _run(built, "autopay", "--now", "2026-12-01T09:00:00Z")
    assert done.exit_code == 0, done.output
    assert "autopay: 0 action(s), 0 problem(s)" in done.output


def test_autopay_names_a_bad_now_and_missing_stripe(built, store):
    bad = _run(built, "autopay", "--now", "tomorrow")
    assert bad.exit_code == 1 and "--now: 'tomorrow' is not an ISO time" in bad.output
    off = _run(built.replace(stripe_secret_key=""), "autopay")
    assert off.exit_code == 1 and "payments are not configured" in off.output
