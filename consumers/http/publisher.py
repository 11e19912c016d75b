"""The HTTP service's way to Kafka: predictions and pane partials through a bounded buffer, sent
by a task of its own, so serving never waits on the broker.

A request's prediction is answered first and handed to :meth:`Publisher.add`, which only appends
to a deque. Every ``serve.publish_interval_s`` the task sends what is buffered (at most
:data:`CHUNK` records per round, all acknowledged before the next round) to the predictions
topic, and every ``scorer.pane_publish_interval_s`` the pane partials folded since the last time
to ``prediction-panes``, exactly as the scorer does, so the stream app's windows, the label join
and the alerts cover HTTP traffic with no change downstream.

When the broker is away the task reconnects with a backoff that doubles up to
:data:`MAX_BACKOFF_S`; predictions stay buffered up to ``serve.publish_buffer_records`` and pane
partials up to :data:`MAX_PANES` (an hour of 10-s panes), the oldest dropped past that. Every
record dropped, and every record still unsent when the service stops, is counted in
``appraise_http_unpublished_total`` (the alert ``AppraiseHttpTrafficUnmonitored`` reads it).
Delivery is at least once while the broker answers (a retried chunk may repeat records), best
effort when it does not: the HTTP client has its answer either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Final

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from consumers.delivery import Delivery
from consumers.http.metrics import ServeMetrics
from consumers.panes import PaneBook
from stream.contract.panes import Pane, encode_pane
from stream.errors import BrokerError
from stream.kafka.clients import client_error, make_producer
from stream.kafka.topics import ensure_topics, topic_specs
from stream.service.component import Component
from stream.settings import Settings

log = logging.getLogger(__name__)

#: Most predictions sent per round.
CHUNK: Final = 5_000
#: Most pane partials kept while the broker is away: an hour of 10-s panes.
MAX_PANES: Final = 360
#: Longest wait between two attempts to reach the broker, in seconds.
MAX_BACKOFF_S: Final = 10.0
#: How long the last flush may take when the service stops, in seconds.
FINAL_FLUSH_S: Final = 5.0


class Publisher(Component):
    """Buffers what the service must publish and sends it in its own task.

    Args:
        settings: Kafka, topic names, ``serve`` (buffer size, interval) and ``scorer``
            (``pane_publish_interval_s``, retries).
        metrics: the buffer gauge and the published / unpublished counters.
        panes: the book the service folds every answered prediction into.
    """

    def __init__(self, settings: Settings, metrics: ServeMetrics, panes: PaneBook) -> None:
        self.settings = settings
        self.metrics = metrics
        self.panes = panes
        self._records: deque[tuple[bytes, bytes]] = deque()
        self._limit = settings.serve.publish_buffer_records
        self._unsent_panes: dict[bytes, Pane] = {}
        self._producer: AIOKafkaProducer | None = None
        self._delivery: Delivery | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._last_panes = 0.0
        self._topics_ready = False

    @property
    def connected(self) -> bool:
        """True while the broker answered the last attempt (``/readyz`` reports it)."""
        return self._delivery is not None and self._delivery.reachable

    @property
    def buffered(self) -> int:
        """Predictions and pane partials waiting to be sent."""
        return len(self._records) + len(self._unsent_panes) + len(self.panes)

    def add(self, predictions: list[tuple[bytes, bytes]]) -> None:
        """Buffer ``(key, value)`` prediction records; never waits. Past the buffer's size the
        oldest are dropped and counted."""
        records = self._records
        overflow = len(records) + len(predictions) - self._limit
        if overflow > 0:
            dropped = min(overflow, len(records))
            for _ in range(dropped):
                records.popleft()
            if overflow > dropped:  # more new records than the whole buffer holds
                predictions = predictions[overflow - dropped :]
            self.metrics.unpublished.labels(kind="prediction").inc(overflow)
        records.extend(predictions)

    # --- lifecycle -----------------------------------------------------------------------------

    async def _start(self) -> None:
        self._stopping.clear()
        self._last_panes = time.monotonic()
        self._task = asyncio.create_task(self._run(), name="appraise-serve-publisher")

    async def _stop(self) -> None:
        """Send what is buffered (within :data:`FINAL_FLUSH_S`), count the rest, disconnect."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None:
            await task
        try:
            if self._delivery is not None:
                async with asyncio.timeout(FINAL_FLUSH_S):
                    await self._flush(panes=True, everything=True)
        except (TimeoutError, BrokerError, KafkaError) as exc:
            log.warning("serve: the last flush to Kafka did not finish: %r", exc)
        lost_predictions = len(self._records)
        lost_panes = len(self._unsent_panes) + len(self.panes.drain())
        if lost_predictions or lost_panes:
            log.warning(
                "serve: %d predictions and %d pane partials were not published",
                lost_predictions,
                lost_panes,
            )
            self.metrics.unpublished.labels(kind="prediction").inc(lost_predictions)
            self.metrics.unpublished.labels(kind="pane").inc(lost_panes)
        self._records.clear()
        self._unsent_panes.clear()
        await self._disconnect()

    # --- the task ------------------------------------------------------------------------------

    async def _run(self) -> None:
        interval = self.settings.serve.publish_interval_s
        backoff = interval
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), backoff)
            if self._stopping.is_set():
                return
            try:
                if self._delivery is None:
                    await self._connect()
                pane_due = time.monotonic() - self._last_panes
                await self._flush(panes=pane_due >= self.settings.scorer.pane_publish_interval_s)
            except (BrokerError, KafkaError, OSError) as exc:
                if backoff == interval:  # the first failure of a run; then quietly
                    log.warning("serve: cannot publish to Kafka (%s); retrying", exc)
                await self._disconnect()
                backoff = min(backoff * 2, MAX_BACKOFF_S)
            else:
                if backoff != interval:
                    log.info("serve: publishing to Kafka again")
                backoff = interval
            finally:
                self.metrics.buffer.set(self.buffered)

    async def _connect(self) -> None:
        kafka = self.settings.kafka
        if not self._topics_ready:
            await ensure_topics(kafka, topic_specs(self.settings))
            self._topics_ready = True
        producer = make_producer(kafka, linger_ms=5)
        try:
            await producer.start()
        except BaseException:
            with contextlib.suppress(KafkaError):
                await producer.stop()
            raise
        config = self.settings.scorer
        self._producer = producer
        self._delivery = Delivery(
            producer,
            retries=config.produce_retries,
            backoff_s=config.retry_backoff_s,
            dlq_topic=self.settings.topics.dlq,
            error_for=lambda doing, exc: client_error(exc, kafka, doing),
        )

    async def _disconnect(self) -> None:
        producer, self._producer, self._delivery = self._producer, None, None
        if producer is not None:
            with contextlib.suppress(KafkaError, OSError):
                await producer.stop()

    async def _flush(self, *, panes: bool, everything: bool = False) -> None:
        """Send buffered predictions (one chunk, or ``everything``) and, if ``panes``, the pane
        partials. What fails goes back to the buffer's front, to be sent first next time."""
        delivery = self._delivery
        if delivery is None:
            return
        topics = self.settings.topics
        records = self._records
        while records:
            n = min(CHUNK, len(records))
            chunk = [records.popleft() for _ in range(n)]
            try:
                await delivery.send_all([(topics.predictions, v, k, None) for k, v in chunk])
            except BaseException:
                room = max(0, self._limit - len(records))
                kept = chunk[len(chunk) - room :] if room < len(chunk) else chunk
                records.extendleft(reversed(kept))
                if len(kept) < len(chunk):
                    self.metrics.unpublished.labels(kind="prediction").inc(len(chunk) - len(kept))
                raise
            self.metrics.published.labels(kind="prediction").inc(n)
            if not everything:
                break
        if panes:
            await self._flush_panes(delivery)

    async def _flush_panes(self, delivery: Delivery) -> None:
        self._last_panes = time.monotonic()
        for pane in self.panes.drain():
            kept = self._unsent_panes.get(pane.key)
            if kept is None:
                self._unsent_panes[pane.key] = pane
            else:  # the broker was away: partials of one pane merge exactly
                kept.merge(pane)
        while len(self._unsent_panes) > MAX_PANES:
            del self._unsent_panes[next(iter(self._unsent_panes))]
            self.metrics.unpublished.labels(kind="pane").inc()
        if not self._unsent_panes:
            return
        unsent = list(self._unsent_panes.values())
        topic = self.settings.topics.panes
        await delivery.send_all([(topic, encode_pane(p), p.key, None) for p in unsent])
        self._unsent_panes.clear()
        self.metrics.published.labels(kind="pane").inc(len(unsent))
