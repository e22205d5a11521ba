"""Files attached to a dispute: what is accepted, and where they are kept (privately, never with the site).

Checks run before anything is written (portal/disputes/service.py calls `check_uploads` first): at most
MAX_FILES files of at most MAX_FILE_SIZE each, and only PDF, PNG or JPEG as sniffed from the content's first bytes
(the name and the browser's Content-Type are the sender's word). Stored names keep only safe characters and get
the sniffed type's extension, so no name can leave its folder or make a browser run what it holds.

Storage is the private target (`settings.effective_private_target`), reached through the Target interface
(portal/publish/targets.py) like every other storage: for a folder target a folder outside the site (default
`private/`), which no static host serving the site can reach; for S3 the target's `disputes/` prefix (or another
bucket or prefix), which the CDN does not serve (docs/disputes.md). Only `attachment_for_staff` reads them back:
customers never get their attachments from us, and staff get a download, never an inline view.
"""

from __future__ import annotations

import logging
import os
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from portal.core.config import Settings
from portal.core.errors import NotFound
from portal.core.i18n import N_
from portal.disputes.errors import DisputeRefused
from portal.publish.targets import Target, choose_target
from portal.store import disputes as disputestore
from portal.store.database import Store

log = logging.getLogger(__name__)

MAX_FILES = 5
MAX_FILE_SIZE = 10 * 1024 * 1024
PRIVATE_PREFIX = "disputes/"
# Content is sniffed from its first bytes: the name and the browser's Content-Type are the sender's word.
MAGIC = ((b"%PDF-", "application/pdf", ".pdf"), (b"\x89PNG\r\n\x1a\n", "image/png", ".png"),
         (b"\xff\xd8\xff", "image/jpeg", ".jpg"))


@dataclass(frozen=True)
class Upload:
    """One attached file as received: the name the browser gave and the bytes (already size-capped)."""

    filename: str
    data: bytes


def sniff(data: bytes) -> tuple[str, str] | None:
    """(content type, extension) from the content's magic bytes; None for anything but PDF, PNG, JPEG."""
    for magic, content_type, extension in MAGIC:
        if data.startswith(magic):
            return content_type, extension
    return None


def safe_name(filename: str, extension: str) -> str:
    """A file name that cannot leave its folder or surprise a shell or a browser: the last path part only,
    ASCII letters, digits, '.', '-', '_', at most 80 characters, and the extension of the sniffed type."""
    base = re.split(r"[\\/]", filename or "")[-1]
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode()
    stem = os.path.splitext(base)[0]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:80] or "attachment"
    return stem + extension


def check_uploads(uploads: Sequence[Upload]) -> list[tuple[Upload, str, str]]:
    """(upload, content type, safe name) per file; refuses too many, too large, or not PDF/PNG/JPEG."""
    files = [u for u in uploads if u.filename or u.data]  # a form with no file chosen sends an empty part
    if len(files) > MAX_FILES:
        raise DisputeRefused(N_("At most %(max)d files can be attached."), max=MAX_FILES)
    checked = []
    for u in files:
        shown = safe_name(u.filename, "")
        if len(u.data) > MAX_FILE_SIZE:
            raise DisputeRefused(N_("The file %(name)s is larger than %(size)d MB."), 413, name=shown,
                                 size=MAX_FILE_SIZE // (1024 * 1024))
        kind = sniff(u.data)
        if kind is None:
            raise DisputeRefused(N_("The file %(name)s is not a PDF, PNG or JPEG file. Only those can be attached."),
                                 name=shown)
        checked.append((u, kind[0], safe_name(u.filename, kind[1])))
    return checked


# --- private storage ------------------------------------------------------------------------------------------


def private_storage(settings: Settings) -> Target:
    """Where attachments are kept: the private target, a folder or S3."""
    return choose_target(settings.effective_private_target)


def attachment_path(dispute_id: int, n: int, name: str) -> str:
    """Where the `n`-th attachment of a dispute is stored, relative to the private target."""
    return f"{PRIVATE_PREFIX}{dispute_id}/{n}-{name}"


def discard(storage: Target, paths: Sequence[str]) -> None:
    """Best effort: remove what a failed submission wrote (its rows were rolled back)."""
    for path in paths:
        try:
            storage.remove(path)
        except Exception:  # noqa: BLE001 - cleanup must not hide the original error
            log.exception("could not remove dispute attachment %s", path)


def attachment_for_staff(store: Store, settings: Settings, dispute_id: int, n: int,
                         expires_in: int = 300) -> bytes | str:
    """An attachment for AR staff: the bytes (folder target) or a presigned URL valid `expires_in` seconds
    (S3). No customer route calls this: customers never get their attachments back from us."""
    with store.begin() as conn:
        row = disputestore.get_attachment(conn, int(dispute_id), int(n))
    if row is None:
        raise NotFound(f"dispute {dispute_id} has no attachment {n}")
    if not row.path.startswith(PRIVATE_PREFIX) or ".." in row.path.split("/"):
        raise NotFound(f"dispute {dispute_id} attachment {n}: unexpected storage path")
    # A download, never shown inline: it is whatever a customer uploaded (as the folder target's route).
    download = private_storage(settings).download(row.path, expires_in, row.filename, disposition="attachment")
    if download.url:
        return download.url
    if download.file is None or not download.file.is_file():
        raise NotFound(f"dispute {dispute_id} attachment {n}: no file {download.file} (attachments written before "
                       "private_target existed are in the site folder's disputes/: see docs/disputes.md)")
    return download.file.read_bytes()
