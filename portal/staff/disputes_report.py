"""The disputes reports (`portal report disputes [--root-causes]`): one row per dispute, oldest first, and why
invoices are disputed (counts and amounts by reason, customer and collector; median days to resolve).

`--format json` is the stable form (lists stay lists, amounts in minor units); csv joins lists with ";"; table
is for people (amounts in major units). Amounts are never added across currencies.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from portal.balances import stored
from portal.core.money import to_decimal
from portal.staff.csvcells import iso_utc
from portal.staff.exports import to_csv, to_json
from portal.staff.standing import standing
from portal.store import disputes as disputestore
from portal.store.database import Store
from portal.store.tables import customers

DISPUTE_COLUMNS = ["dispute_id", "reference", "customer_id", "customer_name", "collector", "invoice_ids", "numbers",
                   "reason", "amount", "currency", "status", "outcome", "note", "created_at", "reviewed_at",
                   "resolved_at", "days_to_resolve", "invoice_open", "invoice_status"]


def disputes(store: Store) -> list[dict[str, Any]]:
    """One dict per dispute, oldest first (`portal report disputes`). `amount` in minor units; `invoice_ids` and
    `numbers` are lists; `days_to_resolve` is a float (null while unresolved); `outcome` is "" until resolved.
    The customer's message is left out: it is the customer's words, shown to staff on the dashboard only."""
    with store.begin() as conn:
        rows = disputestore.all_disputes(conn)
        items = disputestore.all_items(conn)
        now = stored.stored(conn)
        people = {r.customer_id: (r.name, r.collector) for r in conn.execute(
            select(customers.c.customer_id, customers.c.name, customers.c.collector))}
    result = []
    for d in rows:
        name, collector = people.get(d.customer_id, ("", ""))
        days = (d.resolved_at - d.created_at).total_seconds() / 86400 if d.resolved_at else None
        result.append({
            "dispute_id": d.dispute_id, "reference": f"D-{d.dispute_id}", "customer_id": d.customer_id,
            "customer_name": name, "collector": collector,
            "invoice_ids": [i.invoice_id for i in items.get(d.dispute_id, [])],
            "numbers": [i.number for i in items.get(d.dispute_id, [])],
            "reason": d.reason, "amount": d.amount, "currency": d.currency, "status": d.status,
            "outcome": d.outcome, "note": d.note, "created_at": iso_utc(d.created_at),
            "reviewed_at": iso_utc(d.reviewed_at), "resolved_at": iso_utc(d.resolved_at),
            "days_to_resolve": None if days is None else round(days, 2),
            # Where each invoice disputed stands now (portal/balances/position.py), in the order of `invoice_ids`.
            "invoices": [{"invoice_id": i.invoice_id, "number": i.number, "amount": i.amount,
                          **standing(now.get(i.invoice_id))} for i in items.get(d.dispute_id, [])],
        })
    return result


def dispute_root_causes(store: Store) -> dict[str, Any]:
    """Why invoices are disputed: `by_reason`, `by_customer`, `by_collector` (lists of rows with `count`,
    `amount` in minor units per `currency`, `open`, `resolved`, `median_days_to_resolve`, and per outcome
    counts under `outcomes`), plus the overall `median_days_to_resolve` (null before any resolution).
    Amounts are never added across currencies: each row is one key in one currency."""
    rows = disputes(store)

    def group(key: str) -> list[dict[str, Any]]:
        found: dict[tuple[str, str], dict[str, Any]] = {}
        days: dict[tuple[str, str], list[float]] = {}
        for r in rows:
            k = (r[key] or "", r["currency"])
            g = found.setdefault(k, {key: k[0], "currency": k[1], "count": 0, "amount": 0, "open": 0,
                                     "resolved": 0, "outcomes": {}, "median_days_to_resolve": None})
            g["count"] += 1
            g["amount"] += r["amount"]
            if r["status"] == "resolved":
                g["resolved"] += 1
                g["outcomes"][r["outcome"]] = g["outcomes"].get(r["outcome"], 0) + 1
                days.setdefault(k, []).append(r["days_to_resolve"])
            else:
                g["open"] += 1
        for k, values in days.items():
            found[k]["median_days_to_resolve"] = round(statistics.median(values), 2)
        return sorted(found.values(), key=lambda g: (-g["count"], -g["amount"], g[key], g["currency"]))

    resolved = [r["days_to_resolve"] for r in rows if r["days_to_resolve"] is not None]
    return {"by_reason": group("reason"), "by_customer": group("customer_id"), "by_collector": group("collector"),
            "count": len(rows), "median_days_to_resolve": round(statistics.median(resolved), 2) if resolved else None}


def _dispute_cells(r: dict[str, Any]) -> dict[str, Any]:
    """A dispute row with its lists joined by ";" (one CSV or table cell each); each invoice's open amount in major
    units."""
    return {**r, "invoice_ids": ";".join(r["invoice_ids"]), "numbers": ";".join(r["numbers"]),
            "invoice_open": ";".join("" if i["open"] is None else str(to_decimal(i["open"], r["currency"]))
                                     for i in r["invoices"]),
            "invoice_status": ";".join(i["status"] or "" for i in r["invoices"])}


def _plain_table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *lines, strict=True)]
    out = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)).rstrip(),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    return out


def format_disputes(rows: Sequence[dict[str, Any]], fmt: str) -> str:
    """`portal report disputes`: `fmt` json (the stable form: lists stay lists, amounts in minor units), csv
    (DISPUTE_COLUMNS, lists joined by ";") or table (for people: amounts in major units)."""
    if fmt == "json":
        return to_json(rows)
    if fmt == "csv":
        return to_csv([_dispute_cells(r) for r in rows], DISPUTE_COLUMNS)
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r} (table, csv or json)")
    header = ["Dispute", "Customer", "Invoices", "Reason", "Amount", "Status", "Outcome", "Opened", "Days"]
    lines = [[r["reference"], r["customer_id"], ";".join(r["numbers"]), r["reason"],
              f"{to_decimal(r['amount'], r['currency'])} {r['currency']}", r["status"], r["outcome"] or "-",
              (r["created_at"] or "")[:10], "-" if r["days_to_resolve"] is None else str(r["days_to_resolve"])]
             for r in rows]
    return "\n".join([*_plain_table(header, lines), "", f"{len(rows)} dispute(s)."]) + "\n"


ROOT_CAUSE_COLUMNS = ["dimension", "key", "currency", "count", "amount", "open", "resolved", "median_days_to_resolve"]


def format_root_causes(causes: dict[str, Any], fmt: str) -> str:
    """`dispute_root_causes` as json (as returned), csv (ROOT_CAUSE_COLUMNS, one row per dimension, key and
    currency) or a table per dimension."""
    if fmt == "json":
        return json.dumps(causes, indent=2, ensure_ascii=False) + "\n"
    keys = {"by_reason": "reason", "by_customer": "customer_id", "by_collector": "collector"}
    flat = [{"dimension": dim, "key": g[key], **{k: g[k] for k in ROOT_CAUSE_COLUMNS[2:]}}
            for dim, key in keys.items() for g in causes[dim]]
    if fmt == "csv":
        return to_csv(flat, ROOT_CAUSE_COLUMNS)
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r} (table, csv or json)")
    out: list[str] = []
    for dim in ("by_reason", "by_customer", "by_collector"):
        lines = [[f["key"] or "-", f["currency"], str(f["count"]), str(to_decimal(f["amount"], f["currency"])),
                  str(f["open"]), str(f["resolved"]),
                  "-" if f["median_days_to_resolve"] is None else str(f["median_days_to_resolve"])]
                 for f in flat if f["dimension"] == dim]
        out += [dim.replace("_", " ").capitalize(), *_plain_table(
            ["Key", "Currency", "Count", "Amount", "Open", "Resolved", "Median days"], lines), ""]
    median = causes["median_days_to_resolve"]
    out.append(f"{causes['count']} dispute(s); median days to resolve: {'-' if median is None else median}.")
    return "\n".join(out) + "\n"
