"""The /staff blueprint and what its views share: rendering, query-string parsing, CSV responses.

The routes live in webhook/staff/overview.py (login, overview, staff users) and webhook/staff/views.py (tables,
exports, dispute actions); both register on `bp`, which runs `require_staff` before every request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, request, stream_with_context, url_for
from werkzeug.exceptions import BadRequest

from portal.core.money import AmountError, format_money, is_currency, parse_amount
from portal.core.templating import BUILTIN_TEMPLATES
from webhook.services import services
from webhook.staff.auth import current_session, require_staff

bp = Blueprint("staff", __name__, url_prefix="/staff")
bp.before_request(require_staff)

PER_PAGE = 50
MAX_PAGE = 100_000
NAV = [("staff.overview", "Overview"), ("staff.receipts", "Receipts"), ("staff.payments", "Payments"),
       ("staff.disputes", "Disputes"), ("staff.customers", "Customers"), ("staff.worklist", "Worklist"),
       ("staff.activity_page", "Activity")]


class BadQuery(BadRequest):
    """A filter or sort the views cannot use; the message names the field and the value."""


@cache
def stylesheet() -> tuple[str, bytes]:
    """(file name with content hash, bytes) of the staff stylesheet, read once per process."""
    data = (Path(BUILTIN_TEMPLATES) / "assets" / "staff.css").read_bytes()
    return f"staff.{hashlib.sha256(data).hexdigest()[:12]}.css", data


def current_email() -> str:
    """The logged-in staff user's email, for the audit log and the dispute's `updated_by`."""
    session = current_session()
    return session.user.email if session else ""


def money(minor: int | None, currency: str) -> str:
    if minor is None:
        return ""
    return format_money(int(minor), currency, services().settings.default_locale)


def when(value: datetime | date | None) -> str:
    """Times in UTC, said so: staff in several time zones read the same table."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return value.isoformat()


def page(template: str, status: int = 200, **context: Any) -> tuple[str, int, dict[str, str]]:
    s = services()
    session = current_session()
    css = url_for("site.asset", name=s.assets.urls["portal.css"].removeprefix("assets/"))
    html = s.templates.get_template(template).render(
        css_url=css, staff_css_url=url_for("staff.asset", name=stylesheet()[0]), nav=NAV,
        endpoint=request.endpoint, user=session.user if session else None,
        csrf_token=session.csrf_token if session else "", company_name=s.settings.company_name,
        money=money, when=when, url_with=url_with, export_url=export_url, url_for=url_for, **context)
    return html, status, {"Content-Type": "text/html; charset=utf-8"}


def url_with(**changes: Any) -> str:
    """This page's address with some query arguments changed (None removes one): sort links, pages."""
    args = {k: v for k, v in request.args.items() if v != ""}
    for key, value in changes.items():
        if value is None:
            args.pop(key, None)
        else:
            args[key] = str(value)
    return url_for(request.endpoint or "staff.overview", **args)


def export_url(endpoint: str) -> str:
    """The CSV export of what this page shows: the same filters and sort, every page."""
    args = {k: v for k, v in request.args.items() if v != "" and k != "page"}
    return url_for(endpoint, **args)


# --- query-string parsing ----------------------------------------------------------------------------------


def text_arg(name: str, limit: int = 200) -> str | None:
    value = request.args.get(name, "").strip()
    return value[:limit] or None


def int_arg(name: str, label: str, minimum: int = 0, maximum: int = 10**9) -> int | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not minimum <= int(raw) <= maximum:
        raise BadQuery(f'{label}: "{raw[:40]}" is not a whole number from {minimum} to {maximum}')
    return int(raw)


def amount_arg(name: str, label: str, currency: str) -> int | None:
    """An amount typed in major units ("1,250.50") as minor units of `currency` (money.parse_amount: more
    decimals than the currency has are refused, not rounded)."""
    raw = request.args.get(name, "").strip().replace(",", "")
    if not raw:
        return None
    try:
        return parse_amount(raw[:40], currency)
    except AmountError as exc:
        raise BadQuery(f"{label}: {exc}") from exc


def currency_arg() -> str | None:
    code = (text_arg("currency", 3) or "").upper() or None
    if code is not None and not is_currency(code):
        raise BadQuery(f'Currency: "{code}" is not a currency code')
    return code


def sort_args(default: str, default_desc: bool) -> tuple[str, bool, int]:
    sort = text_arg("sort", 40) or default
    direction = request.args.get("dir", "")
    descending = default_desc if direction not in {"asc", "desc"} else direction == "desc"
    number = int_arg("page", "Page", 1, MAX_PAGE) or 1
    return sort, descending, number


# --- CSV ---------------------------------------------------------------------------------------------------


def csv_response(chunks: Iterable[str], filename: str) -> Response:
    """Stream an export as it is produced (100,000 rows never sit in memory as one string)."""

    def encoded() -> Iterator[bytes]:
        for chunk in chunks:
            yield chunk.encode("utf-8")

    response = Response(stream_with_context(encoded()), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M")
