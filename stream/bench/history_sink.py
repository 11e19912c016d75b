"""The history sink's side of ``appraise bench history``: window records written per second.

The records are the stream app's own, as it published them in this run (1-minute and 5-minute
drift records: every feature of the contract with its statistics and bin shares), copied with
their windows moved by whole multiples of the run's span until there are enough, each with the
realised-error record of its window (built from the contract, as the label join would close
it). They go to a fresh windows topic with the configured partition count, keyed as the stream
app keys them, and the real :class:`~consumers.history.sink.HistorySink` (its settings'
defaults: batches of ``batch_records``, one transaction each, offsets committed after it)
writes them into the bench's PostgreSQL: records written and committed per second, from the
first fetch that returned records to the commit of the last, and windows per second, counting
each window's drift record only. The stream app's figure counts its drift records (its label
join is not run), so windows against windows is the comparison that flatters neither side: a
realised-error record is small, and counting it would double the sink's figure for a few per
cent of its time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import orjson
from prometheus_client import CollectorRegistry

from consumers.history.metrics import HistoryMetrics
from consumers.history.sink import HistorySink
from stream.bench.common import publish_chunks, until
from stream.contract.times import rfc3339
from stream.contract.windows import ErrorRecord, PredictionStats, record_key
from stream.settings import Settings

#: Longest wait for the sink to write its input, in seconds.
WRITE_TIMEOUT_S: Final = 600.0
#: Records published at a time.
_CHUNK: Final = 2_000


@dataclass(frozen=True)
class Written:
    """What the sink did: records written (drift and realised error), feature rows, the
    seconds from the first fetch to the last commit, and those spent in the database's
    transactions (``appraise_history_write_duration_seconds``)."""

    drift: int
    errors: int
    feature_rows: int
    seconds: float
    write_seconds: float
    batches: int

    @property
    def records(self) -> int:
        """Records written, both kinds."""
        return self.drift + self.errors

    @property
    def per_second(self) -> float:
        """Records written and committed per second, both kinds."""
        return self.records / self.seconds

    @property
    def windows_per_second(self) -> float:
        """Windows written and committed per second: drift records, each with its window's
        realised-error record (whose time is counted, the record is not)."""
        return self.drift / self.seconds


def sink_records(drift: Sequence[tuple[bytes, bytes]], n: int) -> list[tuple[bytes, bytes]]:
    """``n`` records (key, value): ``drift`` cycled with their windows moved back by whole days past
    the span of the originals (so every window is new), each followed by its window's
    realised-error record."""
    if not drift:
        raise ValueError("no drift records to copy")
    parsed = [orjson.loads(value) for _, value in drift]
    starts = [datetime.fromisoformat(d["start"]) for d in parsed]
    ends = [datetime.fromisoformat(d["end"]) for d in parsed]
    shift = timedelta(days=(max(ends) - min(starts)).days + 1)
    out: list[tuple[bytes, bytes]] = []
    for i in range((n + 1) // 2):
        copy, which = divmod(i, len(drift))
        key, value = drift[which]
        data = parsed[which]
        start, end = starts[which] - copy * shift, ends[which] - copy * shift
        if copy:
            data = {**data, "start": rfc3339(start), "end": rfc3339(end)}
            key = record_key("drift", data["window"], start, data["model_version"])
            value = orjson.dumps(data)
        out.append((key, value))
        error = _error_record(data, start, end, i)
        out.append((error.key, error.to_bytes()))
    return out[:n]


def _error_record(drift: Mapping[str, Any], start: datetime, end: datetime, i: int) -> ErrorRecord:
    """The realised-error record of a drift record's window: about one sale in ten events."""
    sales = max(1, int(drift.get("events") or 0) // 10)
    psi = 0.01 + (i % 7) * 0.004
    return ErrorRecord(
        window=drift["window"],
        start=start,
        end=end,
        model_version=drift["model_version"],
        sales=sales,
        mae_dollars=15_000.0 + (i % 13) * 250.0,
        mape=0.08 + (i % 5) * 0.003,
        target=PredictionStats(
            psi=psi,
            ks=0.05,
            psi_critical=0.08,
            ks_critical=0.12,
            noise=psi / 0.08,
            score=psi / 0.1,
            drifting=False,
        ),
    )


async def write_records(settings: Settings, records: Sequence[tuple[bytes, bytes]]) -> Written:
    """Publish ``records`` to ``settings.topics.windows`` (created by the caller), then run a
    :class:`HistorySink` on it (a fresh group, ``settings.history`` for the database) until all
    are written and committed."""
    chunks = [records[i : i + _CHUNK] for i in range(0, len(records), _CHUNK)]
    await publish_chunks(settings, settings.topics.windows, chunks)
    registry = CollectorRegistry()
    sink = HistorySink(settings, HistoryMetrics(registry, with_process_collectors=False))
    async with sink:
        task = asyncio.ensure_future(sink.run())
        try:
            await until(
                lambda: sink.fetched >= len(records) or task.done(),
                "the history sink writing its records",
                WRITE_TIMEOUT_S,
            )
            if task.done():
                task.result()  # the sink's error, if it stopped on one
                raise RuntimeError("the history sink stopped before writing its records")
        finally:
            sink.request_stop()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    write_s = registry.get_sample_value("appraise_history_write_duration_seconds_sum") or 0.0
    return Written(
        drift=sink.written.records["drift"],
        errors=sink.written.records["realised_error"],
        feature_rows=sink.written.rows["feature_windows"],
        seconds=max(sink.busy_until - (sink.busy_from or sink.busy_until), 1e-6),
        write_seconds=write_s,
        batches=sink.batches,
    )
