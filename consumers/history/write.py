"""Writing window records to the history database: idempotent upserts keyed by the window's
identity, one transaction per batch.

A drift record sets the drift columns of its ``windows`` row and replaces the window's
``feature_windows`` rows; a realised-error record sets the error columns of the same row (a row
exists once either has arrived). Writing the same record again changes nothing, and a newer
record of the same window (a window re-closed by late panes) replaces the older one: the topic
is at-least-once and keyed by window, so per window the last record in offset order wins.

A record the database refuses (a count past its range, a NUL character in a text) does not fail
the batch: the batch is written again one record per transaction and the refused ones are
returned to be counted and logged. Connection errors are the caller's to retry.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
import psycopg
from psycopg import sql

from stream.contract.windows import QUANTILES, DriftRecord, ErrorRecord, quantile_key

log = logging.getLogger(__name__)

# Each table's columns after the key, with the type of the array each is sent as: a batch is
# one statement per table, its rows sent as one array per column and turned back into rows by
# unnest (tens of times faster than a statement per row).
_KEY: Final = (("window_kind", "text"), ("window_start", "timestamptz"), ("model_version", "text"))
_DRIFT: Final = (
    ("window_end", "timestamptz"),
    ("reference_model_version", "text"),
    ("events", "int8"),
    ("panes", "int4"),
    ("min_events", "int4"),
    *((f"p{round(q * 100)}", "float8") for q in QUANTILES),
    *((f"reference_p{round(q * 100)}", "float8") for q in QUANTILES),
    ("prediction_psi", "float8"),
    ("prediction_ks", "float8"),
    ("prediction_score", "float8"),
    ("prediction_drifting", "bool"),
    ("drifting_share", "float8"),
    ("drifting_features", "jsonb"),  # a text[] per row: unnest cannot carry arrays of arrays
    ("likely_causes", "jsonb"),
    ("psi_threshold", "float8"),
    ("false_alarm_level", "float8"),
    ("drift_record", "json"),
)
_ERROR: Final = (
    ("window_end", "timestamptz"),
    ("sales", "int8"),
    ("mae_dollars", "float8"),
    ("mape", "float8"),
    ("target_psi", "float8"),
    ("target_score", "float8"),
    ("target_drifting", "bool"),
    ("error_record", "json"),
)
_FEATURE: Final = (
    ("feature", "text"),
    *((name, "float8") for name in ("psi", "ks", "psi_critical", "ks_critical", "noise", "score")),
    ("drifting", "bool"),
    *((name, "float8") for name in ("missing_rate", "unseen_rate", "out_of_range_rate")),
)
#: How a column's value is computed from the array element ``{}``.
_FROM: Final = {
    "drifting_features": (
        "CASE WHEN {0} IS NULL THEN NULL ELSE ARRAY(SELECT jsonb_array_elements_text({0})) END"
    ),
}


def _names(columns: Sequence[tuple[str, str]]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(c) for c, _ in columns)


def _unnest(columns: Sequence[tuple[str, str]]) -> sql.Composed:
    """``SELECT <values> FROM unnest(%s::t1[], ...) AS u(c1, ...)`` for ``columns``."""
    values = sql.SQL(", ").join(
        sql.SQL(_FROM.get(c, "{}")).format(sql.Identifier("u", c)) for c, _ in columns
    )
    arrays = sql.SQL(", ").join(sql.SQL("%b::{}[]").format(sql.SQL(t)) for _, t in columns)
    return sql.SQL("SELECT {values} FROM unnest({arrays}) AS u({names})").format(
        values=values, arrays=arrays, names=_names(columns)
    )


def _upsert(columns: Sequence[tuple[str, str]], written_at: str) -> sql.Composed:
    every = (*_KEY, *columns)
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c))
        for c in (*(c for c, _ in columns), written_at)
    )
    return sql.SQL(
        "INSERT INTO windows ({names}, {written_at}) SELECT *, now() FROM ({rows}) AS r "
        "ON CONFLICT ({key}) DO UPDATE SET {updates}"
    ).format(
        names=_names(every),
        written_at=sql.Identifier(written_at),
        rows=_unnest(every),
        key=_names(_KEY),
        updates=updates,
    )


_UPSERT_DRIFT: Final = _upsert(_DRIFT, "drift_written_at")
_UPSERT_ERROR: Final = _upsert(_ERROR, "error_written_at")
_DELETE_FEATURES: Final = sql.SQL(
    "DELETE FROM feature_windows WHERE (window_kind, window_start, model_version) IN ({keys})"
).format(keys=_unnest(_KEY))
_INSERT_FEATURES: Final = sql.SQL("INSERT INTO feature_windows ({names}) {rows}").format(
    names=_names((*_KEY, *_FEATURE)), rows=_unnest((*_KEY, *_FEATURE))
)


@dataclass(frozen=True, slots=True)
class Incoming:
    """A window record as typed by the contract, and its value as received (kept as json)."""

    record: DriftRecord | ErrorRecord
    raw: bytes


@dataclass(slots=True)
class Written:
    """What one :func:`write_batch` did."""

    records: dict[str, int] = field(default_factory=lambda: {"drift": 0, "realised_error": 0})
    rows: dict[str, int] = field(default_factory=lambda: {"windows": 0, "feature_windows": 0})
    refused: list[tuple[Incoming, str]] = field(default_factory=list)
    """Records the database refused, with its message."""


def latest_per_window(items: Iterable[Incoming]) -> list[Incoming]:
    """The last record of each key (kind, window, start, model version), in offset order."""
    last: dict[bytes, Incoming] = {}
    for item in items:
        last.pop(item.record.key, None)
        last[item.record.key] = item
    return list(last.values())


async def write_batch(conn: psycopg.AsyncConnection[Any], items: Sequence[Incoming]) -> Written:
    """Write ``items`` (already :func:`latest_per_window`) in one transaction; if the database
    refuses one, write them one per transaction and report the refused ones. Connection errors
    (``psycopg.OperationalError``, ``InterfaceError``) propagate: nothing was committed."""
    written = Written()
    try:
        async with conn.transaction():
            await _write(conn, items, written)
        return written
    except (psycopg.DataError, psycopg.IntegrityError) as exc:
        if len(items) == 1:
            return Written(refused=[(items[0], _message(exc))])
    written = Written()
    for item in items:
        one = Written()
        try:
            async with conn.transaction():
                await _write(conn, [item], one)
        except (psycopg.DataError, psycopg.IntegrityError) as exc:
            written.refused.append((item, _message(exc)))
            continue
        for kind, n in one.records.items():
            written.records[kind] += n
        for table, n in one.rows.items():
            written.rows[table] += n
    return written


async def _write(
    conn: psycopg.AsyncConnection[Any], items: Sequence[Incoming], written: Written
) -> None:
    drift = [(i.record, i.raw) for i in items if isinstance(i.record, DriftRecord)]
    errors = [(i.record, i.raw) for i in items if isinstance(i.record, ErrorRecord)]
    async with conn.cursor() as cur:
        if drift:
            await cur.execute(_UPSERT_DRIFT, _columns([_drift_row(r, raw) for r, raw in drift]))
            keys = [_key(r) for r, _ in drift]
            await cur.execute(_DELETE_FEATURES, _columns(keys))
            features = [row for r, _ in drift for row in _feature_rows(r)]
            if features:
                await cur.execute(_INSERT_FEATURES, _columns(features))
            written.rows["feature_windows"] += len(features)
        if errors:
            await cur.execute(_UPSERT_ERROR, _columns([_error_row(r, raw) for r, raw in errors]))
    written.records["drift"] += len(drift)
    written.records["realised_error"] += len(errors)
    written.rows["windows"] += len(items)


def _columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows as one list per column: the arrays ``unnest`` turns back into rows."""
    return [list(column) for column in zip(*rows, strict=True)]


def _key(record: DriftRecord | ErrorRecord) -> tuple[Any, ...]:
    return (record.window, record.start, record.model_version)


def _drift_row(r: DriftRecord, raw: bytes) -> tuple[Any, ...]:
    quantiles = r.quantiles or {}
    p = r.prediction
    causes = None if r.likely_causes is None else [c.model_dump() for c in r.likely_causes]
    return (
        *_key(r),
        r.end,
        r.reference_model_version,
        r.events,
        r.panes,
        r.min_events,
        *(quantiles.get(quantile_key(q)) for q in QUANTILES),
        *(r.reference_quantiles.get(quantile_key(q)) for q in QUANTILES),
        None if p is None else p.psi,
        None if p is None else p.ks,
        None if p is None else p.score,
        None if p is None else p.drifting,
        r.drifting_share,
        None if r.drifting_features is None else orjson.dumps(r.drifting_features).decode(),
        None if causes is None else orjson.dumps(causes).decode(),
        r.psi_threshold,
        r.false_alarm_level,
        raw.decode("utf-8", errors="replace"),
    )


def _error_row(r: ErrorRecord, raw: bytes) -> tuple[Any, ...]:
    t = r.target
    return (
        *_key(r),
        r.end,
        r.sales,
        r.mae_dollars,
        r.mape,
        None if t is None else t.psi,
        None if t is None else t.score,
        None if t is None else t.drifting,
        raw.decode("utf-8", errors="replace"),
    )


def _feature_rows(record: DriftRecord) -> list[tuple[Any, ...]]:
    return [
        (
            *_key(record),
            name,
            f.psi,
            f.ks,
            f.psi_critical,
            f.ks_critical,
            f.noise,
            f.score,
            f.drifting,
            f.missing_rate,
            f.unseen_rate,
            f.out_of_range_rate,
        )
        for name, f in (record.features or {}).items()
    ]


def _message(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
