"""The history sink's part of the metric catalogue (``appraise history``, job
``appraise-history``); :mod:`stream.contract.metrics` gathers it with the rest."""

from __future__ import annotations

from typing import Final

from stream.contract.metric_name import metric as _m

HISTORY_RECORDS = _m(
    "appraise_history_records_total",
    "counter",
    "Window records taken from prediction-windows and written, by kind (drift, realised_error).",
    "kind",
)
HISTORY_SKIPPED = _m(
    "appraise_history_records_skipped_total",
    "counter",
    "Records skipped and logged, by reason (not a window record, or refused by the database).",
    "reason",
)
HISTORY_ROWS = _m(
    "appraise_history_rows_written_total",
    "counter",
    "Rows inserted or updated, by table (windows, feature_windows).",
    "table",
)
HISTORY_WRITE_DURATION = _m(
    "appraise_history_write_duration_seconds",
    "histogram",
    "Time to write one batch of records in one transaction.",
)
HISTORY_RETRIES = _m(
    "appraise_history_database_retries_total",
    "counter",
    "Database operations tried again after a connection error.",
)
HISTORY_DATABASE_UP = _m(
    "appraise_history_database_up",
    "gauge",
    "1 while the last database operation succeeded, 0 while the sink waits for the database.",
)
HISTORY_LAG = _m(
    "appraise_history_lag_records",
    "gauge",
    "Records on prediction-windows not yet written and committed, per partition.",
    "partition",
)
HISTORY_BEHIND = _m(
    "appraise_history_behind_seconds",
    "gauge",
    "How long the sink has had records waiting (0 when caught up).",
)
HISTORY_LAST_WRITTEN = _m(
    "appraise_history_last_write_timestamp_seconds",
    "gauge",
    "Unix time of the last batch written (0 before the first).",
)
HISTORY_SCHEMA = _m(
    "appraise_history_schema_version",
    "gauge",
    "Version of the history database's schema after the start-up migration.",
)

HISTORY: Final = (
    HISTORY_RECORDS,
    HISTORY_SKIPPED,
    HISTORY_ROWS,
    HISTORY_WRITE_DURATION,
    HISTORY_RETRIES,
    HISTORY_DATABASE_UP,
    HISTORY_LAG,
    HISTORY_BEHIND,
    HISTORY_LAST_WRITTEN,
    HISTORY_SCHEMA,
)
