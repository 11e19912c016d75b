"""``appraise replay --to``: publish a range of a topic again, as fast as possible or paced as
it happened. (``--rescore`` is :mod:`stream.model.rescore`.)

A range is offsets (``--from-offset``/``--until-offset``, per partition, end exclusive) and/or
record time (``--from``/``--until``: RFC 3339 or relative to now like ``-2h``; start inclusive,
end exclusive). Exactly the records inside it are read, across all partitions (or the ones
named): time is matched on each record's own timestamp, never on the broker's guess.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from aiokafka import ConsumerRecord

from stream.errors import DataError
from stream.kafka.clients import producing
from stream.kafka.ranges import RangeProgress, TopicRange, records_in
from stream.settings import Settings


async def republish(
    settings: Settings,
    selection: TopicRange,
    to_topic: str,
    *,
    speed: float | None,
    stop: asyncio.Event | None = None,
    on_progress: Callable[[RangeProgress], None] | None = None,
) -> RangeProgress:
    """Publish the selected records to ``to_topic`` with key, headers and timestamp kept;
    paced as they happened divided by ``speed`` (None: as fast as possible).

    Each batch is acknowledged before the next is read, so when stopped, everything up to
    :attr:`RangeProgress.next_offsets` was written and nothing after it.
    """
    if to_topic == selection.topic:
        raise DataError(f"--to {to_topic!r} is the topic being read: choose another")
    progress = RangeProgress()
    first: tuple[int, float] | None = None  # (record timestamp ms, wall clock s) of the first
    async with producing(settings.kafka, f"re-publishing to {to_topic}") as producer:
        async for batch in records_in(settings.kafka, selection, progress, stop):
            for record in sorted(batch, key=lambda r: r.timestamp) if speed else batch:
                if speed is not None:
                    first = first or (record.timestamp, time.monotonic())
                    due = first[1] + (record.timestamp - first[0]) / 1000 / speed
                    if await _stopped_within(stop, due - time.monotonic()):
                        break
                await _send(producer, to_topic, record, progress)
            await producer.flush()
            if on_progress is not None:
                on_progress(progress)
            if stop is not None and stop.is_set():
                break
    return progress


async def _send(producer: Any, topic: str, record: ConsumerRecord, progress: RangeProgress) -> None:
    await producer.send(
        topic,
        value=record.value,
        key=record.key,
        headers=list(record.headers or ()),
        timestamp_ms=record.timestamp,
    )
    progress.done += 1
    progress.next_offsets[record.partition] = record.offset + 1


async def _stopped_within(stop: asyncio.Event | None, seconds: float) -> bool:
    if seconds <= 0:
        return stop is not None and stop.is_set()
    if stop is None:
        await asyncio.sleep(seconds)
        return False
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    return stop.is_set()
