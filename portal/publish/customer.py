"""Publishing ONE customer's files, without a build folder and without the whole-site manifest.

The target keeps a small manifest per customer, `.portal-customers/<customer key>.json.gz` (path -> SHA-256 of
what the last refresh of that customer put there, and the page revision it rendered). A refresh reads that one
object, uploads what differs (in the safe order of a full publish: documents and assets, invoice pages, then the
account and statement pages that link to them), deletes what the customer no longer has, and writes the
customer's manifest last. Its cost is the customer's size, never the site's.

A run killed half-way is safe to repeat: until the manifest is written, the next run compares with the older
one and uploads again; deletions before the manifest only remove paths the new manifest will not list.

How this stays right while a nightly publish runs, which writes the same objects from its build folder and
knows them through the whole-site manifest: docs/refresh.md, and portal/publish/freshness.py.
"""

from __future__ import annotations

import gzip
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import groupby

from portal.publish.objects import LocalFile
from portal.publish.plan import upload_phase
from portal.publish.targets import Target
from portal.publish.transfers import batches, counted, run_all

CUSTOMER_MANIFESTS = ".portal-customers"
VERSION = 1
WORKERS = 8  # one customer is a dozen files: enough requests in flight to hide S3's latency


def customer_manifest_name(key: str) -> str:
    """A private object under the target, named by the customer's key (its folders c/KEY/ and docs/KEY/): whoever
    writes into those folders without updating it (a whole-site publish, a reconcile) removes it by that name."""
    return f"{CUSTOMER_MANIFESTS}/{key}.json.gz"


def key_of(path: str) -> str | None:
    """The customer key of a path in a customer's folders (c/KEY/..., docs/KEY/...), else None."""
    parts = path.split("/")
    return parts[1] if len(parts) > 2 and parts[0] in ("c", "docs") else None


def forget_customer_manifests(target: Target, paths: list[str]) -> None:
    """Remove the own manifests of the customers whose folders hold `paths`, after writing or deleting those paths
    without them: a manifest must never say a file is there when it is not, or has content it has not."""
    names = sorted({customer_manifest_name(k) for p in paths if (k := key_of(p)) is not None})
    for start in range(0, len(names), target.delete_batch):
        target.delete(names[start:start + target.delete_batch])


@dataclass
class CustomerPublished:
    uploaded: int = 0
    deleted: int = 0
    unchanged: int = 0
    bytes: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        return (f"{self.uploaded} uploaded ({self.bytes} bytes), {self.unchanged} unchanged, {self.deleted} deleted "
                f"in {self.seconds * 1000:.0f} ms")


@dataclass
class CustomerManifest:
    files: dict[str, str] = field(default_factory=dict)  # path -> sha256
    revision: int = 0


def read_customer_manifest(target: Target, customer_id: str, key: str) -> CustomerManifest | None:
    """The customer's manifest on the target, or None when there is none (or it cannot be read)."""
    data = target.read(customer_manifest_name(key))
    if data is None:
        return None
    try:
        decoded = json.loads(gzip.decompress(data))
        if decoded.get("version") == VERSION and decoded.get("customer") == customer_id:
            files = decoded["files"]
            if isinstance(files, dict) and all(isinstance(v, str) for v in files.values()):
                return CustomerManifest(files, int(decoded.get("revision", 0)))
    except (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return None


def encode_customer_manifest(customer_id: str, files: dict[str, str], revision: int, as_of: str) -> bytes:
    data = {"version": VERSION, "customer": customer_id, "revision": revision, "as_of": as_of,
            "files": dict(sorted(files.items()))}
    return gzip.compress(json.dumps(data, separators=(",", ":")).encode(), 5, mtime=0)


def publish_customer(target: Target, customer_id: str, key: str, files: list[LocalFile], revision: int, as_of: str, *,
                     keep: dict[str, str] | None = None, shared: list[LocalFile] = (),
                     trust_manifest: bool = True) -> CustomerPublished:
    """Bring the customer's objects on `target` up to `files`.

    `keep`: paths of the customer this run cannot supply (a supplied document whose export folder is not on this
    machine) -> their sha256: left as they are and still listed. `shared`: files every page uses (the assets),
    uploaded only when the target does not hold them yet. `trust_manifest` False: upload every file of the customer
    (someone else wrote its objects since its manifest; the manifest still says what to delete). Raises
    PublishError, having deleted nothing, when an upload fails."""
    started = time.monotonic()
    result = CustomerPublished()
    old = read_customer_manifest(target, customer_id, key)
    keep = keep or {}
    if old is not None:
        held = old.files
    else:
        # The customer's first refresh: what the nightly publish put in its folders is found by listing them (a
        # request or two), so that files it no longer has are deleted now. Their content is not known: "" never
        # equals a sha256, so everything of the customer is uploaded once.
        held = dict.fromkeys(target.scan(_folders_of([*files, *(LocalFile(p, s, 0, None) for p, s in keep.items())])),
                             "")
        held.update({p: s for p, s in keep.items() if p in held})
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="publish-customer") as pool:
        trusted = held if trust_manifest else {}
        # Asking S3 whether a document is there is a round trip: ask for all of them at once, not one by one (a
        # customer's first refresh asks for every document it has: 50-70 ms one by one at 7 documents on SeaweedFS).
        unsure = [(f, trusted) for f in files if trusted.get(f.path) != f.sha256] + [(f, {}) for f in shared]
        there = pool.map(lambda pair: _already_there(target, *pair), unsure)
        uploads = [f for (f, _), present in zip(unsure, there, strict=True) if not present]
        uploads.sort(key=lambda f: (upload_phase(f.path), f.path))
        for _phase, items in groupby(uploads, key=lambda f: upload_phase(f.path)):
            run_all(pool, counted(target.put), items, WORKERS * 2, lambda _n: None, target.name, "uploading")
        listed = {f.path: f.sha256 for f in files}
        listed.update({p: s for p, s in keep.items() if p not in listed})
        deletes = sorted(set(held) - set(listed), key=lambda p: (-upload_phase(p), p))
        for _phase, paths in groupby(deletes, key=upload_phase):
            run_all(pool, counted(target.delete), batches(list(paths), target.delete_batch), WORKERS,
                    lambda _n: None, target.name, "deleting")
    target.write(customer_manifest_name(key), encode_customer_manifest(customer_id, listed, revision, as_of))
    result.uploaded, result.deleted = len(uploads), len(deletes)
    result.unchanged = len(files) - len([f for f in uploads if f.path in listed])
    result.bytes = sum(f.size for f in uploads)
    result.seconds = time.monotonic() - started
    return result


def _folders_of(files: list[LocalFile]) -> tuple[str, ...]:
    """The customer's own folders (c/KEY/, docs/KEY/) its files live in."""
    return tuple(sorted({"/".join(f.path.split("/")[:2]) + "/" for f in files if f.path.startswith(("c/", "docs/"))}))


_present: set[tuple[str, str, str]] = set()  # (target, path, sha256) known to be on a target: assets never change


def _already_there(target: Target, item: LocalFile, held: dict[str, str]) -> bool:
    """Documents and assets are named by their content: one the target holds need not be uploaded again. Asked
    only when the customer's manifest does not list the path (the first refresh of a customer, a new asset)."""
    if item.path in held:
        if item.path.rsplit("/", 1)[-1].startswith(item.sha256):
            return True  # a content-addressed name (a supplied document): there means the same
        if held[item.path]:
            return False  # the manifest lists other content
        # found by a scan, content unknown: ask the target (below), cheaper than uploading a document
    if item.path.startswith("c/"):
        return False
    key = (target.name, item.path, item.sha256)
    if key in _present:
        return True
    if target.remote_sha(item.path) == item.sha256:
        _present.add(key)
        return True
    return False
