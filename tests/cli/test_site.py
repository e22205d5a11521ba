"""`portal sample-data`, `validate`, `build`, `import`, `links`, `revoke` (portal/cli/site.py): exit codes, messages,
and the machine-readable outputs scripts rely on."""

from __future__ import annotations

import csv
import io
import json

import pytest

from portal.core.signing import Signer
from portal.store.database import Store
from tests.conftest import make_settings


def test_sample_validate_build_links_revoke(run, tmp_path, db_url):
    assert run("sample-data", "export", "--customers", "4", "--invoices", "9").exit_code == 0
    result = run("validate", "export")
    assert result.exit_code == 0 and "valid: 4 customers" in result.output

    result = run("build", "export", "--out", "site")
    assert result.exit_code == 0, result.output
    assert "pages: 17 written, 0 unchanged, 0 removed" in result.output  # 4 accounts + 4 statements + 9 invoices
    result = run("build", "export", "--out", "site")
    assert "pages: 0 written, 17 unchanged, 0 removed" in result.output

    result = run("links")
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert list(rows[0]) == ["customer_id", "contact_id", "email", "invoice_id", "url"]
    assert {r["invoice_id"] for r in rows} == {""} and len({r["customer_id"] for r in rows}) == 4
    signer = Signer(make_settings(db_url))
    claims = signer.read_link(rows[0]["url"].rsplit("/l/", 1)[1])
    assert (claims.customer_id, claims.contact_id) == (rows[0]["customer_id"], rows[0]["contact_id"])

    per_invoice = list(csv.DictReader(io.StringIO(run("links", "--customer", "C00001", "--per-invoice").output)))
    assert {r["customer_id"] for r in per_invoice} == {"C00001"} and any(r["invoice_id"] for r in per_invoice)

    result = run("revoke", "C00001")
    assert result.exit_code == 0 and "key version is now 2" in result.output
    store = Store(db_url)
    assert store.key_version("C00001") == 2
    store.close()
    assert run("revoke", "NOPE").exit_code == 3


def test_invalid_export_exits_2_with_every_problem(run, tmp_path):
    run("sample-data", "export", "--customers", "2", "--invoices", "3")
    text = (tmp_path / "export" / "invoices.csv").read_text().splitlines()
    header = text[0].split(",")
    row = text[2].split(",")
    row[header.index("amount")] = '"12,50"'
    row[header.index("due_date")] = "tomorrow"
    (tmp_path / "export" / "invoices.csv").write_text("\n".join([*text[:2], ",".join(row), *text[3:]]) + "\n")
    for command in (("validate", "export"), ("build", "export", "--out", "site")):
        result = run(*command)
        assert result.exit_code == 2
        assert 'invoices.csv:3: due_date: "tomorrow" is not a date (write it as YYYY-MM-DD)' in result.output
        assert 'invoices.csv:3: amount: "12,50" is not a number (write it like 1234.50)' in result.output
        assert "nothing was written" in result.output
    assert not (tmp_path / "site").exists()


def _set_field(path, line, column, value):
    with path.open(newline="", encoding="utf-8") as source:
        rows = list(csv.reader(source))
    rows[line - 1][rows[0].index(column)] = value
    with path.open("w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows(rows)


@pytest.mark.parametrize(("file", "column", "value", "message"), [
    ("invoices.csv", "amount", "9" * 5000, "is too large"),
    ("invoices.csv", "amount", "99999999999999999999.00", "is too large"),
    ("invoices.csv", "balance", "\u0661\u0660.\u0660\u0660", "is not a number"),  # Arabic-Indic digits
    ("invoices.csv", "amount", "\uff11\uff12\uff13.00", "is not a number"),  # fullwidth digits
    ("customers.csv", "name", "Acme\x00 Inc.", "contains the control character U+0000"),
    ("invoices.csv", "description", "ring the bell\x07", "contains the control character U+0007"),
    ("contacts.csv", "name", "\x1b[31mAnn", "contains the control character U+001B"),
])
def test_a_hostile_value_is_an_export_error_and_nothing_is_written(run, tmp_path, db_url, file, column, value,
                                                                   message):
    """Each of these validated (or crashed validate) and then failed the build or the PostgreSQL import."""
    run("sample-data", "export", "--customers", "2", "--invoices", "3")
    _set_field(tmp_path / "export" / file, 2, column, value)
    for command in (("validate", "export"), ("build", "export", "--out", "site")):
        result = run(*command)
        assert result.exit_code == 2, result.output
        lines = [line for line in result.output.splitlines() if line.startswith(f"{file}:2: {column}: ")]
        assert len(lines) == 1 and message in lines[0], result.output
        assert len(lines[0]) < 300  # the value is not echoed in full
        assert "Traceback" not in result.output and "nothing was written" in result.output
    assert not (tmp_path / "site").exists()
    store = Store(db_url)
    try:
        with store.begin() as conn:
            assert store.latest_as_of(conn) is None  # nothing imported
    finally:
        store.close()


def test_the_largest_amounts_an_export_may_hold_build_and_report(run, tmp_path):
    """Amounts up to the cap, and totals below it, go through the whole build and the reports' sums."""
    run("sample-data", "export", "--customers", "2", "--invoices", "3")
    path = tmp_path / "export" / "invoices.csv"
    _set_field(path, 2, "amount", "46116860184273879.04")  # 2^62 minor units
    _set_field(path, 2, "balance", "46116860184273879.04")
    assert run("validate", "export").exit_code == 0
    result = run("build", "export", "--out", "site")
    assert result.exit_code == 0, result.output
    kpis = run("report", "kpis", "--format", "json")
    assert kpis.exit_code == 0, kpis.output
    assert 2**62 < max(json.loads(kpis.output)["open_ar"].values()) < 2**63
