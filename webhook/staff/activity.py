"""/staff/activity: the activity report per collector and for the team (portal/staff/activity.py), with its
charts and CSV export. A collector sees their own figures by default; managers, admins and viewers the team's.
The view parses the period, calls `activity` and renders; the figures and their definitions are in portal."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from flask import Response

from portal.core.money import format_money
from portal.staff.activity import COLUMNS, DEFINITIONS, PERIODS, activity, flat
from portal.staff.charts import Bar, bar_chart
from portal.staff.exports import to_csv
from webhook.services import services
from webhook.staff.auth import current_session
from webhook.staff.blueprint import BadQuery, bp, csv_response, page, stamp, text_arg


def _args() -> tuple[str, date, str | None]:
    period = text_arg("period", 10) or "week"
    if period not in PERIODS:
        raise BadQuery(f'Period: "{period}" is not one of {", ".join(PERIODS)}')
    raw = text_arg("date", 10)
    try:
        day = date.fromisoformat(raw) if raw else datetime.now(UTC).date()
    except ValueError:
        raise BadQuery(f'Date: "{raw}" is not a date (YYYY-MM-DD)') from None
    session = current_session()
    collector = (text_arg("collector", 320) or "").lower()
    if not collector and session is not None and session.user.role == "collector":
        collector = session.user.email
    return period, day, None if collector in ("", "all") else collector


@bp.get("/activity")
def activity_page() -> Any:
    s = services()
    period, day, collector = _args()
    report = activity(s.store, s.settings, period, day, collector)
    who = collector or "(team)"
    hours = report["by_hour"].get(who, [0] * 24)
    charts = [bar_chart("by-hour", f"Touches by hour of day (UTC), {who}",
                        [Bar(f"{h:02d}:00", n, str(n)) for h, n in enumerate(hours) if n or 7 <= h <= 18])]
    currency = s.settings.default_currency
    daily = report["daily"]
    charts.append(bar_chart("closed", "Invoices closed per day (the collector's customers: every customer for "
                            "the team)", [Bar(d.isoformat(), n, str(n)) for d, n, _ in daily]))
    charts.append(bar_chart("cash", f"Cash collected per day, {currency}",
                            [Bar(d.isoformat(), cash.get(currency, 0),
                                 format_money(cash.get(currency, 0), currency, s.settings.default_locale))
                             for d, _, cash in daily]))
    return page("staff/activity.html", title="Activity", rows=report["rows"], charts=charts, period=period,
                day=day.isoformat(), collector=collector or "", periods=PERIODS, definitions=DEFINITIONS,
                targets=(s.settings.activity_touches_per_hour, s.settings.activity_emails_per_ten_calls),
                hours_from=f"a schedule of {s.settings.activity_schedule_hours} hours per day with a touch"
                if s.settings.activity_schedule_hours else "the logged touches (gaps over 30 minutes left out)")


@bp.get("/activity.csv")
def activity_csv() -> Response:
    s = services()
    period, day, collector = _args()
    rows = [flat(r) for r in activity(s.store, s.settings, period, day, collector)["rows"]]
    return csv_response([to_csv(rows, COLUMNS)], f"activity-{stamp()}.csv")
