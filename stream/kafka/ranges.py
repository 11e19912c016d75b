"""Reading ranges of a topic: where a time range starts, where a partition ends, and exactly the
records between (offsets and record timestamps), right on the embedded broker and on Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from stream.contract.times import unix_rfc3339
from stream.errors import BrokerError, DataError
from stream.kafka.clients import make_consumer
from stream.kafka.topics import topic_partitions
from stream.settings import KafkaSettings

log = logging.getLogger(__name__)

# How often to look at a consumer's fetch state while waiting for high watermarks.
_POLL_S = 0.01


async def offsets_for_time(
    consumer: AIOKafkaConsumer,
    partitions: Iterable[TopicPartition],
    ts_ms: int,
    *,
    slack_ms: int = 0,
) -> dict[TopicPartition, int]:
    """A STARTING HINT for reading records with timestamps at or after ``ts_ms``: an offset per
    partition before which no such record is expected. The caller must still filter every record
    by its own timestamp (:func:`read_time_range` does).

    Why only a hint: Tansu matches ``offsets_for_times`` against the broker's append time, not the
    producer's CreateTime, and answers offset 0 when nothing matches (Kafka answers None). So on
    Tansu the hint is usually the start of the partition (records replayed with old event times
    were all appended "now") and reading is exact but longer. On Kafka the hint is exact for
    CreateTime topics; later records may still carry earlier timestamps (event time need not be
    monotonic), hence the filter. ``slack_ms`` asks for an earlier offset, covering producers whose
    timestamps run ahead of an append-time-matching broker's clock.

    Kafka's None ("no record that late yet") maps to the end offset from ListOffsets LATEST, which
    is right on Kafka; Tansu never answers None.
    """
    tps = list(partitions)
    query = max(0, ts_ms - slack_ms)
    found = await consumer.offsets_for_times(dict.fromkeys(tps, query))
    missing = [tp for tp in tps if found.get(tp) is None]
    ends = await consumer.end_offsets(missing) if missing else {}
    return {tp: ends[tp] if found.get(tp) is None else found[tp].offset for tp in tps}


async def end_offsets_via_highwater(
    kafka: KafkaSettings, partitions: Iterable[TopicPartition], *, timeout_s: float = 10.0
) -> dict[TopicPartition, int]:
    """The end offset (high watermark: the offset the next record will get) of each partition,
    as reported in fetch responses, which is right on both brokers.

    Do not use ``consumer.end_offsets``/``seek_to_end`` for this: Tansu's ListOffsets LATEST is
    the newest batch's base offset + 1, short by up to a batch. A private consumer (no group, so
    no one's positions move) fetches once from each partition and reads ``highwater``.
    """
    tps = list(partitions)
    async with _reader(kafka) as consumer:
        consumer.assign(tps)
        return await _fetch_highwaters(consumer, tps, timeout_s)


async def read_time_range(
    kafka: KafkaSettings,
    partitions: Iterable[TopicPartition],
    start_ms: int,
    end_ms: int,
    *,
    max_records: int = 1_000,
    stall_timeout_s: float = 30.0,
) -> AsyncGenerator[list[ConsumerRecord], None]:
    """Yield, in batches, exactly the records with ``start_ms <= timestamp < end_ms`` among those
    in ``partitions`` when the call starts (the end is fixed first, so a live topic still ends).

    ``timestamp`` is the record's own (CreateTime, or LogAppendTime on topics configured so).
    Reading starts at :func:`offsets_for_time` (a hint) and stops at the high watermarks.
    Raise :class:`BrokerError` if no partition makes progress for ``stall_timeout_s``. Close the
    iterator when stopping early (``contextlib.aclosing``) so its consumer is closed at once.
    """
    ranges = read_range(
        kafka,
        partitions,
        start_ms=start_ms,
        end_ms=end_ms,
        max_records=max_records,
        stall_timeout_s=stall_timeout_s,
    )
    async with contextlib.aclosing(ranges) as batches:
        async for batch in batches:
            yield batch


@dataclass(frozen=True, slots=True)
class RangeBounds:
    """Where a range read starts and stops in each partition (end exclusive)."""

    starts: dict[TopicPartition, int]
    ends: dict[TopicPartition, int]

    @property
    def records(self) -> int:
        """How many offsets lie between the starts and the ends (before any time filter)."""
        return sum(max(0, self.ends[tp] - self.starts[tp]) for tp in self.ends)


async def read_range(
    kafka: KafkaSettings,
    partitions: Iterable[TopicPartition],
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
    start_offsets: Mapping[TopicPartition, int] | None = None,
    end_offsets: Mapping[TopicPartition, int] | None = None,
    max_records: int = 1_000,
    stall_timeout_s: float = 30.0,
    on_bounds: Callable[[RangeBounds], None] | None = None,
) -> AsyncGenerator[list[ConsumerRecord], None]:
    """Yield, in batches, exactly the records of ``partitions`` inside the given bounds: offsets
    in ``[start_offsets, end_offsets)`` (default: the whole partition as it is when the call
    starts) and timestamps in ``[start_ms, end_ms)`` (default: any).

    The end is fixed first from the high watermarks, so a live topic still ends; a time start
    is only a hint for where to begin (:func:`offsets_for_time`), every record is filtered by its
    own timestamp. ``on_bounds`` learns the offsets before the first batch (for progress).
    """
    tps = list(partitions)
    async with _reader(kafka) as consumer:
        consumer.assign(tps)
        highwaters = await _fetch_highwaters(consumer, tps, stall_timeout_s)
        ends = {
            tp: min(highwaters[tp], (end_offsets or highwaters).get(tp, highwaters[tp]))
            for tp in tps
        }
        starts = dict.fromkeys(tps, 0)
        if start_ms is not None:
            starts = await offsets_for_time(consumer, tps, start_ms)
        if start_offsets is not None:
            starts = {tp: max(starts[tp], start_offsets.get(tp, 0)) for tp in tps}
        if on_bounds is not None:
            on_bounds(RangeBounds(starts, ends))
        todo = {tp for tp in tps if starts[tp] < ends[tp]}
        for tp in tps:
            consumer.seek(tp, min(starts[tp], ends[tp]))
        consumer.pause(*(set(tps) - todo))
        low = -1 if start_ms is None else start_ms
        high = None if end_ms is None else end_ms
        while todo:
            fetched = await consumer.getmany(
                *todo, timeout_ms=int(stall_timeout_s * 1000), max_records=max_records
            )
            if not fetched:
                raise BrokerError(
                    f"reading {sorted(todo)} made no progress for {stall_timeout_s:g} s "
                    f"(stopping at offsets {ends}); is the broker at {kafka.bootstrap_servers} up?"
                )
            batch = []
            for tp, records in fetched.items():
                batch += [
                    r
                    for r in records
                    if r.offset < ends[tp]
                    and r.timestamp >= low
                    and (high is None or r.timestamp < high)
                ]
                if await consumer.position(tp) >= ends[tp]:
                    todo.discard(tp)
                    consumer.pause(tp)
            if batch:
                yield batch


@contextlib.asynccontextmanager
async def _reader(kafka: KafkaSettings) -> AsyncIterator[AIOKafkaConsumer]:
    """A started group-less consumer for one-off reads, stopped on exit."""
    # 100 ms: an empty partition's fetch returns its high watermark after this wait on Kafka;
    # still above 0, which Tansu answers with empty responses.
    consumer = make_consumer(kafka, group_id=None, fetch_max_wait_ms=100)
    try:
        await consumer.start()
        yield consumer
    finally:
        await consumer.stop()


async def _fetch_highwaters(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], timeout_s: float
) -> dict[TopicPartition, int]:
    # Start each fetch at the broker's LATEST answer: on Kafka that is the end, so the fetch
    # returns no records; on Tansu it is at most one batch short, so it returns that batch. Both
    # responses carry the true high watermark, which the consumer keeps per partition.
    await consumer.seek_to_end(*tps)
    missing = tps
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                missing = [tp for tp in tps if consumer.highwater(tp) is None]
                if not missing:
                    break
                # aiokafka signals nothing when a fetch only updates the high watermark: poll.
                await asyncio.sleep(_POLL_S)
    except TimeoutError:
        raise BrokerError(
            f"no fetch response for {missing} within {timeout_s:g} s, so their end offsets are "
            "unknown; check that the topics exist and the broker is up"
        ) from None
    return {tp: consumer.highwater(tp) for tp in tps}


# --- a range as a user names it ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TopicRange:
    """Which records to read: a topic, optionally some partitions, offsets and a time span
    (record timestamps, Unix ms; ends exclusive)."""

    topic: str
    partitions: Sequence[int] = ()
    start_ms: int | None = None
    end_ms: int | None = None
    start_offset: int | None = None
    end_offset: int | None = None

    def describe(self) -> str:
        """The range in words, for messages."""
        parts = [f"topic {self.topic!r}"]
        if self.partitions:
            parts.append(f"partitions {', '.join(map(str, self.partitions))}")
        if self.start_offset is not None or self.end_offset is not None:
            parts.append(f"offsets {self.start_offset or 0} to {self.end_offset or 'the end'}")
        if self.start_ms is not None or self.end_ms is not None:
            start = "the beginning" if self.start_ms is None else _iso(self.start_ms)
            end = "now" if self.end_ms is None else _iso(self.end_ms)
            parts.append(f"time {start} to {end}")
        return ", ".join(parts)


def _iso(ms: int) -> str:
    return unix_rfc3339(ms / 1000)


@dataclass(slots=True)
class RangeProgress:
    """How far a read of a range got: records handled, the range's size, the next offset per
    partition."""

    done: int = 0
    total: int | None = None
    next_offsets: dict[int, int] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def where(self) -> str:
        """``partition:offset`` pairs: where to start again to continue."""
        return ", ".join(f"{p}:{o}" for p, o in sorted(self.next_offsets.items())) or "nowhere"


async def records_in(
    kafka: KafkaSettings,
    selection: TopicRange,
    progress: RangeProgress,
    stop: asyncio.Event | None,
) -> AsyncIterator[list[ConsumerRecord]]:
    """The selected records, batch by batch; DataError when the range holds none."""
    tps = await topic_partitions(kafka, selection.topic)
    if selection.partitions:
        unknown = sorted(set(selection.partitions) - {tp.partition for tp in tps})
        if unknown:
            raise DataError(f"{selection.topic!r} has no partition {unknown}")
        tps = [tp for tp in tps if tp.partition in selection.partitions]

    def bounds(found: RangeBounds) -> None:
        progress.total = found.records if selection.start_ms is None else None

    batches = read_range(
        kafka,
        tps,
        start_ms=selection.start_ms,
        end_ms=selection.end_ms,
        start_offsets=None
        if selection.start_offset is None
        else dict.fromkeys(tps, selection.start_offset),
        end_offsets=None
        if selection.end_offset is None
        else dict.fromkeys(tps, selection.end_offset),
        on_bounds=bounds,
    )
    seen = False
    async with contextlib.aclosing(batches) as reading:
        async for batch in reading:
            seen = True
            yield batch
            if stop is not None and stop.is_set():
                return
    if not seen:
        raise DataError(f"no records in {selection.describe()}")
