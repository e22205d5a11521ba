"""`portal sample-data`, `validate`, `build`, `import`, `links`, `publish`, `revoke`: from an ERP export to a
published site, and the links that open it (README.md, "Command line").

Each command prints what it did (one summary line, warnings on stderr) and exits 0; an invalid export exits 2
with every problem listed and nothing written, other errors exit with their code (portal/cli/group.py).
"""

from __future__ import annotations

import csv
import sys

import click

from portal.cli.group import PortalContext, pass_portal


@click.command("sample-data")
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


@click.command()
@click.argument("folder", type=click.Path(file_okay=False))
@pass_portal
def validate(portal: PortalContext, folder: str) -> None:
    """Check an export folder. Exit 0 when valid, 2 when not (every problem is listed)."""
    from portal.export.reader import read_export

    ledger = read_export(folder, portal.settings)
    for warning in ledger.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"{folder}: valid: {len(ledger.customers)} customers, {len(ledger.contacts)} contacts, "
               f"{len(ledger.invoices)} invoices, {len(ledger.credits)} credits, {len(ledger.documents)} documents, "
               f"as of {ledger.as_of.isoformat()}")


@click.command()
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Output folder (default: the build_dir setting, build/).")
@click.option("--workers", type=click.IntRange(1), default=None, help="Render processes (default: one per CPU).")
@click.option("--shard", default=None, metavar="I/N",
              help="Render only shard I of N of the customers (one folder per shard; see infra/README.md).")
@click.option("--skip-import", is_flag=True, help="The export was imported already (`portal import`).")
@pass_portal
def build(portal: PortalContext, folder: str, out: str, workers: int | None, shard: str | None,
          skip_import: bool) -> None:
    """Validate FOLDER, import it into the store and render the site into --out."""
    from portal.build.pipeline import build as run_build
    from portal.build.pipeline import parse_shard

    settings = portal.settings
    result = run_build(folder, out or settings.build_dir, settings, store=portal.store(), workers=workers,
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


@click.command()
@click.option("--customer", "customer_ids", multiple=True, help="Only this customer (repeatable).")
@click.option("--per-invoice", is_flag=True, help="Also one link per open invoice.")
@click.option("--format", "fmt", type=click.Choice(["csv", "table"]), default="csv", show_default=True)
@pass_portal
def links(portal: PortalContext, customer_ids: tuple[str, ...], per_invoice: bool, fmt: str) -> None:
    """One signed link per contact (columns: customer_id,contact_id,email,invoice_id,url)."""
    from portal.core.links import contact_links

    rows = contact_links(portal.settings, portal.store().customer_data(set(customer_ids) or None), per_invoice)
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["customer_id", "contact_id", "email", "invoice_id", "url"])
        writer.writerows(rows)
    else:
        for row in rows:
            click.echo(f"{row[0]:<10} {row[2]:<36} {row[3] or '(account)':<10} {row[4]}")


@click.command("import")
@click.argument("folder", type=click.Path(file_okay=False))
@pass_portal
def import_export(portal: PortalContext, folder: str) -> None:
    """Validate FOLDER and import it into the store without rendering (once, before sharded builds)."""
    from portal.build.pipeline import import_only

    result = import_only(folder, portal.settings, store=portal.store())
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    imported = result.imported
    click.echo(f"imported {imported.customers} customers, {imported.invoices} open invoices "
               f"({imported.new} new, {imported.changed} changed, {imported.closed} closed)")


@click.command()
@click.option("--dry-run", is_flag=True, help="Say what would be uploaded and deleted; change nothing.")
@click.option("--site", "site_dir", default=None, type=click.Path(file_okay=False),
              help="The built site to publish (default: build_dir).")
@click.option("--shard", default=None, metavar="I/N", help="Publish one shard's folder: upload only, delete nothing.")
@click.option("--reconcile", type=click.IntRange(1), default=None, metavar="N",
              help="After N shards published: merge their manifests and delete stale objects once.")
@pass_portal
def publish(portal: PortalContext, dry_run: bool, site_dir: str, shard: str | None, reconcile: int | None) -> None:
    """Upload the built site to the configured target (a folder or s3://bucket/prefix): only what changed,
    then delete what no longer exists. Prints uploaded / unchanged / deleted."""
    from portal.build.pipeline import parse_shard
    from portal.publish.publisher import publish as run_publish
    from portal.publish.shards import publish_shard
    from portal.publish.shards import reconcile as run_reconcile

    settings = portal.settings
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


@click.command()
@click.argument("customer_id")
@pass_portal
def revoke(portal: PortalContext, customer_id: str) -> None:
    """Invalidate every link and page address of CUSTOMER_ID; the next build moves its pages."""
    version = portal.store().revoke(customer_id)
    click.echo(f"{customer_id}: key version is now {version}. Old links stop working now; run `portal build` "
               "to move the pages and delete the old ones, then send fresh links.")


COMMANDS = (sample_data, validate, build, import_export, links, publish, revoke)
