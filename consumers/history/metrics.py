"""The history sink's Prometheus metrics, from the catalogue
(:mod:`stream.contract.history_metrics`); every label value known at start-up (each skip
reason, each record kind, each table) exists at 0 before the first record."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry

from stream.contract import history_metrics as names
from stream.contract.windows import SKIP_REASONS
from stream.service.metrics import counter, gauge, histogram, process_collectors

#: Skip reasons beyond the contract's: the database refused the record (a value out of its
#: range, a NUL character in a text).
REFUSED: str = "refused_by_database"
#: Edges of the write-duration histogram, in seconds.
WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class HistoryMetrics:
    """Every metric ``appraise history`` exports."""

    def __init__(self, registry: CollectorRegistry, *, with_process_collectors: bool = True):
        r = registry
        self.records = counter(names.HISTORY_RECORDS, r)
        self.skipped = counter(names.HISTORY_SKIPPED, r)
        self.rows = counter(names.HISTORY_ROWS, r)
        self.write_duration = histogram(names.HISTORY_WRITE_DURATION, r, WRITE_BUCKETS)
        self.retries = counter(names.HISTORY_RETRIES, r)
        self.database_up = gauge(names.HISTORY_DATABASE_UP, r)
        self.lag = gauge(names.HISTORY_LAG, r)
        self.behind = gauge(names.HISTORY_BEHIND, r)
        self.last_write = gauge(names.HISTORY_LAST_WRITTEN, r)
        self.schema_version = gauge(names.HISTORY_SCHEMA, r)
        for kind in ("drift", "realised_error"):
            self.records.labels(kind)
        for reason in (*SKIP_REASONS, REFUSED):
            self.skipped.labels(reason)
        for table in ("windows", "feature_windows"):
            self.rows.labels(table)
        if with_process_collectors:
            process_collectors(r)

    def set_lag(self, lags: Iterable[tuple[int, int]]) -> None:
        """Replace the per-partition lag series with ``(partition, records)`` pairs."""
        self.lag.clear()
        for partition, records in lags:
            self.lag.labels(str(partition)).set(records)
