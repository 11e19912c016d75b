"""Reading window records back from the history database (``appraise report --since``)."""

from __future__ import annotations

from typing import Any, Final

import psycopg

from stream.contract.windows import DriftRecord, ErrorRecord, read_window_record

# The records of one window kind over ``since`` seconds up to its newest window; the
# distributions (the bulk of a record) only where the report plots them: the newest window
# with drift values of each model version.
_RECORDS: Final = """
WITH span AS (
    SELECT max(window_end) - make_interval(secs => %(since)s) AS since
    FROM windows WHERE window_kind = %(window)s
), chosen AS (
    SELECT w.drift_record, w.error_record, w.window_end,
           row_number() OVER (
               PARTITION BY w.model_version
               ORDER BY coalesce(json_typeof(w.drift_record -> 'features') = 'object', false)
                        DESC,
                        w.window_end DESC
           ) AS newest
    FROM windows w, span
    WHERE w.window_kind = %(window)s AND w.window_end >= span.since
)
SELECT CASE WHEN newest = 1 THEN drift_record::text
            ELSE jsonb_set(drift_record::jsonb, '{distributions}', 'null')::text END,
       error_record::text
FROM chosen ORDER BY window_end
"""


async def read_history(
    conninfo: str, *, window: str, since_s: float, connect_timeout_s: float = 10.0
) -> tuple[list[DriftRecord | ErrorRecord], int]:
    """The drift and realised-error records of the ``window`` kind whose windows end within
    ``since_s`` seconds of its newest one, oldest first, and how many stored records could not
    be read back (a format this code does not know)."""
    records: list[DriftRecord | ErrorRecord] = []
    skipped = 0
    async with await psycopg.AsyncConnection.connect(
        conninfo, connect_timeout=max(1, round(connect_timeout_s))
    ) as conn:
        cursor = await conn.execute(_RECORDS, {"window": window, "since": since_s})
        rows: list[tuple[Any, ...]] = await cursor.fetchall()
    for row in rows:
        for text in row:
            if text is None:
                continue
            record = read_window_record(text.encode())
            if record is None:
                skipped += 1
            else:
                records.append(record)
    return records, skipped
