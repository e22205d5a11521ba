"""What to upload and what to delete, in which order: decided before anything on the target changes.

The order never shows a reader a page linking to something not there yet: 1. assets and documents, 2. invoice
pages, 3. account and statement pages (they link to the invoice pages); deletions run the other way round, and
only once every upload succeeded (docs/publish.md, "Order"). What the target holds comes from its manifest,
except for paths a journal says an unfinished run touched: those are checked one by one before being trusted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from portal.publish.manifest import JOURNAL, REMOTE_MANIFEST, decode_journal, decode_manifest
from portal.publish.objects import LocalFile
from portal.publish.targets import Target


@dataclass
class RemoteState:
    """What the target holds, as far as it can tell without reading every object."""

    files: dict[str, str]  # its manifest: path -> sha256, as left by the last complete run
    unsure: set[str] = field(default_factory=set)  # paths that may differ from `files`: check before trusting
    sizes: dict[str, int] = field(default_factory=dict)  # sizes found by a scan (saves checks)
    has_manifest: bool = True
    journal: set[str] = field(default_factory=set)  # a journal left by an unfinished run


@dataclass
class Plan:
    uploads: list[LocalFile]  # in publishing order
    deletes: list[str]  # in deleting order
    unchanged: int
    manifest: dict[str, str]  # what the target holds when the run is done
    write_manifest: bool
    journal: set[str]  # the journal to hold while changing things


def upload_phase(path: str) -> int:
    """0: assets and documents; 1: invoice pages; 2: account and statement pages (they link to the others)."""
    if not path.startswith("c/"):
        return 0
    return 1 if "/i/" in path else 2


def read_state(target: Target) -> RemoteState:
    """The target's manifest and journal; without a readable pair, every site file found is unsure."""
    manifest = target.read(REMOTE_MANIFEST)
    files = decode_manifest(manifest) if manifest is not None else None
    journal_data = target.read(JOURNAL)
    journal = set() if journal_data is None else decode_journal(journal_data)
    if files is None or journal is None:
        sizes = target.scan()  # find out what is there, object by object
        return RemoteState({}, unsure=set(sizes), sizes=sizes, has_manifest=False)
    return RemoteState(files, unsure=set(journal), journal=journal)


def make_plan(local: dict[str, LocalFile], state: RemoteState, checked: dict[str, str | None]) -> Plan:
    """Decide what to upload and delete. `checked` holds the sha256 found on the target for unsure paths."""
    uploads = []
    for path, item in local.items():
        held = checked.get(path) if path in state.unsure else state.files.get(path)
        if held != item.sha256:
            uploads.append(item)
    uploads.sort(key=lambda f: (upload_phase(f.path), f.path))
    stale = (set(state.files) | state.unsure) - set(local)
    deletes = sorted(stale, key=lambda p: (-upload_phase(p), p))
    manifest = {p: f.sha256 for p, f in local.items()}
    return Plan(uploads=uploads, deletes=deletes, unchanged=len(local) - len(uploads), manifest=manifest,
                write_manifest=not state.has_manifest or state.files != manifest,
                journal=state.journal | {f.path for f in uploads} | stale)
