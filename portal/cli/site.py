"""The `portal` command line. Errors become messages and exit codes in exactly one place (`PortalGroup`)."""

from __future__ import annotations

import csv
import logging
import sys
from pathlib import Path
from typing import Any

import click

from portal.core.config import Settings, load_settings, warn_if_insecure
from portal.core.errors import ExportInvalid, PortalError

log = logging.getLogger("portal")


class PortalGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ExportInvalid as exc:
            for problem in exc.problems:
                click.echo(problem, err=True)
            for warning in exc.warnings:
                click.echo(f"warning: {warning}", err=True)
            click.echo(f"error: {exc.message}; nothing was written", err=True)
            ctx.exit(exc.exit_code)
        except PortalError as exc:
            click.echo(f"error: {exc.message}", err=True)
            ctx.exit(exc.exit_code)


def _settings(ctx: click.Context) -> Settings:
    settings = ctx.obj.get("settings")
    if settings is None:
        settings = load_settings(ctx.obj.get("config"))
        warn_if_insecure(settings)
        ctx.obj["settings"] = settings
    return settings


def _store(ctx: click.Context):
    from portal.store.database import Store, ensure_sqlite_folder

    settings = _settings(ctx)
    ensure_sqlite_folder(settings.database_url)
    store = Store(settings.database_url)
    store.migrate()
    ctx.call_on_close(store.close)
    return store


@click.group(cls=PortalGroup)
@click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
              help="Configuration file (default: ./portal.toml if present).")
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
@click.version_option(package_name="ar-portal")
@click.pass_context
def cli(ctx: click.Context, config: str | None, verbose: bool) -> None:
    """AR self-service portal: build customers' pages from an ERP export, publish them, serve the webhook."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    ctx.ensure_object(dict)
    ctx.obj["config"] = config


@cli.command("sample-data")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--customers", default=12, show_default=True, type=click.IntRange(1))
@click.option("--invoices", default=40, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=7, show_default=True, type=int)
@click.option("--as-of", "as_of", default=None, help="Export time, ISO 8601 (default: the moment it runs).")
def sample_data(folder: str, customers: int, invoices: int, seed: int, as_of: str | None) -> None:
    """Write a realistic sample AR export into FOLDER."""
    from datetime import datetime

    from portal.export.sample import write_sample

    if invoices < customers:
        raise click.BadParameter("must be at least --customers (every customer gets an invoice)",
                                 param_hint="--invoices")
    moment = datetime.fromisoformat(as_of.replace("Z", "+00:00")) if as_of else None
    if moment is not None and moment.tzinfo is None:
        raise click.BadParameter("add a time zone, e.g. 2026-11-20T18:00:00Z", param_hint="--as-of")
    write_sample(folder, customers, invoices, seed, moment)
    click.echo(f"wrote a sample export of {customers} customers and {invoices} invoices to {folder}")


@cli.command()
@click.argument("folder", type=click.Path(file_okay=False))
@click.pass_context
def validate(ctx: click.Context, folder: str) -> None:
    """Check an export folder. Exit 0 when valid, 2 when not (every problem is listed)."""
    from portal.export.reader import read_export

    ledger = read_export(folder, _settings(ctx))
    for warning in ledger.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"{folder}: valid: {len(ledger.customers)} customers, {len(ledger.contacts)} contacts, "
               f"{len(ledger.invoices)} invoices, {len(ledger.credits)} credits, {len(ledger.documents)} documents, "
               f"as of {ledger.as_of.isoformat()}")


@cli.command()
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Output folder (default: the build_dir setting, build/).")
@click.option("--workers", type=click.IntRange(1), default=None, help="Render processes (default: one per CPU).")
@click.option("--shard", default=None, metavar="I/N",
              help="Render only shard I of N of the customers (one folder per shard; see infra/README.md).")
@click.option("--skip-import", is_flag=True, help="The export was imported already (`portal import`).")
@click.pass_context
def build(ctx: click.Context, folder: str, out: str, workers: int | None, shard: str | None,
          skip_import: bool) -> None:
    """Validate FOLDER, import it into the store and render the site into --out."""
    from portal.build.pipeline import build as run_build
    from portal.build.pipeline import parse_shard

    settings = _settings(ctx)
    store = _store(ctx)
    result = run_build(folder, out or settings.build_dir, settings, store=store, workers=workers,
                       shard=parse_shard(shard) if shard else None, skip_import=skip_import)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    imported = result.imported
    if result.export_unchanged:
        click.echo("the export is the one this folder was last built from: not checked or imported again")
    if imported:
        click.echo(f"imported {imported.customers} customers, {imported.invoices} open invoices "
                   f"({imported.new} new, {imported.changed} changed, {imported.closed} closed)")
    click.echo(f"rendered {result.customers_rendered} customers, {result.customers_skipped} unchanged")
    click.echo(result.summary())


@cli.command()
@click.option("--customer", "customer_ids", multiple=True, help="Only this customer (repeatable).")
@click.option("--per-invoice", is_flag=True, help="Also one link per open invoice.")
@click.option("--format", "fmt", type=click.Choice(["csv", "table"]), default="csv", show_default=True)
@click.pass_context
def links(ctx: click.Context, customer_ids: tuple[str, ...], per_invoice: bool, fmt: str) -> None:
    """One signed link per contact (columns: customer_id,contact_id,email,invoice_id,url)."""
    from portal.core.links import contact_links

    rows = contact_links(_settings(ctx), _store(ctx), set(customer_ids) or None, per_invoice)
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["customer_id", "contact_id", "email", "invoice_id", "url"])
        writer.writerows(rows)
    else:
        for row in rows:
            click.echo(f"{row[0]:<10} {row[2]:<36} {row[3] or '(account)':<10} {row[4]}")


@cli.command("import")
@click.argument("folder", type=click.Path(file_okay=False))
@click.pass_context
def import_export(ctx: click.Context, folder: str) -> None:
    """Validate FOLDER and import it into the store without rendering (once, before sharded builds)."""
    from portal.build.pipeline import import_only

    result = import_only(folder, _settings(ctx), store=_store(ctx))
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    imported = result.imported
    click.echo(f"imported {imported.customers} customers, {imported.invoices} open invoices "
               f"({imported.new} new, {imported.changed} changed, {imported.closed} closed)")


@cli.command()
@click.option("--dry-run", is_flag=True, help="Say what would be uploaded and deleted; change nothing.")
@click.option("--site", "site_dir", default=None, type=click.Path(file_okay=False),
              help="The built site to publish (default: build_dir).")
@click.option("--shard", default=None, metavar="I/N", help="Publish one shard's folder: upload only, delete nothing.")
@click.option("--reconcile", type=click.IntRange(1), default=None, metavar="N",
              help="After N shards published: merge their manifests and delete stale objects once.")
@click.pass_context
def publish(ctx: click.Context, dry_run: bool, site_dir: str, shard: str | None, reconcile: int | None) -> None:
    """Upload the built site to the configured target (a folder or s3://bucket/prefix): only what changed,
    then delete what no longer exists. Prints uploaded / unchanged / deleted."""
    from portal.build.pipeline import parse_shard
    from portal.publish.publisher import publish as run_publish
    from portal.publish.shards import publish_shard
    from portal.publish.shards import reconcile as run_reconcile

    settings = _settings(ctx)
    if shard and reconcile:
        raise click.UsageError("--shard and --reconcile are separate steps")
    if reconcile:
        click.echo(run_reconcile(settings, reconcile, dry_run=dry_run).summary())
        return
    with _progress_bar("publishing") as progress:
        if shard:
            index, count = parse_shard(shard)
            result = publish_shard(settings, site_dir or settings.build_dir, index, count, dry_run=dry_run,
                                   progress=progress)
        else:
            result = run_publish(settings, site_dir or settings.build_dir, dry_run=dry_run, progress=progress)
    click.echo(result.summary())


class _progress_bar:
    """A click progress bar that appears only once there is something to count, and only on a terminal."""

    def __init__(self, label: str):
        self.label, self.bar = label, None

    def __enter__(self):
        return self

    def __call__(self, done: int, total: int) -> None:
        if total < 50 or not sys.stderr.isatty():
            return
        if self.bar is None:
            self.bar = click.progressbar(length=total, label=self.label, file=sys.stderr)
            self.bar.__enter__()
        self.bar.update(done - self.bar.pos)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


@cli.group()
def report() -> None:
    """Reports for AR staff (the same data as the staff dashboard)."""


@report.command("receipts")
@click.option("--unopened-days", type=click.IntRange(0), default=None,
              help="Only invoices no person has viewed N days after they were sent.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.pass_context
def report_receipts(ctx: click.Context, unopened_days: int | None, fmt: str) -> None:
    """Per invoice: emails sent, link opened (fetched), viewed by a person, documents viewed."""
    from portal.staff.reports import format_rows, receipts

    click.echo(format_rows(receipts(_store(ctx.find_root()), unopened_days=unopened_days), fmt), nl=False)


@report.command("payments")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.pass_context
def report_payments(ctx: click.Context, fmt: str) -> None:
    """One row per payment attempt: status, method, amount (minor units), allocations, Stripe ids."""
    from portal.staff.reports import PAYMENT_COLUMNS, payments, to_csv, to_json

    rows = payments(_store(ctx.find_root()))
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
@click.pass_context
def report_cash_application(ctx: click.Context) -> None:
    """The cash-application CSV for the ERP: one row per invoice a settled payment paid (plus unapplied cash)."""
    from portal.staff.reports import cash_application_csv

    click.echo(cash_application_csv(_store(ctx.find_root())), nl=False)


@report.command("disputes")
@click.option("--root-causes", is_flag=True, help="Count and amount by reason, customer and collector; median days "
                                                  "to resolve.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.pass_context
def report_disputes(ctx: click.Context, root_causes: bool, fmt: str) -> None:
    """The disputes queue (one row per dispute), or their root causes."""
    from portal.staff.reports import dispute_root_causes, disputes, format_disputes, format_root_causes

    store = _store(ctx.find_root())
    text = format_root_causes(dispute_root_causes(store), fmt) if root_causes else format_disputes(disputes(store), fmt)
    click.echo(text, nl=False)


@report.command("kpis")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.pass_context
def report_kpis(ctx: click.Context, fmt: str) -> None:
    """The dashboard's overview figures (open AR, aging, viewed by a person, e-payments, disputes, DSO)."""
    from portal.staff.kpis import compute, format_kpis

    click.echo(format_kpis(compute(_store(ctx.find_root())), fmt), nl=False)


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain-text table for people (scripts use --format csv or json)."""
    table = [columns] + [["-" if r.get(c) is None else str(r[c]) for c in columns] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    lines = ["  ".join(text.ljust(w) for text, w in zip(line, widths, strict=True)).rstrip() for line in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + f"\n{len(rows)} row(s)"


@cli.command()
@click.argument("customer_id")
@click.pass_context
def revoke(ctx: click.Context, customer_id: str) -> None:
    """Invalidate every link and page address of CUSTOMER_ID; the next build moves its pages."""
    version = _store(ctx).revoke(customer_id)
    click.echo(f"{customer_id}: key version is now {version}. Old links stop working now; run `portal build` "
               "to move the pages and delete the old ones, then send fresh links.")


@cli.group()
def db() -> None:
    """The store's schema."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Create or upgrade the database schema to the newest version, and bring the staff dashboard's receipt
    rollup up to date (the first time, that reads every event: better here than on a staff request)."""
    from portal.staff.receiptrollup import refresh

    store = _store(ctx.find_root())
    click.echo("the database schema is up to date")
    done = refresh(store)
    click.echo(f"receipt rollup: {'built' if done.full else 'refreshed'} ({done.new_events} new events)")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--site", "site_dir", default=None, type=click.Path(file_okay=False),
              help="The built site to serve next to the webhook (default: build_dir).")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, site_dir: str) -> None:
    """Run the webhook and the built site on one port (development only; production uses gunicorn)."""
    settings = _settings(ctx)
    _store(ctx)  # create or upgrade the schema first: the app itself never migrates (workers would race)
    _serve(settings, host, port, site_dir or settings.build_dir)


def _serve(settings: Settings, host: str, port: int, site_dir: str) -> None:
    from webhook import create_app

    app = create_app(settings, site_dir=site_dir)
    click.echo(f"serving on http://{host}:{port}/ (Ctrl+C to stop)")
    app.run(host=host, port=port, debug=False, use_reloader=False)


@cli.command()
@click.option("--folder", default="demo", show_default=True, type=click.Path(file_okay=False),
              help="Where the sample export goes.")
@click.option("--customers", default=12, show_default=True, type=click.IntRange(1))
@click.option("--invoices", default=40, show_default=True, type=click.IntRange(1))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--no-serve", is_flag=True, help="Build and print the links, then exit.")
@click.pass_context
def demo(ctx: click.Context, folder: str, customers: int, invoices: int, host: str, port: int,
         no_serve: bool) -> None:
    """Sample data -> build -> serve, printing a few customer links to open."""
    from portal.build.pipeline import build as run_build
    from portal.core.links import contact_links
    from portal.export.sample import write_sample

    settings = _settings(ctx)
    if settings.site_url == "http://127.0.0.1:8000" and (host, port) != ("127.0.0.1", 8000):
        settings = settings.replace(site_url=f"http://{host}:{port}")
        ctx.obj["settings"] = settings
    export = Path(folder) / "export"
    write_sample(export, customers, invoices)
    store = _store(ctx)
    result = run_build(export, settings.build_dir, settings, store=store)
    click.echo(f"sample export in {export}; {result.summary()}")
    click.echo("\nOpen one of these customer links (each is a signed link as emailed to a contact):")
    for row in contact_links(settings, store, None, False)[:5]:
        click.echo(f"  {row[0]}  {row[2]:<34} {row[4]}")
    click.echo(f"\nAR staff dashboard: {settings.effective_webhook_url}/staff/ "
               "(make an account first: portal staff add YOU@EXAMPLE.COM --role admin)")
    if not no_serve:
        click.echo("")
        _serve(settings, host, port, settings.build_dir)


def _register_feature_commands() -> None:
    """Commands that live next to their feature (email sending, ...)."""
    from portal.cli import mail as mailcli
    from portal.cli import staff as staffcli

    for command in (mailcli.send, mailcli.remind, mailcli.digest, staffcli.staff):
        cli.add_command(command)


_register_feature_commands()


def main() -> None:
    cli(obj={}, auto_envvar_prefix=None)



if __name__ == "__main__":
    main()
