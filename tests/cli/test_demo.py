"""`portal demo` (portal/cli/demo.py): sample data -> build -> links that verify."""

from __future__ import annotations

from portal.core.signing import Signer
from tests.conftest import make_settings


def test_demo_builds_and_prints_links_that_verify(run, tmp_path, db_url):
    result = run("demo", "--no-serve", "--customers", "3", "--invoices", "5")
    assert result.exit_code == 0, result.output
    urls = [word for word in result.output.split() if "/l/" in word]
    assert len(urls) >= 3
    signer = Signer(make_settings(db_url))
    assert {signer.read_link(u.rsplit("/l/", 1)[1]).customer_id for u in urls} >= {"C00001", "C00002", "C00003"}
    assert (tmp_path / "build" / ".manifest.json").is_file()
