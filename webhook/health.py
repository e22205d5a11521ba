"""`GET /healthz`: the process answers (for load balancers and the tests' start-up wait).

It does not touch the database on purpose: a database outage should show as 503s on the real routes,
not make every instance look dead and get recycled.
"""

from __future__ import annotations

from flask import Blueprint, Response

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return Response("ok\n", mimetype="text/plain")
