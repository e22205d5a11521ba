"""Dispute attachments on SQLite and PostgreSQL, with a folder private target: only PDF, PNG and JPEG of at most
10 MB, five at most, with safe names; stored outside every folder a web server may serve, and reached by staff
only (S3: tests/disputes/test_attachments_s3.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from portal.core.config import warn_if_insecure
from portal.core.errors import ConfigError
from portal.disputes.attachments import attachment_for_staff, safe_name, sniff
from portal.staff.disputes_report import disputes
from portal.staff.users import add_user
from portal.store import disputes as disputestore
from tests.dispute_helpers import (
    PDF,
    assert_nothing_stored,
    assert_nowhere_in_the_site,
    customer_with_invoices,
    post_dispute,
)
from tests.webhook_helpers import hidden_field

# --- refusals: nothing stored, no file, no email -----------------------------------------------------------


def test_an_oversize_file_is_413_and_nothing_is_stored(client, app, store, built, tmp_path):
    customer, invs = customer_with_invoices(store)
    big = PDF + b"0" * (10 * 1024 * 1024)
    response = post_dispute(client, built, customer.customer_id, [invs[0].invoice_id], files=[("big.pdf", big)])
    assert response.status_code == 413 and "larger than 10 MB" in response.text
    assert_nothing_stored(store, built, app, tmp_path)


@pytest.mark.parametrize("content", [b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 64,
                                     b"<!doctype html><script>alert(1)</script>",
                                     b"\x7fELF\x02\x01\x01" + b"\x00" * 32],
                         ids=["windows-executable", "html", "elf"])
def test_a_file_named_pdf_that_is_not_one_is_refused(client, app, store, built, tmp_path, content):
    customer, invs = customer_with_invoices(store)
    response = post_dispute(client, built, customer.customer_id, [invs[0].invoice_id], files=[("invoice.pdf", content)])
    assert response.status_code == 400 and "is not a PDF, PNG or JPEG" in response.text
    assert_nothing_stored(store, built, app, tmp_path)


def test_a_path_traversal_filename_is_sanitised(client, app, store, built):
    customer, invs = customer_with_invoices(store)
    response = post_dispute(client, built, customer.customer_id, [invs[0].invoice_id],
                            files=[("../../c/index.html/..\\..\\evil.pdf", PDF)])
    assert response.status_code == 200
    [row] = disputes(store)
    with store.begin() as conn:
        [stored] = disputestore.attachments_of(conn, row["dispute_id"])
    assert stored.filename == "evil.pdf" and stored.path == f"disputes/{row['dispute_id']}/1-evil.pdf"
    private = Path(built.effective_private_target)
    assert [p.relative_to(private).as_posix() for p in (private / "disputes").rglob("*") if p.is_file()] == \
        [stored.path]
    assert not list(private.parent.glob("**/evil.pdf"))[1:]


def test_attachments_live_outside_the_site_folders_and_staff_still_download_them(client, app, store, built,
                                                                                  tmp_path):
    """They were written into the published folder (disputes/<n>/<name>, guessable): any static host serving
    that folder served them to anyone."""
    customer, invs = customer_with_invoices(store)
    assert post_dispute(client, built, customer.customer_id, [invs[0].invoice_id],
                        files=[("signed delivery.pdf", PDF)]).status_code == 200
    [row] = disputes(store)
    app.extensions["jobs"].wait()  # the re-render and publish of the customer's pages
    assert_nowhere_in_the_site(built, PDF)
    assert Path(built.effective_private_target).resolve() == tmp_path / "private"  # the default, beside the site
    assert attachment_for_staff(store, built, row["dispute_id"], 1) == PDF
    add_user(store, "staff@example.com", "correct horse battery staple", "viewer")
    staff = app.test_client()
    form = staff.get("/staff/login").get_data(as_text=True)
    staff.post("/staff/login", data={"email": "staff@example.com", "password": "correct horse battery staple",
                                     "csrf_token": hidden_field(form, "csrf_token")})
    got = staff.get(f"/staff/disputes/{row['dispute_id']}/attachments/1")
    assert got.status_code == 200 and got.data == PDF


def test_a_private_folder_inside_the_site_is_refused_and_old_attachments_are_pointed_out(settings, tmp_path,
                                                                                       caplog):
    site = tmp_path / "site"
    for inside in (site / "private", site, site / "c" / "x"):
        with pytest.raises(ConfigError, match="private_target.*inside target"):
            settings.replace(target=str(site), build_dir=str(tmp_path / "build"), private_target=str(inside))
    with pytest.raises(ConfigError, match="inside build_dir"):
        settings.replace(build_dir=str(tmp_path), private_target=str(tmp_path / "private"))
    with pytest.raises(ConfigError, match="inside what the site serves"):
        settings.replace(target="s3://bucket/site", private_target="s3://bucket/site/docs/private")
    assert settings.replace(target="s3://bucket/site").effective_private_target == "s3://bucket/site"
    # Attachments an older version left in the site folder are not moved: every start says where they are.
    (site / "disputes" / "3").mkdir(parents=True)
    (site / "disputes" / "3" / "1-scan.pdf").write_bytes(PDF)
    ok = settings.replace(target=str(site), build_dir=str(site), private_target=str(tmp_path / "vault"))
    with caplog.at_level("WARNING", logger="portal.core.config"):
        warn_if_insecure(ok)
    assert f"dispute attachments are in the site folder {site / 'disputes'}" in caplog.text
    assert str(tmp_path / "vault") in caplog.text


def test_safe_names_and_sniffing():
    assert safe_name("..\\..//etc/passwd", ".pdf") == "passwd.pdf"
    assert safe_name("résumé scan.JPEG", ".jpg") == "resume_scan.jpg"
    assert safe_name("...", ".png") == "attachment.png"
    assert sniff(b"\xff\xd8\xff\xe0rest") == ("image/jpeg", ".jpg") and sniff(b"GIF89a") is None


def test_more_than_five_files_are_refused(client, app, store, built, tmp_path):
    customer, invs = customer_with_invoices(store)
    response = post_dispute(client, built, customer.customer_id, [invs[0].invoice_id],
                            files=[(f"{n}.pdf", PDF) for n in range(6)])
    assert response.status_code == 400 and "At most 5 files" in response.text
    assert_nothing_stored(store, built, app, tmp_path)


# --- attachments are for staff only ------------------------------------------------------------------------


def test_no_customer_route_reaches_an_attachment(client, app, store, built):
    customer, invs = customer_with_invoices(store)
    post_dispute(client, built, customer.customer_id, [invs[0].invoice_id], files=[("proof.pdf", PDF)])
    [row] = disputes(store)
    path = f"disputes/{row['dispute_id']}/1-proof.pdf"
    assert (Path(built.effective_private_target) / path).is_file()
    # The webhook serves the published folder in development (site_dir): never its private prefix.
    for url in (f"/{path}", f"/c/../{path}", f"/assets/../{path}", f"/files/{path}", f"/d/{path}"):
        response = client.get(url)
        assert response.status_code == 404 and PDF not in response.data, url
    # Customers reach only /dispute; attachments come back only under /staff, which needs a staff login
    # (tests/webhook/staff/test_auth.py checks that every /staff route refuses anonymous requests and customer tokens).
    rules = [r for r in app.url_map.iter_rules() if "disput" in r.rule and not r.rule.startswith("/staff/")]
    assert [(r.rule, sorted(r.methods - {"OPTIONS"})) for r in rules] == [("/dispute", ["POST"])]
    anonymous = client.get(f"/staff/disputes/{row['dispute_id']}/attachments/1")
    assert anonymous.status_code == 302 and PDF not in anonymous.data
    with pytest.raises(Exception, match="no attachment"):
        attachment_for_staff(store, built, row["dispute_id"], 9)
