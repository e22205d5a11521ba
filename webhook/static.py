"""The built site, served next to the webhook in development (`portal serve`), and the shared assets.

Production serves pages from S3/CloudFront; here only `c/...` (pages) and `assets/...` are reachable,
never `docs/` (private documents go through /d) nor dot-files (the manifest, the build lock, temp files).
Assets are also served from memory, so the webhook's own pages (expired link, errors) have their
stylesheet even when no site folder is given.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, send_file
from werkzeug.security import safe_join

from webhook.services import services

bp = Blueprint("site", __name__)

IMMUTABLE = "public, max-age=31536000, immutable"  # asset names carry their content hash


def _safe_file(root: Path, relative: str) -> Path:
    """The file at `relative` under `root`, or 404: no '..', no dot-files, no symlink out of the folder."""
    parts = relative.split("/")
    if any(not part or part.startswith(".") for part in parts):
        abort(404)
    joined = safe_join(str(root), relative)
    if joined is None:
        abort(404)
    path = Path(joined).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        abort(404)
    return path


@bp.get("/assets/<path:name>")
def asset(name: str) -> Any:
    s = services()
    data = s.assets.files.get(f"assets/{name}")
    if data is not None:
        mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        response = Response(data, mimetype=mimetype)
    elif s.site_dir is not None:
        response = send_file(_safe_file(s.site_dir / "assets", name), conditional=True)
    else:
        abort(404)
    response.headers["Cache-Control"] = IMMUTABLE
    return response


@bp.get("/c/<path:path>")
def page(path: str) -> Any:
    s = services()
    if s.site_dir is None:
        abort(404)
    if path.endswith("/"):
        path += "index.html"
    response = send_file(_safe_file(s.site_dir / "c", path), conditional=True)
    # Personal pages: the browser may keep them but must revalidate; shared caches must not keep them.
    response.headers["Cache-Control"] = "private, no-cache"
    return response
