"""Documents for folder targets: `/files/<token>`, the short-lived address /d redirects to.

With an S3 target, /d redirects to a presigned S3 URL instead and this route answers 404. The token
(salt `file`, valid FILE_LINK_SECONDS) names the customer, key version and object name; the folder is
derived here from the verified customer, and the key version is checked again so a revocation also stops
downloads already handed out.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, abort, send_file
from itsdangerous import BadSignature

from portal.export.model import DOCUMENT_TYPES, document_disposition
from webhook.errors import TokenRejected
from webhook.security import FILE_CSP, PDF_CSP, rate_limited
from webhook.services import FILE_LINK_SECONDS, services

bp = Blueprint("files", __name__)

_OBJECT_NAME = re.compile(r"[0-9a-f]{64}\.[a-z0-9]{1,5}")


@bp.get("/files/<token>")
@rate_limited("file")
def download(token: str) -> Any:
    s = services()
    if s.docs_root is None:
        abort(404)
    try:
        data = s.files.loads(token, max_age=FILE_LINK_SECONDS)
    except BadSignature as exc:  # includes SignatureExpired
        raise TokenRejected("file", token, exc.__class__.__name__) from None
    if not (isinstance(data, list) and len(data) == 4 and isinstance(data[0], str) and isinstance(data[1], int)
            and isinstance(data[2], str) and _OBJECT_NAME.fullmatch(data[2]) and isinstance(data[3], str)):
        raise TokenRejected("file", token, "malformed")
    customer_id, key_version, name, filename = data
    if s.store.active_key_version(customer_id) != key_version:
        raise TokenRejected("file", token, "revoked or unknown customer")
    folder = (s.docs_root / "docs" / s.signer.customer_key(customer_id, key_version)).resolve()
    path = (folder / name).resolve()
    if not path.is_relative_to(folder) or not path.is_file():
        abort(404)
    suffix = path.suffix.lower()
    inline = document_disposition(name) == "inline"
    response = send_file(path, mimetype=DOCUMENT_TYPES.get(suffix, "application/octet-stream"),
                         as_attachment=not inline, download_name=filename or name, conditional=True, max_age=0)
    response.headers["Content-Security-Policy"] = PDF_CSP if inline and suffix == ".pdf" else FILE_CSP
    response.headers["Cache-Control"] = "private, no-store"
    return response
