"""Publish drafts to the listings topic at a steady rate, with sale labels following later.

Record timestamps are the time of publishing (the broker's clock), not the listing's
``event_time``: on Apache Kafka retention works on record timestamps, and a 2008 timestamp would
make the broker delete the records at once. ``event_time`` travels in the payload.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import orjson

from producers.pacing import Pacer
from producers.sources import Draft

EventTime = Literal["history", "live"]


class Producer(Protocol):
    """What publishing needs of a Kafka producer (aiokafka's AIOKafkaProducer fits)."""

    async def send(
        self, topic: str, value: bytes | None = None, key: bytes | None = None
    ) -> Awaitable[Any]: ...


@dataclass(slots=True)
class PublishStats:
    """What a run published, for the progress line and the closing summary."""

    listings: int = 0
    sales: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        """Listings per second since the start."""
        return self.listings / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(frozen=True, slots=True)
class PublishPlan:
    """How to publish: topics, pace, how many, and which clock the events carry."""

    topic: str
    sales_topic: str | None = None  # None: no sale labels
    sale_delay_s: float = 30.0
    rate: float | None = None  # events/s; None: as fast as the broker takes them
    count: int | None = None  # None: until the source ends (a repeated one never does)
    event_time: EventTime = "history"


def _now() -> datetime:
    return datetime.now(UTC)


def encode(draft: Draft, *, event_time: EventTime, now: datetime) -> bytes | None:
    """The record value: the listing re-encoded (with ``now`` as event_time when live), or the
    raw bytes of a draft that is not an object."""
    if draft.listing is None:
        return draft.raw
    listing = draft.listing
    if event_time == "live":
        listing = {**listing, "event_time": now}
    return orjson.dumps(listing, option=orjson.OPT_UTC_Z)


def _sale(draft: Draft, *, event_time: EventTime, now: datetime) -> bytes | None:
    if draft.listing is None or draft.sale_price is None or draft.key is None:
        return None
    when = now if event_time == "live" else draft.listing.get("event_time", now)
    sale = {"listing_id": draft.listing["listing_id"], "event_time": when}
    sale["sale_price"] = draft.sale_price
    return orjson.dumps(sale, option=orjson.OPT_UTC_Z)


def _drafts(source: Iterable[Draft], plan: PublishPlan) -> Iterator[Draft]:
    drafts: Iterable[Draft] = source
    if plan.count is not None:
        drafts = itertools.islice(drafts, plan.count)
    yield from drafts


async def publish(
    producer: Producer,
    source: Iterable[Draft],
    plan: PublishPlan,
    *,
    on_progress: Callable[[PublishStats], None] | None = None,
    stop: asyncio.Event | None = None,
) -> PublishStats:
    """Publish ``source`` by ``plan``; returns when it is all acknowledged or ``stop`` is set.

    Each chunk's sends are gathered before the next chunk: the producer batches them, and a
    failed send raises here instead of being lost.
    """
    stats = PublishStats()
    pacer = Pacer(plan.rate)
    labels = (
        SaleLabels(producer, plan.sales_topic, plan.sale_delay_s)
        if plan.sales_topic is not None
        else None
    )
    drafts = _drafts(source, plan)
    exhausted = False
    while not exhausted and not (stop is not None and stop.is_set()):
        allowed = await pacer.release(stats.listings)
        chunk = list(itertools.islice(drafts, allowed))
        exhausted = len(chunk) < allowed
        now = _now()
        futures = []
        for draft in chunk:
            value = encode(draft, event_time=plan.event_time, now=now)
            futures.append(await producer.send(plan.topic, value=value, key=draft.key))
            if labels is not None:
                labels.follow(draft, event_time=plan.event_time, now=now)
        if labels is not None:
            futures += await labels.send_due()
            stats.sales = labels.sent
        await asyncio.gather(*futures)
        stats.listings += len(chunk)
        if on_progress is not None:
            on_progress(stats)
    if labels is not None:

        def sent() -> None:
            stats.sales = labels.sent
            if on_progress is not None:
                on_progress(stats)

        await labels.send_rest(stop, on_sent=sent)
    return stats


class SaleLabels:
    """The sale labels of what was sent, each waiting ``delay_s`` before it goes to the sales
    topic; shared by publishing to Kafka and sending over HTTP (``http.py``), whose labels still
    travel on the topic the stream app joins."""

    def __init__(self, producer: Producer, topic: str, delay_s: float) -> None:
        self.producer = producer
        self.topic = topic
        self.delay_s = delay_s
        self.sent = 0
        self._pending: deque[tuple[float, bytes, bytes]] = deque()

    def follow(self, draft: Draft, *, event_time: EventTime, now: datetime) -> None:
        """Queue ``draft``'s label, if it has one (a sale price and a key), ``delay_s`` from now."""
        sale = _sale(draft, event_time=event_time, now=now)
        if sale is not None and draft.key is not None:
            self._pending.append((time.monotonic() + self.delay_s, draft.key, sale))

    async def send_due(self) -> list[Awaitable[Any]]:
        """Send the labels whose delay is over; the caller gathers their futures."""
        now = time.monotonic()
        futures = []
        while self._pending and self._pending[0][0] <= now:
            _, key, value = self._pending.popleft()
            futures.append(await self.producer.send(self.topic, value=value, key=key))
            self.sent += 1
        return futures

    async def send_rest(self, stop: asyncio.Event | None, *, on_sent: Callable[[], None]) -> None:
        """Send the labels still waiting, each at its own time, until none is left or ``stop``
        is set; ``on_sent`` after each batch is acknowledged."""
        while self._pending and not await _stopped_within(
            stop, self._pending[0][0] - time.monotonic()
        ):
            await asyncio.gather(*await self.send_due())
            on_sent()


async def _stopped_within(stop: asyncio.Event | None, seconds: float) -> bool:
    """Wait ``seconds`` (or less, if ``stop`` is set first); True when stopped."""
    if stop is None:
        await asyncio.sleep(max(0.0, seconds))
        return False
    try:
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))
    except TimeoutError:
        return False
    return True
