"""A build in N shards, published shard by shard and reconciled once, equals one unsharded build and publish."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from portal.build.pipeline import build, import_only, parse_shard, shard_of
from portal.core.errors import BuildError
from portal.export.reader import read_export
from portal.publish.manifest import MANIFEST, REMOTE_MANIFEST, Manifest, decode_manifest
from portal.publish.objects import PublishError
from portal.publish.publisher import publish
from portal.publish.shards import publish_shard, reconcile, shard_manifest_name
from portal.store.database import Store
from tests.conftest import make_settings
from tests.s3server import SeaweedS3
from tests.site_helpers import listing, rewrite_csv

N = 3


def tree(root: Path) -> dict[str, bytes]:
    """Every site file under `root` (dot-files such as manifests, journals and locks left out)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)}


def remote_files(root: Path) -> dict[str, str]:
    files = decode_manifest((root / REMOTE_MANIFEST).read_bytes())
    assert files is not None
    return files


def build_shards(export_dir: Path, tmp_path: Path, settings, store, tag: str) -> list[Path]:
    import_only(export_dir, settings, store)
    folders = []
    for index in range(N):
        out = tmp_path / f"shard-{tag}-{index}"
        build(export_dir, out, settings, store=store, workers=1, shard=(index, N), skip_import=True)
        folders.append(out)
    return folders


def test_shard_of_is_deterministic_and_spreads_customers():
    assert shard_of("CUST-0001", 4) == shard_of("CUST-0001", 4)  # not Python's per-process salted hash()
    assert shard_of("CUST-0001", 1) == 0
    counts = [0] * 4
    for i in range(400):
        counts[shard_of(f"C{i}", 4)] += 1
    assert min(counts) > 60
    assert parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "-1/4", "1", "a/b"):
        with pytest.raises(BuildError):
            parse_shard(bad)


def test_sharded_build_publish_and_reconcile_equal_one_unsharded_build(settings, store, export_dir, tmp_path):
    full = tmp_path / "full"
    build(export_dir, full, settings, store=store, workers=1)
    shards = build_shards(export_dir, tmp_path, settings, store, "a")

    # The shards' manifests together are the unsharded manifest: same files, same owners, same customers.
    whole = Manifest.load(full)
    parts = [Manifest.load(s) for s in shards]
    assert [p.shard for p in parts] == [f"{i}/{N}" for i in range(N)]
    merged_files = {path: entry for p in parts for path, entry in p.files.items()}
    assert merged_files == whole.files
    assert {cid: c for p in parts for cid, c in p.customers.items()} == whole.customers
    for index, part in enumerate(parts):
        assert part.customers and all(shard_of(cid, N) == index for cid in part.customers)
        assert all(owner == "" or shard_of(owner, N) == index for _sha, _size, owner in part.files.values())
    assert "shard" not in json.loads((full / MANIFEST).read_text())  # unsharded manifests are unchanged

    # Publishing: the unsharded way into one target, the sharded way into another.
    single, sharded = tmp_path / "target-single", tmp_path / "target-sharded"
    publish(settings.replace(target=str(single)), full, workers=2)
    ticks: list[tuple[int, int]] = []
    for index, folder in enumerate(shards):
        publish_shard(settings.replace(target=str(sharded)), folder, index, N, workers=2,
                      progress=lambda done, total: ticks.append((done, total)))
    assert ticks[-1][0] == ticks[-1][1] > 0  # progress reaches the total, as publish() reports it
    assert (sharded / shard_manifest_name(0, N)).is_file()
    result = reconcile(settings.replace(target=str(sharded)), N, workers=2)
    assert result.deleted == 0
    assert tree(sharded) == tree(single)
    assert remote_files(sharded) == remote_files(single)
    assert not list(sharded.glob(".portal-*shard*"))  # shard manifests and journals are gone


def test_a_shard_publish_deletes_nothing_and_reconcile_deletes_stale_objects_once(settings, store, export_dir,
                                                                                   tmp_path):
    target = tmp_path / "target"
    shards = build_shards(export_dir, tmp_path, settings, store, "a")
    for index, folder in enumerate(shards):
        publish_shard(settings.replace(target=str(target)), folder, index, N, workers=2)
    reconcile(settings.replace(target=str(target)), N, workers=2)
    before = tree(target)

    # Next night: one customer is gone, so its pages and documents must go, but only at reconcile.
    gone = sorted(Manifest.load(shards[0]).customers)[0]
    gone_key = Manifest.load(shards[0]).customers[gone]["key"]
    ledger = read_export(export_dir, settings)
    kept = {i for i, invoice in ledger.invoices.items() if invoice.customer_id != gone}
    for name in ("customers.csv", "contacts.csv", "invoices.csv", "credits.csv", "documents.csv"):
        rewrite_csv(export_dir / name, lambda r: None if r["customer_id"] == gone else r)
    rewrite_csv(export_dir / "invoice_lines.csv", lambda r: r if r["invoice_id"] in kept else None)
    shards = build_shards(export_dir, tmp_path, settings, store, "a")  # same folders: an incremental build
    assert not any(p.startswith(f"c/{gone_key}/") for p in Manifest.load(shards[0]).files)
    assert not (shards[0] / "c" / gone_key).exists()  # the shard that owns the customer removed it locally

    for index, folder in enumerate(shards):
        publish_shard(settings.replace(target=str(target)), folder, index, N, workers=2)
        assert set(before) <= set(tree(target)), "a shard publish must never delete anything"
    with pytest.raises(PublishError, match="not published"):
        reconcile(settings.replace(target=str(target)), N + 1)  # a shard count that was not run: refused
    result = reconcile(settings.replace(target=str(target)), N, workers=2)
    stale = {p for p in before if p.startswith((f"c/{gone_key}/", f"docs/{gone_key}/"))}
    assert stale and result.deleted == len(stale)
    assert set(tree(target)) == set(before) - stale
    # The result equals an unsharded build and publish of the same export.
    full, single = tmp_path / "full", tmp_path / "single"
    build(export_dir, full, settings, store=store, workers=1)
    publish(settings.replace(target=str(single)), full, workers=2)
    assert tree(target) == tree(single)
    assert remote_files(target) == remote_files(single)
    # Once: a second reconcile has no shard manifests left to merge.
    with pytest.raises(PublishError, match="not published"):
        reconcile(settings.replace(target=str(target)), N)


def test_a_shard_build_removes_only_its_own_customers_files(settings, store, export_dir, tmp_path):
    out = tmp_path / "site"
    build(export_dir, out, settings, store=store, workers=1)  # the folder first holds the whole site
    whole = Manifest.load(out)
    result = build(export_dir, out, settings, store=store, workers=1, shard=(0, N), skip_import=True)
    assert result.removed_paths == []  # other shards' customers are not this shard's to remove
    assert all((out / p).is_file() for p in whole.files)
    part = Manifest.load(out)
    assert part.shard == f"0/{N}" and set(part.customers) == {c for c in whole.customers if shard_of(c, N) == 0}
    assert set(part.files) == {p for p, (_sha, _size, owner) in whole.files.items()
                               if owner == "" or shard_of(owner, N) == 0}


def test_a_shard_folder_is_published_only_as_its_own_shard(settings, store, export_dir, tmp_path):
    shards = build_shards(export_dir, tmp_path, settings, store, "a")
    with pytest.raises(PublishError, match="holds shard 0/3"):
        publish_shard(settings.replace(target=str(tmp_path / "t")), shards[0], 1, N)
    full = tmp_path / "full"
    build(export_dir, full, settings, store=store, workers=1)
    with pytest.raises(PublishError, match="unsharded"):
        publish_shard(settings.replace(target=str(tmp_path / "t")), full, 0, N)


def test_shards_built_from_different_imports_are_not_merged(settings, store, export_dir, tmp_path):
    target = tmp_path / "target"
    shards = build_shards(export_dir, tmp_path, settings, store, "a")
    for index, folder in enumerate(shards):
        publish_shard(settings.replace(target=str(target)), folder, index, N, workers=2)
    # Shard 0's manifest as if written from an older import.
    name = target / shard_manifest_name(0, N)
    data = json.loads(gzip.decompress(name.read_bytes()))
    data["as_of"] = "2020-01-01T00:00:00+00:00"
    name.write_bytes(gzip.compress(json.dumps(data).encode()))
    with pytest.raises(PublishError, match="different imports"):
        reconcile(settings.replace(target=str(target)), N)
    assert not (target / REMOTE_MANIFEST).exists()  # nothing was changed


def remove_customer(export_dir: Path, settings, customer_id: str) -> None:
    ledger = read_export(export_dir, settings)
    kept = {i for i, invoice in ledger.invoices.items() if invoice.customer_id != customer_id}
    for name in ("customers.csv", "contacts.csv", "invoices.csv", "credits.csv", "documents.csv"):
        rewrite_csv(export_dir / name, lambda r: None if r["customer_id"] == customer_id else r)
    rewrite_csv(export_dir / "invoice_lines.csv", lambda r: r if r["invoice_id"] in kept else None)


def objects(client, bucket_name: str, prefix: str) -> dict[str, tuple[bytes, str, str, str]]:
    """Every site object under the prefix: key -> (body, sha256 metadata, content type, cache control)."""
    found = {}
    for key in listing(client, bucket_name, prefix):
        if key.startswith("."):
            continue
        answer = client.get_object(Bucket=bucket_name, Key=f"{prefix}/{key}")
        found[key] = (answer["Body"].read(), answer["Metadata"].get("sha256", ""), answer["ContentType"],
                      answer.get("CacheControl", ""))
    return found


def test_sharded_publish_to_s3_equals_an_unsharded_one(export_dir: Path, tmp_path: Path,
                                                       bucket: str, aws_env: SeaweedS3,
                                                       monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = make_settings(f"sqlite:///{tmp_path / 'portal.db'}")
    store = Store(settings.database_url)
    client = aws_env.client()
    single = settings.replace(target=f"s3://{bucket}/single")
    sharded = settings.replace(target=f"s3://{bucket}/sharded")
    try:
        full = tmp_path / "full"
        build(export_dir, full, settings, store=store, workers=1)
        publish(single, full, workers=4)
        shards = build_shards(export_dir, tmp_path, settings, store, "s3")
        for index, folder in enumerate(shards):
            publish_shard(sharded, folder, index, N, workers=4)
        assert reconcile(sharded, N, workers=4).deleted == 0
        assert objects(client, bucket, "sharded") == objects(client, bucket, "single")
        remote = {p: client.get_object(Bucket=bucket, Key=f"{p}/{REMOTE_MANIFEST}")["Body"].read()
                  for p in ("single", "sharded")}
        assert decode_manifest(remote["single"]) == decode_manifest(remote["sharded"])
        assert not [k for k in listing(client, bucket, "sharded") if "shard" in k]

        # A customer disappears: shard publishes upload, never delete; reconcile deletes once.
        before = set(listing(client, bucket, "sharded"))
        gone = sorted(Manifest.load(shards[1]).customers)[0]
        key = Manifest.load(shards[1]).customers[gone]["key"]
        remove_customer(export_dir, settings, gone)
        shards = build_shards(export_dir, tmp_path, settings, store, "s3")
        for index, folder in enumerate(shards):
            publish_shard(sharded, folder, index, N, workers=4)
            assert before <= set(listing(client, bucket, "sharded"))
        result = reconcile(sharded, N, workers=4)
        stale = {p for p in before if p.startswith((f"c/{key}/", f"docs/{key}/"))}
        assert stale and result.deleted == len(stale)
        build(export_dir, full, settings, store=store, workers=1)
        publish(single, full, workers=4)
        assert objects(client, bucket, "sharded") == objects(client, bucket, "single")
    finally:
        store.close()
