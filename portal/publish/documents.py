"""How a reader reaches a document of the site (`docs/<customer key>/<file>`): never by a public address.

Documents are private objects. The webhook's /d/ route checks a token, records `document_viewed`, then sends
the browser to what the target's `download` gives: a presigned URL valid a few minutes (S3), or, for a folder,
the file, which the webhook serves itself through its short-lived /files/ address (docs/webhook.md). Either way
the browser shows inline only the types it shows safely and downloads every other type
(portal.export.reader.document_disposition), and only paths under docs/ are ever handed out.
"""

from __future__ import annotations

from pathlib import Path

from portal.core.config import Settings
from portal.export.model import document_disposition
from portal.publish.objects import Download, PublishError, is_site_path
from portal.publish.targets import FolderTarget, Target, choose_target

MAX_EXPIRES = 7 * 24 * 3600  # SigV4's limit for a presigned URL


def served_documents(settings: Settings, site_dir: Path | None = None) -> Target:
    """Where the webhook finds the site's documents: the S3 target; for a folder target the built site it serves
    in development (`site_dir`), else the target folder."""
    target = choose_target(settings.target)
    if target.local_root is None:
        return target
    return FolderTarget((site_dir or target.local_root).resolve())


def document_download(target: Target, object_key: str, expires_in: int, filename: str | None = None) -> Download:
    """How a reader gets the document `object_key` for `expires_in` seconds, saved as `filename`."""
    if not object_key.startswith("docs/") or not is_site_path(object_key):
        raise PublishError(f"{object_key!r}: only documents (docs/...) can be presigned")
    if not 1 <= expires_in <= MAX_EXPIRES:
        raise PublishError(f"expires_in: {expires_in} must be between 1 second and 7 days")
    # Inline only for the types browsers show safely; anything else downloads, as from a folder target.
    return target.download(object_key, expires_in, filename, disposition=document_disposition(object_key))


def presign_document(settings: Settings, object_key: str, expires_in: int = 300, *,
                     filename: str | None = None) -> str:
    """A presigned GET URL, valid `expires_in` seconds, for a document of the site (`docs/<key>/<file>`).

    `filename` sets the name the browser saves the file under. For a folder target the dev server serves
    documents, so this raises PublishError.
    """
    target = choose_target(settings.target)
    if target.local_root is not None:
        raise PublishError(f"target {settings.target}: documents in a folder are served by the webhook's dev "
                           "server (portal serve), not through presigned URLs")
    return document_download(target, object_key, expires_in, filename).url
