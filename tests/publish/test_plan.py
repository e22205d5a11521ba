"""The publishing plan: upload order (assets and documents, invoice pages, account pages), deletions the other
way round, and trust in the target's manifest except where an unfinished run left a journal."""

from __future__ import annotations

from pathlib import Path

from portal.publish.objects import LocalFile
from portal.publish.plan import RemoteState, make_plan


def local(path: str, sha: str = "a" * 64) -> LocalFile:
    return LocalFile(path, sha, 1, Path("/nonexistent") / path)


def test_plan_uploads_assets_and_documents_then_invoice_pages_then_account_pages():
    files = {p: local(p) for p in ("c/k/index.html", "c/k/i/I1.html", "docs/k/x.pdf", "assets/p.1.css",
                                   "c/k/statement.html")}
    state = RemoteState({"c/old/index.html": "b" * 64, "c/old/i/I9.html": "b" * 64, "docs/old/y.pdf": "b" * 64})

    plan = make_plan(files, state, {})

    assert [f.path for f in plan.uploads] == ["assets/p.1.css", "docs/k/x.pdf", "c/k/i/I1.html",
                                              "c/k/index.html", "c/k/statement.html"]
    assert plan.deletes == ["c/old/index.html", "c/old/i/I9.html", "docs/old/y.pdf"]
    assert plan.journal == set(files) | set(state.files) and plan.write_manifest


def test_plan_trusts_the_manifest_but_checks_paths_an_unfinished_run_touched():
    files = {"c/k/index.html": local("c/k/index.html"), "c/k/i/I1.html": local("c/k/i/I1.html")}
    state = RemoteState({p: "a" * 64 for p in files}, unsure={"c/k/i/I1.html", "c/gone/index.html"},
                        journal={"c/k/i/I1.html", "c/gone/index.html"})

    plan = make_plan(files, state, {"c/k/i/I1.html": "c" * 64})

    assert [f.path for f in plan.uploads] == ["c/k/i/I1.html"]  # the killed run left other content there
    assert plan.deletes == ["c/gone/index.html"]  # uploaded by the killed run, not in this build
    assert make_plan(files, state, {"c/k/i/I1.html": "a" * 64}).uploads == []
