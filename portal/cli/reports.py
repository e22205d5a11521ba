"""`portal report receipts | payments | cash-application | disputes | kpis | contact-changes | activity`: the staff
dashboard's data for scripts and people (docs/staff.md).

`--format json` and `--format csv` are the stable, machine-readable forms (columns and keys are public: add,
never rename); `table` is for people. The reports themselves are built in portal/staff/; this module only picks
the format and prints.
"""

from __future__ import annotations

from typing import Any

import click

from portal.cli.group import PortalContext, pass_portal

_FORMATS = click.Choice(["table", "csv", "json"])


@click.group()
def report() -> None:
    """Reports for AR staff (the same data as the staff dashboard)."""


@report.command("receipts")
@click.option("--unopened-days", type=click.IntRange(0), default=None,
              help="Only invoices no person has viewed N days after they were sent.")
@click.option("--format", "fmt", type=_FORMATS, default="table", show_default=True)
@pass_portal
def report_receipts(portal: PortalContext, unopened_days: int | None, fmt: str) -> None:
    """Per invoice: emails sent, link opened (fetched), viewed by a person, documents viewed."""
    from portal.staff.receipts_report import format_rows, receipts

    click.echo(format_rows(receipts(portal.store(), unopened_days=unopened_days), fmt), nl=False)


@report.command("payments")
@click.option("--format", "fmt", type=_FORMATS, default="table", show_default=True)
@pass_portal
def report_payments(portal: PortalContext, fmt: str) -> None:
    """One row per payment attempt: status, method, amount (minor units), allocations, Stripe ids."""
    from portal.staff.exports import to_csv, to_json
    from portal.staff.payments_report import PAYMENT_COLUMNS, payments

    rows = payments(portal.store())
    if fmt == "json":
        click.echo(to_json(rows), nl=False)
        return
    # Where each invoice paid stands now (its position), in the allocations' order.
    flat = [{**r, "allocations": ";".join(f"{a['invoice_id']}:{a['amount']}" for a in r["allocations"]),
             "invoice_open": ";".join("" if a["open"] is None else str(a["open"]) for a in r["allocations"]),
             "invoice_status": ";".join(a["status"] or "" for a in r["allocations"])} for r in rows]
    if fmt == "csv":
        click.echo(to_csv(flat, [*PAYMENT_COLUMNS, "invoice_open", "invoice_status"]), nl=False)
    else:
        click.echo(_table(flat, ["attempt_id", "customer_id", "status", "method", "amount", "currency",
                                 "unapplied", "needs_review", "allocations"]))


@report.command("cash-application")
@pass_portal
def report_cash_application(portal: PortalContext) -> None:
    """The cash-application CSV for the ERP: one row per invoice a settled payment paid (plus unapplied cash)."""
    from portal.staff.payments_report import cash_application_csv

    click.echo(cash_application_csv(portal.store()), nl=False)


@report.command("disputes")
@click.option("--root-causes", is_flag=True, help="Count and amount by reason, customer and collector; median days "
                                                  "to resolve.")
@click.option("--format", "fmt", type=_FORMATS, default="table", show_default=True)
@pass_portal
def report_disputes(portal: PortalContext, root_causes: bool, fmt: str) -> None:
    """The disputes queue (one row per dispute), or their root causes."""
    from portal.staff.disputes_report import dispute_root_causes, disputes, format_disputes, format_root_causes

    store = portal.store()
    text = format_root_causes(dispute_root_causes(store), fmt) if root_causes else format_disputes(disputes(store), fmt)
    click.echo(text, nl=False)


@report.command("kpis")
@click.option("--format", "fmt", type=_FORMATS, default="table", show_default=True)
@pass_portal
def report_kpis(portal: PortalContext, fmt: str) -> None:
    """The dashboard's overview figures (open AR, aging, viewed by a person, e-payments, disputes, DSO)."""
    from portal.staff.kpis import compute, format_kpis

    click.echo(format_kpis(compute(portal.store()), fmt), nl=False)


@report.command("contact-changes")
@click.option("--all", "include_all", is_flag=True,
              help="Every change (requested, confirmed, already in the ERP), not only those to copy into the ERP.")
@click.option("--format", "fmt", type=_FORMATS, default="table", show_default=True)
@pass_portal
def report_contact_changes(portal: PortalContext, include_all: bool, fmt: str) -> None:
    """AP address changes customers confirmed on the portal that the ERP's export does not list yet: copy them
    into the ERP (docs/selfservice.md)."""
    from portal.selfservice.contacts import REPORT_COLUMNS, report_rows
    from portal.staff.exports import to_csv, to_json

    rows = report_rows(portal.store(), include_all)
    if fmt == "json":
        click.echo(to_json(rows), nl=False)
    elif fmt == "csv":
        click.echo(to_csv(rows, REPORT_COLUMNS), nl=False)
    else:
        click.echo(_table(rows, ["customer_id", "action", "old_email", "new_email", "status", "confirmed_at"]))
@report.command("activity")
@click.option("--period", type=click.Choice(["day", "week", "month"]), default="week", show_default=True)
@click.option("--date", "day", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="A day in the period (UTC; default today).")
@click.option("--collector", default=None, help="Only this collector (their email); default every one and the team.")
@click.option("--format", "fmt", type=_FORMATS, default="table", show_default=True)
@pass_portal
def report_activity(portal: PortalContext, period: str, day: Any, collector: str | None, fmt: str) -> None:
    """Each collector's touches, hours, rates against the targets, promises, closed invoices and cash."""
    from datetime import UTC, datetime

    from portal.staff.activity import activity, format_activity

    when = day.date() if day else datetime.now(UTC).date()
    click.echo(format_activity(activity(portal.store(), portal.settings, period, when, collector), fmt), nl=False)


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain-text table for people (scripts use --format csv or json)."""
    table = [columns] + [["-" if r.get(c) is None else str(r[c]) for c in columns] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    lines = ["  ".join(text.ljust(w) for text, w in zip(line, widths, strict=True)).rstrip() for line in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + f"\n{len(rows)} row(s)"
