"""The scorer: an aiokafka consumer group on ``listings`` that prices every valid listing.

Per batch (``getmany`` of at most ``batch_size`` records, waiting at most ``batch_max_wait_ms``):
score it (:func:`consumers.batch.score_batch`: decode, one vectorised predict), then send every
prediction and dead letter with ``send`` and gather the futures; once the broker acknowledged
them all, commit exactly the offsets of that batch. The acks of a batch are awaited while the
next one is fetched and scored, and its commit happens before the next one is sent, so at most
one batch is ever delivered and not committed. At-least-once: a crash repeats at most that
batch, never drops one; nothing is committed that was not delivered.

A rebalance waits for the batch in hand to be committed before the partitions go, and a batch
fetched before a rebalance but not yet started is dropped (its records are fetched again, by
whoever owns them then), so a clean rebalance causes no duplicates.

Pane partials (:mod:`consumers.panes`, record :mod:`stream.contract.panes`) go out at most every
``pane_publish_interval_s`` and before partitions go or the scorer stops; a crash loses at most
that interval of them (the monitor's counts, not predictions).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition

from consumers.batch import Predictor, ScoredBatch, score_batch
from consumers.delivery import Delivery, commit, outgoing
from consumers.metrics import RunStats, ScorerMetrics
from consumers.panes import PaneBook
from consumers.predict import PredictThreads, thread_limit, warm_up
from stream.contract.panes import encode_pane
from stream.kafka.clients import client_error, make_consumer, make_producer
from stream.service.component import Component
from stream.settings import ScorerSettings, Settings

log = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass(slots=True)
class _InFlight:
    """A batch sent and not yet committed."""

    offsets: dict[TopicPartition, int]
    delivery: asyncio.Task[None]
    scored: ScoredBatch
    events: int
    started: float


class Scorer(Component):
    """The scoring loop. ``async with Scorer(...)`` starts and stops it; :meth:`run` scores.

    Args:
        settings: Kafka connection, topic names, ``max_event_bytes``.
        scorer: batching, panes, retries, drain deadline.
        model: the price model (``stream.model.load_model``).
        metrics: where to count; see :mod:`consumers.metrics`.
    """

    def __init__(
        self,
        settings: Settings,
        scorer: ScorerSettings,
        *,
        model: Predictor,
        metrics: ScorerMetrics,
    ) -> None:
        self.settings = settings
        self.config = scorer
        self.model = model
        self.metrics = metrics
        self.panes = PaneBook(scorer.pane_seconds, model.version, scorer.sketch_k)
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._delivery: Delivery | None = None
        # Held while a batch is scored, delivered and committed; a rebalance takes it before
        # partitions go, so it waits for the batch in hand to be committed.
        self._batch_lock = asyncio.Lock()
        # Bumped when partitions are revoked: a batch fetched under an older generation is
        # dropped, because another member may already own (and score) its partitions.
        self._generation = 0
        self._assigned: frozenset[TopicPartition] = frozenset()
        self._joined = False  # a member of the group's current generation (maybe idle)
        self._has_partitions = asyncio.Event()
        self._next_offsets: dict[TopicPartition, int] = {}
        self._in_flight: _InFlight | None = None
        self._consumed = 0
        self._last_settled = 0.0
        self._stop_requested = asyncio.Event()
        self._threads: PredictThreads | None = None
        self._last_pane_flush = 0.0
        self._last_lag_refresh = 0.0
        self.stats = RunStats()
        metrics.set_model(model.version)

    # --- lifecycle -----------------------------------------------------------------------------

    async def _start(self) -> None:
        """Connect the producer and the consumer and join the group (assignment follows)."""
        # Compiled trees take no OpenMP threads: then the library's limits are left alone.
        self._threads = PredictThreads(
            None if self.model.compiled else thread_limit(self.config.predict_threads)
        )
        warm_up(self.model, self.settings.max_event_bytes)
        kafka = self.settings.kafka
        # A record over max_event_bytes must still be fetched (aiokafka stalls the partition on a
        # record above max_partition_fetch_bytes) and dead-lettered with its original bytes.
        largest = self.config.max_record_bytes
        # linger 0: a batch's requests must leave while the loop is free, right after they are
        # queued; scoring the next batch holds the loop for tens of ms, past any linger timer.
        self._producer = make_producer(kafka, max_request_size=largest, linger_ms=0)
        self._consumer = make_consumer(
            kafka,
            group_id=self.config.group_id,
            max_partition_fetch_bytes=largest,
            fetch_max_wait_ms=self.config.fetch_max_wait_ms,
        )
        await self._producer.start()
        self._delivery = Delivery(
            self._producer,
            retries=self.config.produce_retries,
            backoff_s=self.config.retry_backoff_s,
            dlq_topic=self.settings.topics.dlq,
            on_retry=self.metrics.broker_retries.inc,
            error_for=lambda doing, exc: client_error(exc, kafka, doing),
        )
        await self._consumer.start()
        self._consumer.subscribe([self.settings.topics.listings], listener=_Listener(self))
        self._last_pane_flush = time.monotonic()
        log.info(
            "scorer started: group %s on %s, model %s",
            self.config.group_id,
            self.settings.topics.listings,
            self.model.version,
        )

    async def _stop(self) -> None:
        """Publish the pane partials, leave the group, flush the producer."""
        consumer, producer, delivery = self._consumer, self._producer, self._delivery
        try:
            if consumer is not None and delivery is not None:
                async with self._batch_lock:
                    await self._settle()
                    await self._flush_panes(delivery)
        finally:
            self._consumer = self._producer = self._delivery = None
            if consumer is not None:
                await consumer.stop()  # commits nothing (auto-commit is off); leaves the group
            if producer is not None:
                await producer.stop()
            if self._threads is not None:
                self._threads.restore()
                self._threads = None
            self._assigned, self._joined = frozenset(), False
            self.metrics.keep_only_partitions(())

    def request_stop(self) -> None:
        """Stop fetching: :meth:`run` returns once the batch in hand is committed."""
        self._stop_requested.set()

    @property
    def ready(self) -> dict[str, bool]:
        """Model loaded, broker reachable, group joined, and ``partitions_assigned`` (failing
        before the join), or ``idle`` for a member given no partition (a standby): ready too."""
        reachable = self._delivery is not None and self._delivery.reachable
        checks = {"model_loaded": True, "broker_reachable": reachable, "group_joined": self._joined}
        if self._joined and not self._assigned:
            return {**checks, "idle": True}
        return {**checks, "partitions_assigned": bool(self._assigned)}

    async def wait_assigned(self) -> None:
        """Return once this scorer owns a partition (needs :meth:`run`: it joins the group)."""
        await self._has_partitions.wait()

    @property
    def assignment(self) -> frozenset[TopicPartition]:  # the partitions this scorer owns now
        return self._assigned

    # --- the loop ------------------------------------------------------------------------------

    async def run(
        self,
        *,
        max_events: int | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - checked between batches, never mid-batch
    ) -> RunStats:
        """Score until :meth:`request_stop`, or until ``max_events`` records were consumed (then
        return), or for ``timeout`` seconds. Raise TimeoutError if ``timeout`` passes before
        ``max_events`` were consumed."""
        consumer = self._need(self._consumer)
        started = time.monotonic()
        deadline = None if timeout is None else started + timeout
        wait_ms = self.config.batch_max_wait_ms
        first_fetch: float | None = None
        while not self._stop_requested.is_set():
            if max_events is not None and self._consumed >= max_events:
                break
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                if max_events is not None:
                    raise TimeoutError(
                        f"consumed {self._consumed} of {max_events} events in {timeout} s"
                    )
                break
            generation = self._generation
            fetched = await consumer.getmany(timeout_ms=wait_ms, max_records=self.config.batch_size)
            if fetched:
                if first_fetch is None:
                    first_fetch = time.monotonic()
                await self._process(fetched, generation)
            elif self._in_flight is not None:  # idle: commit the last batch now, not later
                async with self._batch_lock:
                    await self._settle()
            self._consumed = self.stats.events + (self._in_flight.events if self._in_flight else 0)
            await self._housekeeping()
        async with self._batch_lock:
            await self._settle()
        stats = self.stats
        stats.seconds = time.monotonic() - started
        if first_fetch is not None:
            stats.busy_seconds += self._last_settled - first_fetch
        log.info(
            "scorer stopped: %d events, %d predictions, %d dead letters in %.1f s",
            stats.events,
            stats.predictions,
            stats.dead_letters,
            stats.seconds,
        )
        return stats

    async def _process(self, fetched: dict[TopicPartition, list[Any]], generation: int) -> None:
        async with self._batch_lock:
            if self._consumer is None:
                return
            if generation != self._generation:
                await self._rewind(self._consumer, fetched)
                return
            delivery = self._need(self._delivery)
            records = [record for batch in fetched.values() for record in batch]
            started = time.perf_counter()
            self.metrics.consumed(len(records))
            self.metrics.in_flight.inc(len(records))
            # On the loop's own thread: in a worker thread it was slower here (the GIL handoffs
            # between scoring and the client cost more than the overlap of predict gained).
            self._need(self._threads).for_rows(len(records))
            scored = score_batch(
                records,
                self.model,
                max_bytes=self.settings.max_event_bytes,
                panes=self.panes,
                skew_s=self.settings.event_time_skew_s,
            )
            # The previous batch is committed before this one is sent: at most one batch is
            # ever delivered and not committed, so a crash repeats at most one batch.
            await self._settle()
            # Its requests go out now; their acks are awaited after the next batch is scored,
            # so the broker stores this batch while the next one is scored.
            topics = self.settings.topics
            pending = await delivery.start(outgoing(scored, topics.predictions, topics.dlq))
            self._in_flight = _InFlight(
                offsets={tp: batch[-1].offset + 1 for tp, batch in fetched.items() if batch},
                delivery=asyncio.create_task(delivery.finish(pending)),
                scored=scored,
                events=len(records),
                started=started,
            )

    async def _settle(self) -> None:
        """Wait for the acks of the batch in flight, then commit its offsets. Call with the
        batch lock held."""
        batch, self._in_flight = self._in_flight, None
        if batch is None:
            return
        await batch.delivery  # raises BrokerError if delivery failed: nothing is committed
        if self._consumer is not None:
            await self._commit(self._consumer, batch.offsets)
        self._next_offsets.update(batch.offsets)
        self._last_settled = time.monotonic()
        self.metrics.in_flight.dec(batch.events)
        self._count(batch.scored, batch.events, time.perf_counter() - batch.started)

    async def _rewind(
        self, consumer: AIOKafkaConsumer, fetched: dict[TopicPartition, list[Any]]
    ) -> None:
        """Drop a batch fetched across a rebalance, and fetch its partitions that are still
        ours again from their committed offsets: scoring it now could duplicate what the new
        owner scores, and letting the positions move past it would lose it."""
        owned = [tp for tp in fetched if tp in consumer.assignment()]
        for tp in owned:
            offset = await consumer.committed(tp)
            consumer.seek(tp, fetched[tp][0].offset if offset is None else offset)
        log.info("dropped a batch fetched across a rebalance; refetching %s", sorted(owned))

    def _count(self, scored: ScoredBatch, events: int, seconds: float) -> None:
        m = self.metrics
        m.predictions.labels(model_version=self.model.version).inc(len(scored.predictions))
        for reason, n in scored.reasons.items():
            m.scoring_errors.labels(reason=reason).inc(n)
        m.batch_duration.observe(seconds)
        m.batch_size.observe(events)
        m.observe_prices(scored.prices)
        m.observe_event_lags(scored.scored_at - scored.event_seconds)
        self.stats.events += events
        self.stats.predictions += len(scored.predictions)
        self.stats.dead_letters += len(scored.dead_letters)
        self.stats.batches += 1

    async def _housekeeping(self) -> None:
        now = time.monotonic()
        if now - self._last_pane_flush >= self.config.pane_publish_interval_s:
            async with self._batch_lock:
                if self._delivery is not None:
                    await self._flush_panes(self._delivery)
        if now - self._last_lag_refresh >= self.config.lag_refresh_s:
            self._last_lag_refresh = now
            self._refresh_lag()

    def _refresh_lag(self) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        for tp in self._assigned:
            highwater = consumer.highwater(tp)
            position = self._next_offsets.get(tp)
            if highwater is not None and position is not None:
                self.metrics.set_lag(tp.topic, tp.partition, max(0, highwater - position))

    # --- delivery ------------------------------------------------------------------------------

    async def _commit(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        config = self.config
        done = await commit(
            consumer,
            offsets,
            retries=config.produce_retries,
            backoff_s=config.retry_backoff_s,
            on_retry=self.metrics.broker_retries.inc,
        )
        if done:
            self.metrics.last_commit.set(time.time())

    async def _flush_panes(self, delivery: Delivery) -> None:
        self._last_pane_flush = time.monotonic()
        panes = self.panes.drain()
        if panes:
            topic = self.settings.topics.panes
            await delivery.send_all([(topic, encode_pane(p), p.key, None) for p in panes])
            self.metrics.panes_published.inc(len(panes))

    # --- rebalances ----------------------------------------------------------------------------

    async def _on_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        gone = set(revoked)
        async with self._batch_lock:  # the batch in hand is committed before partitions go
            # aiokafka also calls this with nothing revoked before the first join; bumping then
            # would drop the first batch while the positions move past it. With something
            # revoked (eager protocol: everything), positions restart from the committed offsets.
            if gone:
                self._generation += 1
            await self._settle()
            if self._delivery is not None:
                await self._flush_panes(self._delivery)
        self._assigned, self._joined = self._assigned - gone, False  # rejoining now
        if not self._assigned:
            self._has_partitions.clear()
        for tp in gone:
            self._next_offsets.pop(tp, None)
        self.metrics.keep_only_partitions((tp.topic, tp.partition) for tp in self._assigned)
        log.info("partitions revoked: %s", sorted(gone))

    async def _on_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self._assigned, self._joined = frozenset(assigned), True  # called with none too
        if self._assigned:
            self._has_partitions.set()
        self.metrics.keep_only_partitions((tp.topic, tp.partition) for tp in self._assigned)
        log.info("partitions assigned: %s", sorted(self._assigned))

    @staticmethod
    def _need(client: _T | None) -> _T:
        if client is None:
            raise RuntimeError("the scorer is not started; use `async with Scorer(...)`")
        return client


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.scorer._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.scorer._on_assigned(assigned)
