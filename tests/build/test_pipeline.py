"""The build: incremental writes, removals, collisions, isolation between customers, escaping."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from portal.build import pipeline as site_module
from portal.build.pipeline import build
from portal.core.errors import BuildError, ExportInvalid
from portal.core.signing import Signer, TokenInvalid
from portal.export.reader import read_export
from portal.publish.manifest import LOCK, MANIFEST, Manifest
from tests.site_helpers import rewrite_csv

HOSTILE = "<script>alert(1)</script> & Co"


def keys_of(out: Path) -> dict[str, str]:
    return {cid: entry["key"] for cid, entry in Manifest.load(out).customers.items()}


def test_full_build_then_noop_rebuild_writes_nothing(settings, store, export_dir, tmp_path):
    out = tmp_path / "site"
    first = build(export_dir, out, settings, store=store)
    ledger = read_export(export_dir, settings)
    assert first.written["pages"] == 2 * len(ledger.customers) + len(ledger.invoices)
    # The supplied ones: the invoice and statement PDFs are rendered on their first download (docs/documents.md).
    assert first.written["documents"] == len(ledger.documents)
    assert first.customers_rendered == len(ledger.customers)
    files = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != MANIFEST}

    again = build(export_dir, out, settings, store=store)
    assert sum(again.written.values()) == 0 and sum(again.removed.values()) == 0
    assert again.customers_rendered == 0 and again.customers_skipped == len(ledger.customers)
    assert {p: p.stat().st_mtime_ns for p in files} == files


def test_changing_one_invoice_rewrites_only_that_customers_files(settings, store, export_dir, tmp_path):
    out = tmp_path / "site"
    build(export_dir, out, settings, store=store)
    ledger = read_export(export_dir, settings)
    target = next(i for i in ledger.invoices.values() if i.balance > 100)
    rewrite_csv(export_dir / "invoices.csv",
                lambda r: {**r, "balance": f"{(target.balance - 100) / 100:.2f}"}
                if r["invoice_id"] == target.invoice_id else r)
    result = build(export_dir, out, settings, store=store)
    key = keys_of(out)[target.customer_id]
    assert result.customers_rendered == 1
    assert result.written_paths, "the changed invoice must be re-rendered"
    assert all(p.startswith((f"c/{key}/", f"docs/{key}/")) for p in result.written_paths)
    # The account page, the statement and the invoice page change; the customer's other invoice pages do not.
    pages = {p for p in result.written_paths if p.startswith("c/")}
    assert {f"c/{key}/index.html", f"c/{key}/statement.html", f"c/{key}/i/{target.invoice_id}.html"} == pages


def test_pages_of_vanished_invoices_and_customers_are_removed(settings, store, export_dir, tmp_path):
    out = tmp_path / "site"
    build(export_dir, out, settings, store=store)
    ledger = read_export(export_dir, settings)
    keys = keys_of(out)
    gone_customer = sorted(ledger.customers)[-1]
    with_documents = {d.invoice_id for d in ledger.documents.values()}
    paid = next(i for i in ledger.invoices.values()
                if i.customer_id != gone_customer and i.invoice_id not in with_documents)
    for name, column in (("customers.csv", "customer_id"), ("contacts.csv", "customer_id"),
                         ("invoices.csv", "customer_id"), ("credits.csv", "customer_id"),
                         ("documents.csv", "customer_id")):
        rewrite_csv(export_dir / name, lambda r, c=column: None if r[c] == gone_customer else r)
    rewrite_csv(export_dir / "invoices.csv", lambda r: None if r["invoice_id"] == paid.invoice_id else r)
    rewrite_csv(export_dir / "invoice_lines.csv",
                lambda r: None if r["invoice_id"] not in {i for i in ledger.invoices
                                                          if ledger.invoices[i].customer_id != gone_customer
                                                          and i != paid.invoice_id} else r)
    result = build(export_dir, out, settings, store=store)
    assert not (out / "c" / keys[gone_customer]).exists()
    assert not (out / "docs" / keys[gone_customer]).exists()
    assert not (out / f"c/{keys[paid.customer_id]}/i/{paid.invoice_id}.html").exists()
    assert f"c/{keys[paid.customer_id]}/i/{paid.invoice_id}.html" in result.removed_paths
    assert set(Manifest.load(out).files) == {str(p.relative_to(out)) for p in out.rglob("*")
                                             if p.is_file() and not p.name.startswith(".")}


def test_revoke_moves_the_pages_and_deletes_the_old_ones(settings, store, export_dir, tmp_path):
    out = tmp_path / "site"
    build(export_dir, out, settings, store=store)
    customer = sorted(keys_of(out))[0]
    old_key = keys_of(out)[customer]
    store.revoke(customer)
    result = build(export_dir, out, settings, store=store)
    new_key = keys_of(out)[customer]
    assert new_key != old_key and (out / "c" / new_key / "index.html").is_file()
    assert not (out / "c" / old_key).exists() and not (out / "docs" / old_key).exists()
    assert result.customers_rendered == 1


def test_two_customers_on_one_path_are_refused_before_anything_is_written(settings, store, export_dir, tmp_path,
                                                                          monkeypatch):
    monkeypatch.setattr(Signer, "customer_key", lambda self, customer_id, version: "collidingkey")
    out = tmp_path / "site"
    with pytest.raises(BuildError, match=r"two outputs would be written to c/collidingkey/index.html"):
        build(export_dir, out, settings, store=store)
    assert [p for p in out.rglob("*") if p.is_file() and p.name != LOCK] == []


def test_an_invalid_export_writes_nothing(settings, store, export_dir, tmp_path):
    rewrite_csv(export_dir / "invoices.csv", lambda r: {**r, "amount": "12,50"} if r["invoice_id"] == "I000003" else r)
    out = tmp_path / "site"
    with pytest.raises(ExportInvalid):
        build(export_dir, out, settings, store=store)
    assert not out.exists()
    assert store.latest_as_of() is None  # nothing imported either


def test_hostile_customer_name_is_escaped_everywhere(settings, store, export_dir, tmp_path):
    rewrite_csv(export_dir / "customers.csv", lambda r: {**r, "name": HOSTILE} if r["customer_id"] == "C00001" else r)
    rewrite_csv(export_dir / "invoices.csv", lambda r: {**r, "po_number": '"><img src=x onerror=alert(2)>'}
                if r["customer_id"] == "C00001" else r)
    out = tmp_path / "site"
    build(export_dir, out, settings, store=store)
    key = keys_of(out)["C00001"]
    pages = list((out / "c" / key).rglob("*.html"))
    assert len(pages) >= 3
    for page in pages:
        html = page.read_text()
        assert "<script>alert(1)" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in html


def test_a_customers_pages_hold_only_that_customers_data_and_tokens(settings, store, export_dir, tmp_path):
    out = tmp_path / "site"
    build(export_dir, out, settings, store=store)
    ledger = read_export(export_dir, settings)
    signer = Signer(settings)
    keys = keys_of(out)
    for customer_id, key in keys.items():
        others = {i.number for i in ledger.invoices.values() if i.customer_id != customer_id}
        for page in (out / "c" / key).rglob("*.html"):
            html = page.read_text()
            assert not any(re.search(rf"\b{re.escape(n)}\b", html) for n in others), page
            for purpose, token in re.findall(r"/(r|d)/([A-Za-z0-9_.\-]+)", html):
                claims = signer.read_doc_token(token) if purpose == "d" else signer.read_page_token("view", token)
                assert claims.customer_id == customer_id
            for token in re.findall(r'name="page_token" value="([^"]+)"', html):
                assert signer.read_page_token("page", token).customer_id == customer_id
                with pytest.raises(TokenInvalid):
                    signer.read_page_token("view", token)  # one purpose per token
        # A guessed or tampered key is simply not there.
        assert not (out / "c" / (key[:-1] + ("a" if key[-1] != "a" else "b"))).exists()


def test_pages_are_private_and_self_contained(settings, store, export_dir, tmp_path):
    out = tmp_path / "site"
    build(export_dir, out, settings, store=store)
    webhook = settings.effective_webhook_url
    for page in (out / "c").rglob("*.html"):
        html = page.read_text()
        assert '<meta name="referrer" content="no-referrer">' in html
        assert '<meta name="robots" content="noindex, nofollow, noarchive">' in html
        for url in re.findall(r'(?:href|src|action|content)="((?:https?:)?//[^"]+)"', html):
            assert url.startswith(webhook), f"{page}: third-party or absolute URL {url}"
    assert len(list((out / "assets").glob("*.css"))) == 1


def test_money_and_dates_follow_the_customers_locale(settings, store, export_dir, tmp_path):
    out = tmp_path / "site"
    build(export_dir, out, settings, store=store)
    ledger = read_export(export_dir, settings)
    german = next(c for c in ledger.customers.values() if c.locale == "de_DE")
    invoice = next(i for i in ledger.invoices.values() if i.customer_id == german.customer_id)
    html = (out / "c" / keys_of(out)[german.customer_id] / "i" / f"{invoice.invoice_id}.html").read_text()
    whole, cents = divmod(invoice.amount, 100)
    assert f"{whole:,}".replace(",", ".") + f",{cents:02d}\xa0€" in html
    assert '<html lang="de">' in html


def test_parallel_and_serial_builds_are_identical(settings, store, export_dir, tmp_path):
    serial = build(export_dir, tmp_path / "one", settings, store=store, workers=1)
    parallel = build(export_dir, tmp_path / "two", settings, store=store, workers=2)
    assert Manifest.load(tmp_path / "one").files == Manifest.load(tmp_path / "two").files
    assert serial.written == parallel.written


def test_a_theme_folder_overrides_one_template(settings, store, export_dir, tmp_path):
    theme = tmp_path / "theme" / "pages"
    theme.mkdir(parents=True)
    builtin = (Path(__file__).parents[2] / "templates" / "pages" / "statement.html").read_text()
    (theme / "statement.html").write_text(builtin.replace('{{ _("Statement of account") }}</h1>', "Kontoauszug</h1>"))
    out = tmp_path / "site"
    build(export_dir, out, settings.replace(theme_dir=str(tmp_path / "theme")), store=store)
    key = next(iter(keys_of(out).values()))
    assert "Kontoauszug</h1>" in (out / "c" / key / "statement.html").read_text()
    assert "Your account</h1>" in (out / "c" / key / "index.html").read_text()


def test_an_unchanged_export_is_not_read_again_but_any_change_is(settings, store, export_dir, tmp_path, monkeypatch):
    out = tmp_path / "site"
    first = build(export_dir, out, settings, store=store)
    assert not first.export_unchanged and first.imported is not None

    def must_not_read(*args, **kwargs):
        raise AssertionError("an unchanged export was read again")
    monkeypatch.setattr(site_module, "read_export", must_not_read)
    again = build(export_dir, out, settings, store=store)
    assert again.export_unchanged and again.imported is None and sum(again.written.values()) == 0
    monkeypatch.undo()

    # A changed document file (same name) is a changed export.
    document = next((export_dir / "documents").iterdir())
    document.write_bytes(document.read_bytes() + b"\n% appended")
    changed = build(export_dir, out, settings, store=store)
    assert not changed.export_unchanged and changed.imported is not None
    assert any(p.startswith("docs/") for p in changed.written_paths)

    # Another export imported into the same store in between: this one is read and imported again.
    other = tmp_path / "other"
    from portal.export.sample import write_sample
    write_sample(other, customers=2, invoices=3, seed=9)
    build(other, tmp_path / "other-site", settings, store=store)
    back = build(export_dir, out, settings, store=store)
    assert not back.export_unchanged and back.imported is not None


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failed_import_leaves_the_folder_and_the_store_as_they_were(settings, store, export_dir, tmp_path,
                                                                       monkeypatch, workers):
    """The pages render while the import runs; when the import fails, nothing the render wrote stays."""
    import time

    from portal.store.database import Store, StoreUnavailable

    monkeypatch.setattr(site_module, "CHUNK", 1)  # several tasks: the parallel path
    real_import = Store.import_snapshot

    def failing_import(self, *args, **kwargs):
        time.sleep(1.5)  # the workers write meanwhile
        raise StoreUnavailable("database error (test): the import failed")

    fresh = tmp_path / "fresh"
    monkeypatch.setattr(Store, "import_snapshot", failing_import)
    with pytest.raises(StoreUnavailable):
        build(export_dir, fresh, settings, store=store, workers=workers)
    assert not fresh.exists() and store.latest_as_of() is None

    out = tmp_path / "site"
    monkeypatch.setattr(Store, "import_snapshot", real_import)
    build(export_dir, out, settings, store=store, workers=workers)
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()}
    snapshot = store.latest_snapshot_id()
    rewrite_csv(export_dir / "invoices.csv", lambda r: {**r, "balance": "0.01"})  # every customer changes
    monkeypatch.setattr(Store, "import_snapshot", failing_import)
    with pytest.raises(StoreUnavailable):
        build(export_dir, out, settings, store=store, workers=workers)
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()} == before
    assert store.latest_snapshot_id() == snapshot

    monkeypatch.setattr(Store, "import_snapshot", real_import)
    result = build(export_dir, out, settings, store=store, workers=workers)
    assert result.imported is not None and result.customers_rendered == len(keys_of(out))
    assert not [p for p in out.rglob("*.tmp")]
    assert set(Manifest.load(out).files) == {str(p.relative_to(out)) for p in out.rglob("*")
                                             if p.is_file() and not p.name.startswith(".")}


def test_fingerprints_computed_by_parallel_workers_match_the_stores(settings, store, export_dir, tmp_path,
                                                                    monkeypatch):
    """A first build renders from the export while importing it and its workers compute the customers'
    fingerprints; the next build, from the store, must find every customer unchanged."""
    monkeypatch.setattr(site_module, "CHUNK", 1)
    out = tmp_path / "site"
    first = build(export_dir, out, settings, store=store, workers=2)
    assert first.customers_rendered == len(keys_of(out)) and all(
        entry["fingerprint"] for entry in Manifest.load(out).customers.values())
    (out / site_module.EXPORT_STATE).unlink()  # read and import the export again: fingerprints from the view
    again = build(export_dir, out, settings, store=store, workers=2)
    assert again.imported is not None and again.customers_rendered == 0
    from_store = site_module.render_site(settings, store, out, export_folder=export_dir, workers=2)
    assert from_store.customers_rendered == 0 and sum(from_store.written.values()) == 0


def test_only_page_templates_and_their_assets_shape_the_render_fingerprint(settings, tmp_path):
    from portal.core.templating import render_fingerprint

    theme = tmp_path / "theme"
    themed = settings.replace(theme_dir=str(theme))
    before = render_fingerprint(themed)
    for name in ("staff/overview.html", "email/reminder.txt", "webhook/message.html", "assets/staff.css"):
        (theme / name).parent.mkdir(parents=True, exist_ok=True)
        (theme / name).write_text("changed")
    assert render_fingerprint(themed) == before  # a staff or email edit does not re-render every customer
    (theme / "assets").mkdir(exist_ok=True)
    (theme / "assets" / "portal.css").write_text("body { color: red }")
    with_css = render_fingerprint(themed)
    assert with_css != before
    (theme / "pages").mkdir()
    (theme / "pages" / "base.html").write_text("{% block main %}{% endblock %}")
    assert render_fingerprint(themed) not in {before, with_css}


def test_rendering_in_this_process_leaves_no_objects_frozen(settings, store, export_dir, tmp_path):
    """The webhook re-renders one customer in its own long-lived process: objects frozen for the render must go
    back to the collector afterwards, or each re-render would put more of the process out of its reach."""
    import gc

    out = tmp_path / "site"
    build(export_dir, out, settings, store=store, workers=1)
    gc.unfreeze()  # whatever an earlier test left
    result = site_module.render_site(settings, store, out, export_folder=export_dir, force=True, workers=1)
    assert result.customers_rendered == len(store.customer_states())  # rendered here, in this process
    assert gc.get_freeze_count() == 0
