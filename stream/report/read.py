"""Reading the report's window records from the end of ``prediction-windows``.

:func:`read_windows` reads each partition backwards in growing steps until what is left cannot
hold any of the newest windows wanted, typing every record with the contract's reader
(:func:`~stream.contract.windows.read_window_record`) and counting the rest as skipped;
:func:`load_report` waits for the broker, reads and builds the :class:`~stream.report.build.Report`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Final

from aiokafka import TopicPartition

from consumers.history.read import read_history
from stream.contract.windows import DriftRecord, ErrorRecord, read_window_record
from stream.errors import DataError
from stream.kafka.clients import wait_until_reachable
from stream.kafka.ranges import end_offsets_via_highwater, read_range
from stream.kafka.topics import topic_partitions
from stream.report.build import Report, build_report
from stream.settings import HistorySettings, KafkaSettings

# Each close of a window of one kind and model version writes a drift and a realised-error
# record, and the hopping kind closes about as often: ~4 records per wanted window, spread over
# the partitions by key. The first backwards read takes that many, later ones double.
_RECORDS_PER_WINDOW: Final = 4
_MIN_STEP: Final = 16


@dataclass
class WindowRead:
    """What :func:`read_windows` found: typed records in topic order, and what it skipped."""

    records: list[DriftRecord | ErrorRecord] = field(default_factory=list)
    skipped: int = 0
    read: int = 0
    """Records fetched in all (window records or not)."""


async def read_windows(kafka: KafkaSettings, topic: str, *, window: str, last: int) -> WindowRead:
    """Read enough of the end of ``topic`` to hold its ``last`` newest drift windows named
    ``window``, and the realised-error records written over the same time.

    Each partition is read backwards from its end in growing steps, until what it holds older
    than the part read cannot be among the newest ``last`` windows. The stream app publishes
    drift windows as event time passes their ends, so a partition's drift records are in order
    of their ends: once a partition reaches a drift record (of any window name) that ends no
    later than the ``last``-th newest wanted window found so far, the rest of it is older
    (realised-error records are written a sale delay later, so they do not count). A topic with
    fewer windows is read whole. Raises :class:`DataError` if the topic does not exist.
    """
    tps = await topic_partitions(kafka, topic)
    lows = await end_offsets_via_highwater(kafka, tps)
    found: dict[TopicPartition, list[DriftRecord | ErrorRecord]] = {tp: [] for tp in tps}
    result = WindowRead()
    step = max(_MIN_STEP, math.ceil(_RECORDS_PER_WINDOW * last / len(tps)))
    while todo := [tp for tp in tps if lows[tp] > 0 and _needs_more(found, tp, window, last)]:
        starts = {tp: max(0, lows[tp] - step) for tp in todo}
        chunk: dict[TopicPartition, list[DriftRecord | ErrorRecord]] = {tp: [] for tp in todo}
        ranges = read_range(
            kafka, todo, start_offsets=starts, end_offsets={tp: lows[tp] for tp in todo}
        )
        async with aclosing(ranges) as batches:
            async for batch in batches:
                for message in batch:
                    result.read += 1
                    record = read_window_record(message.value)
                    if record is None:
                        result.skipped += 1
                    else:
                        chunk[TopicPartition(message.topic, message.partition)].append(record)
        for tp in todo:
            found[tp] = chunk[tp] + found[tp]
            lows[tp] = starts[tp]
        step *= 2
    result.records = [record for tp in tps for record in found[tp]]
    return result


def _needs_more(
    found: Mapping[TopicPartition, Sequence[DriftRecord | ErrorRecord]],
    tp: TopicPartition,
    window: str,
    last: int,
) -> bool:
    ends = sorted((r.end for rs in found.values() for r in rs if _wanted(r, window)), reverse=True)
    if len(ends) < last:
        return True
    cutoff = ends[last - 1]
    # Drift records of any window name count (a partition may hold none of the wanted name and
    # must still stop), realised-error ones do not: they are written a sale delay after the
    # drift records of the same time, so an old one can sit among newer drift windows.
    drift = [r.end for r in found[tp] if isinstance(r, DriftRecord)]
    return not drift or min(drift) > cutoff


def _wanted(record: DriftRecord | ErrorRecord, window: str) -> bool:
    return isinstance(record, DriftRecord) and record.window == window


async def load_report(
    kafka: KafkaSettings,
    topic: str,
    *,
    window: str,
    last: int,
    broker_wait_s: float,
    generated: str = "",
    since_s: float | None = None,
    window_s: float | None = None,
) -> Report:
    """Read the end of ``topic`` (:func:`read_windows`) and build the report of its ``last``
    newest ``window`` windows. :class:`DataError` if the topic holds no window records, or none
    of that window; :class:`BrokerError` if no broker answers within ``broker_wait_s`` seconds
    (the setting ``service.broker_wait_s``)."""
    await wait_until_reachable(kafka, broker_wait_s)
    if since_s is not None and window_s is not None:
        last = math.floor(since_s / window_s) + 1  # ends since_s apart: both ends count
    read = await read_windows(kafka, topic, window=window, last=last)
    if since_s is not None:
        read.records = _within(read.records, window, since_s)
    if not read.records:
        raise DataError(
            f"no window records on {topic!r} at {kafka.bootstrap_servers} ({read.read} records "
            "read): the stream app writes one per closed window; run `appraise aggregate` (or "
            "`appraise up`) and wait for a window to close"
        )
    return build_report(
        read.records,
        window=window,
        last=last,
        skipped=read.skipped,
        source=topic,
        generated=generated,
    )


def _within(
    records: Sequence[DriftRecord | ErrorRecord], window: str, since_s: float
) -> list[DriftRecord | ErrorRecord]:
    """The records of windows ending within ``since_s`` of the newest ``window`` window."""
    ends = [r.end for r in records if r.window == window]
    if not ends:
        return list(records)
    newest = max(ends)
    return [r for r in records if (newest - r.end).total_seconds() <= since_s]


async def load_history_report(
    history: HistorySettings, *, window: str, since_s: float, generated: str = ""
) -> Report:
    """The report of the ``window`` windows ending within ``since_s`` seconds of the newest
    one, read from the history database (``history.dsn``). :class:`DataError` if it holds
    none."""
    records, skipped = await read_history(
        history.conninfo(),
        window=window,
        since_s=since_s,
        connect_timeout_s=history.connect_timeout_s,
    )
    if not records:
        raise DataError(
            f"no {window} windows in the history database {history.where()}: `appraise "
            "history` writes them as the stream app closes them"
        )
    drift = sum(1 for r in records if isinstance(r, DriftRecord) and r.window == window)
    return build_report(
        records,
        window=window,
        last=max(1, drift),
        skipped=skipped,
        source=f"history database {history.where()}",
        generated=generated,
    )
