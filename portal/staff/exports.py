"""How staff data leaves the portal as files: whole reports as JSON or CSV text (`portal report ... --format`),
and the dashboard's tables streamed as CSV.

Every CSV cell goes through `csvcells.csv_cell` (the formula-injection guard). A streamed export reads a
server-side cursor CHUNK_ROWS rows at a time and yields str chunks, so memory stays flat at any size; its query
runs when the first chunk after the header is asked for (a streamed response's body), in its own transaction.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select

from portal.staff.csvcells import csv_cell
from portal.store.database import Store

CHUNK_ROWS = 2000  # rows per streamed CSV chunk (and per server-side cursor fetch)


def to_json(rows: Sequence[dict[str, Any]]) -> str:
    """A JSON list, one object per row (the stable machine-readable form)."""
    return json.dumps(list(rows), indent=2, ensure_ascii=False) + "\n"


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """CSV with a header row; cells as `csv_cell` makes them."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_cell(row.get(c)) for c in columns])
    return out.getvalue()


def stream_rows(store: Store, query: Select, header: Sequence[str], cells: Callable[[Any], list[Any]]
                ) -> Iterator[str]:
    """CSV chunks of `query`'s rows, each made into its cells by `cells`."""

    def rows(_conn: Connection, part: Sequence[Any]) -> Iterable[list[Any]]:
        return (cells(r) for r in part)

    return stream_parts(store, query, header, rows)


def stream_parts(store: Store, query: Select, header: Sequence[str],
                 rows: Callable[[Connection, Sequence[Any]], Iterable[list[Any]]]) -> Iterator[str]:
    """CSV chunks from a server-side cursor, CHUNK_ROWS rows at a time; `rows` turns each part into its cells
    (with the connection, for the queries a part needs: one per part, never one per row)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    yield buffer.getvalue()
    with store.begin() as conn:
        result = conn.execution_options(stream_results=True, yield_per=CHUNK_ROWS).execute(query)
        for part in result.partitions(CHUNK_ROWS):
            buffer.seek(0)
            buffer.truncate()
            writer.writerows([csv_cell(v) for v in line] for line in rows(conn, part))
            yield buffer.getvalue()
