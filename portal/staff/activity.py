"""The activity report: what each collector (and the team) did in a day, week or month, and what it did to
receivables, against the team's targets (docs/collect.md, "Activity report").

Definitions (also on the page, `DEFINITIONS`):
- touches = calls + emails sent outside the portal + answers to questions, logged by the collector; notes,
  holds and promises are not contacts; the portal's own emails counted for the collector are shown apart
  (`portal_emails`) and not in the rates, since nobody spent time on them;
- hours worked: from the collector's logged touches and notes, first to last of each stretch, gaps over 30 minutes
  left out; with `activity_schedule_hours` set, that many hours for each day with at least one logged touch;
- touches per hour against `activity_touches_per_hour` (min, max; default 18-26), emails per call (emails and
  answers over calls) against `activity_emails_per_ten_calls` (default 15-25, about 2 per call): under / on / over,
  "no basis" when there were no hours or no calls;
- invoices closed (left the export in the period) and cash collected (money settled in the portal in the period,
  from the balances rule's journal, per currency) for the customers the collector has now; disputes resolved
  and days to resolve for those customers; questions answered by the collector and hours to answer; promises
  the collector made in the period, and those judged kept or broken in it.
Times are UTC; a week starts on Monday.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import DateTime, and_, extract, func, select, type_coerce

from portal.core.config import Settings
from portal.store import disputes as disputestore
from portal.store.collect import collector_of, promises, question_answers, touches, with_assignments
from portal.store.database import Store
from portal.store.plans import plan_outcomes
from portal.store.positions import position_entries
from portal.store.tables import customers, invoices

PERIODS = ("day", "week", "month")
TEAM = "(team)"
GAP = timedelta(minutes=30)
CONTACTS = ("call", "email", "answer")
LOGGED = ("call", "email", "answer", "note", "promise")
COLUMNS = ["collector", "period", "start", "calls", "reached", "emails", "answers", "touches", "portal_emails",
           "notes", "hours_worked", "touches_per_hour", "touches_per_hour_verdict", "emails_per_call",
           "emails_per_call_verdict", "promises_made", "promises_kept", "promises_broken", "invoices_closed",
           "cash_collected", "disputes_resolved", "days_to_resolve", "questions_answered", "hours_to_answer"]
DEFINITIONS = __doc__.split("Definitions (also on the page, `DEFINITIONS`):\n", 1)[1].strip()


def period_bounds(kind: str, day: date) -> tuple[datetime, datetime]:
    """[start, end) in UTC of the day, week (Monday first) or month holding `day`."""
    if kind not in PERIODS:
        raise ValueError(f"period {kind!r}: use one of {', '.join(PERIODS)}")
    if kind == "day":
        first, last = day, day + timedelta(days=1)
    elif kind == "week":
        first = day - timedelta(days=day.weekday())
        last = first + timedelta(days=7)
    else:
        first = day.replace(day=1)
        last = (first + timedelta(days=32)).replace(day=1)
    return datetime.combine(first, time(), UTC), datetime.combine(last, time(), UTC)


def _hours(times: list[datetime], schedule: int) -> float:
    if schedule:
        return float(schedule * len({t.date() for t in times}))
    times = sorted(times)
    worked = timedelta()
    for before, after in zip(times, times[1:], strict=False):
        if after - before <= GAP:
            worked += after - before
    return round(worked.total_seconds() / 3600, 2)


def _verdict(value: float | None, low: float, high: float) -> str:
    if value is None:
        return "no basis"
    return "under" if value < low else "over" if value > high else "on"


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def activity(store: Store, settings: Settings, kind: str, day: date, collector: str | None = None
             ) -> dict[str, Any]:
    """{"rows": one row per collector (COLUMNS) then the team's, "by_hour": collector -> 24 counts of touches by
    UTC hour, "daily": [(day, invoices closed, {currency: cash})] for the chart}. `collector`: only that one
    (and no team row)."""
    start, end = period_bounds(kind, day)
    wanted = collector.strip().lower() if collector else None
    whose = func.lower(touches.c.collector)
    chosen = [touches.c.occurred_at >= start, touches.c.occurred_at < end, touches.c.collector != "",
              *([whose == wanted] if wanted else [])]
    hour = extract("hour", touches.c.occurred_at)  # UTC: the store keeps UTC
    with store.begin() as conn:
        # Counted in the database: a week of the team's touches is some 30,000 rows (bench/workbench.py), and
        # reading them into Python took most of the report's time.
        counted = conn.execute(select(whose.label("who"), touches.c.kind, touches.c.outcome, hour.label("hour"),
                                      func.count().label("n"))
                               .where(*chosen).group_by(whose, touches.c.kind, touches.c.outcome, hour)).all()
        # Hours worked need each logged time; naive UTC (no conversion per row), only differences and days matter.
        logged: dict[str, list[datetime]] = defaultdict(list)
        for name, at in conn.execute(select(whose, type_coerce(touches.c.occurred_at, DateTime)).where(
                *chosen, touches.c.kind.in_(LOGGED), touches.c.created_by != "")):
            logged[name].append(at)
        owner = func.coalesce(collector_of(), "")

        def owned(table: Any, customer_id: Any) -> Any:  # the customers' collectors now, "" for nobody's
            return with_assignments(table.outerjoin(customers, customers.c.customer_id == customer_id))

        closed = conn.execute(select(owner, invoices.c.closed_at).select_from(owned(invoices, invoices.c.customer_id))
                              .where(invoices.c.closed_at >= start, invoices.c.closed_at < end)).all()
        cash = conn.execute(select(owner, invoices.c.currency, position_entries.c.settled,
                                   position_entries.c.recorded_at)
                            .select_from(owned(position_entries.join(invoices, and_(
                                invoices.c.invoice_id == position_entries.c.item_id,
                                position_entries.c.item_kind == "invoice")), position_entries.c.customer_id))
                            .where(position_entries.c.recorded_at >= start, position_entries.c.recorded_at < end)
                            ).all()
        d = disputestore.disputes
        resolved = conn.execute(select(owner, d.c.created_at, d.c.resolved_at).select_from(owned(d, d.c.customer_id))
                                .where(d.c.resolved_at >= start, d.c.resolved_at < end)).all()
        q = disputestore.questions
        answered = conn.execute(select(question_answers.c.answered_by, question_answers.c.answered_at,
                                       q.c.created_at).select_from(question_answers.join(
                                           q, q.c.question_id == question_answers.c.question_id))
                                .where(question_answers.c.answered_at >= start,
                                       question_answers.c.answered_at < end)).all()
        made = conn.execute(select(promises.c.collector, promises.c.status, promises.c.created_at,
                                   promises.c.settled_at).where(
            ((promises.c.created_at >= start) & (promises.c.created_at < end))
            | ((promises.c.settled_at >= start) & (promises.c.settled_at < end)))).all()
        made = [*made, *plan_outcomes(conn, start, end)]  # plans count as promises (docs/collect.md)

    rows: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    by_hour: dict[str, list[int]] = defaultdict(lambda: [0] * 24)
    for r in counted:
        row, n = rows[r.who], int(r.n)
        if r.kind == "portal_email":
            row["portal_emails"] += n
            continue
        if r.kind in CONTACTS:
            row["touches"] += n
            by_hour[r.who][int(r.hour)] += n
            by_hour[TEAM][int(r.hour)] += n
        if r.kind == "call":
            row["calls"] += n
            row["reached"] += n if r.outcome == "reached" else 0
        elif r.kind in ("email", "answer"):
            row["emails" if r.kind == "email" else "answers"] += n
        elif r.kind == "note":
            row["notes"] += n
    daily_closed: dict[date, int] = defaultdict(int)
    daily_cash: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for name, at in closed:
        rows[name]["invoices_closed"] += 1
        daily_closed[_aware(at).date()] += 1
    collected: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for name, currency, settled, at in cash:
        collected[name][currency] += int(settled)
        daily_cash[_aware(at).date()][currency] += int(settled)
    resolve_days: dict[str, list[float]] = defaultdict(list)
    for name, created, done in resolved:
        resolve_days[name].append((_aware(done) - _aware(created)).total_seconds() / 86400)
    answer_hours: dict[str, list[float]] = defaultdict(list)
    for by, at, asked in answered:
        answer_hours[by.lower()].append((_aware(at) - _aware(asked)).total_seconds() / 3600)
    for who, status, created, settled in made:
        row = rows[who.lower()]
        if created is not None and start <= _aware(created) < end:
            row["promises_made"] += 1
        if settled is not None and start <= _aware(settled) < end and status in ("kept", "broken"):
            row[f"promises_{status}"] += 1

    names = sorted(n for n in set(rows) | set(collected) | set(resolve_days) | set(answer_hours) if n)
    if wanted:
        names = [wanted]
    result = [_finish(settings, name, kind, start, rows[name], logged[name], collected[name], resolve_days[name],
                      answer_hours[name]) for name in names]
    if not wanted:
        team = defaultdict(int)
        for name in names:
            for key, value in rows[name].items():
                team[key] += value
        team_cash: dict[str, int] = defaultdict(int)
        for name in names:
            for currency, amount in collected[name].items():
                team_cash[currency] += amount
        result.append(_finish(settings, TEAM, kind, start, team, [], team_cash,
                              [v for n in names for v in resolve_days[n]], [v for n in names for v in answer_hours[n]],
                              hours=sum(r["hours_worked"] for r in result)))
    days = [(start + timedelta(days=n)).date() for n in range((end - start).days)]
    return {"rows": result, "by_hour": {k: list(v) for k, v in by_hour.items()},
            "daily": [(d_, daily_closed.get(d_, 0), dict(daily_cash.get(d_, {}))) for d_ in days]}


def _finish(settings: Settings, name: str, kind: str, start: datetime, row: dict[str, int], times: list[datetime],
            cash: dict[str, int], days: list[float], hours_to: list[float], hours: float | None = None
            ) -> dict[str, Any]:
    worked = _hours(times, settings.activity_schedule_hours) if hours is None else round(hours, 2)
    per_hour = round(row["touches"] / worked, 1) if worked else None
    per_call = round((row["emails"] + row["answers"]) / row["calls"], 2) if row["calls"] else None
    low, high = settings.activity_touches_per_hour
    e_low, e_high = settings.activity_emails_per_ten_calls
    out: dict[str, Any] = {c: row.get(c, 0) for c in COLUMNS}
    out.update({
        "collector": name, "period": kind, "start": start.date().isoformat(), "hours_worked": worked,
        "touches_per_hour": per_hour, "touches_per_hour_verdict": _verdict(per_hour, low, high),
        "emails_per_call": per_call, "emails_per_call_verdict": _verdict(per_call, e_low / 10, e_high / 10),
        "cash_collected": dict(sorted(cash.items())),
        "days_to_resolve": round(sum(days) / len(days), 1) if days else None,
        "hours_to_answer": round(sum(hours_to) / len(hours_to), 1) if hours_to else None,
        "disputes_resolved": len(days), "questions_answered": len(hours_to)})
    return out


def flat(row: dict[str, Any]) -> dict[str, Any]:
    """A row for CSV and tables: cash as `USD:123450;EUR:900` (minor units), empty cells for no value."""
    return {**row, "cash_collected": ";".join(f"{c}:{v}" for c, v in row["cash_collected"].items()),
            **{k: "" for k, v in row.items() if v is None}}


def format_activity(report: dict[str, Any], fmt: str) -> str:
    """`portal report activity` output: json (a list, one object per row of COLUMNS; cash_collected an object of
    currency -> minor units), csv (COLUMNS), or a table for people."""
    from portal.staff.exports import to_csv, to_json

    if fmt == "json":
        return to_json(report["rows"])
    rows = [flat(r) for r in report["rows"]]
    if fmt == "csv":
        return to_csv(rows, COLUMNS)
    shown = ["collector", "touches", "calls", "emails", "hours_worked", "touches_per_hour",
             "touches_per_hour_verdict", "emails_per_call", "emails_per_call_verdict", "promises_made",
             "promises_kept", "invoices_closed", "cash_collected"]
    widths = {c: max([len(c), *(len(str(r[c])) for r in rows)]) for c in shown}
    lines = ["  ".join(c.ljust(widths[c]) for c in shown)]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in shown) for r in rows]
    return "\n".join(lines) + "\n"
