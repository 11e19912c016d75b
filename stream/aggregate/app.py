"""The faust-streaming app: pane partials into event-time windows, and sales joined to predictions.

Agents (each one stream over all its assigned partitions):

``route-panes``
    ``prediction-panes`` → ``<app id>-panes-by-model``, re-keyed by model version. The scorer keys
    a pane by pane start and version, so one window's panes would sit in every partition; after
    re-keying, all windows of a version are updated from one partition, so each table entry has
    one changelog partition and a restarted worker recovers it whole.
``aggregate-panes``
    merges the partials into pane states and closes windows (``stream.aggregate.aggregator``);
    one record per closed window to ``prediction-windows`` and the gauges.
``store-predictions`` / ``join-sales``
    ``predictions`` and ``sales`` are co-partitioned (keyed by listing_id, same partition count):
    the first keeps each listing's latest prediction in a table on disk (RocksDB, one database
    per partition; ``prediction_retention_days`` of event time, 60 by default), the second looks
    the sale up and sends the pair to ``<app id>-errors-by-model``, re-keyed by version.
    They read their own topics at their own pace: the scorer never waits for them, and their
    lag is exported (``appraise_consumer_lag_records``).
``aggregate-errors``
    realised error (MAE, MAPE) per window of sale time.
``expire-predictions`` (a timer, every ``SWEEP_S``)
    deletes the join table's predictions past the retention, a tombstone each on the changelog
    (a recovering worker forgets them too): a scan, not an index (``stream.aggregate.join``).
``idle-ticks`` (a timer, every second)
    sends a tick, keyed by model version, to the two internal topics for every version whose
    stream is silent (``idle_seconds``) or whose restored watermark is beyond the cap: the agent
    that owns the version's partition (and so its table entries) then moves the watermark by
    its clock (``stream.aggregate.clock``), closing windows and clearing the gauges of empty
    ones. Panes and sales beyond this clock plus ``event_time_skew_s`` are dropped and counted.

Window state lives in faust tables (memory store, changelog-backed): a restarted worker reads the
changelogs back and continues its open windows; the join table's store is on disk (and rebuilt
from its changelog too: ``stream.aggregate.config``). On the embedded broker (Tansu) the changelog
is read only up to its wrong end offset (docs/embedded-kafka.md), so the newest few table updates
before a restart can be lost; on Apache Kafka recovery is exact.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

import orjson

from stream.aggregate._faust import faust
from stream.aggregate.aggregator import ErrorWindows, PaneWindows
from stream.aggregate.config import faust_settings, join_store
from stream.aggregate.join import EventClock, StoredPrediction, sweep
from stream.aggregate.metrics import AggregateMetrics
from stream.aggregate.timed import Outcome
from stream.aggregate.windows import window_specs
from stream.contract.decoding import decode
from stream.contract.events import PredictionEvent, SaleEvent
from stream.contract.reasons import InvalidEvent
from stream.errors import DataError
from stream.model.profile import ReferenceProfile
from stream.service.component import Component
from stream.settings import Settings

log = logging.getLogger(__name__)

#: How often the consumer-lag gauges are refreshed, in seconds.
LAG_REFRESH_S: Final = 1.0
#: How often silent streams are looked for (and ticked), in seconds.
IDLE_TICK_S: Final = 1.0
#: How often the join table is swept for predictions past the retention, in seconds.
SWEEP_S: Final = 600.0
#: The value of a tick record on the internal topics (a pane or a joined sale is JSON).
IDLE_TICK: Final = b"appraise/idle-tick"
# A table key no record uses: the tombstones that seal the changelogs on stop.
_SEAL_KEY: Final = "__appraise_seal__"


class Activity(NamedTuple):
    """Records of one topic that reached an agent: monotonic times of the first and the latest,
    and their count."""

    first: float
    last: float
    records: int


class AggregateApp(Component):
    """The stream app as a component: ``start()`` returns once the worker is ready (partitions
    assigned, tables recovered); ``stop()`` commits and leaves the group; ``async with`` does
    both; ``run()`` waits for :meth:`request_stop` (the runtime's worker).

    Build a new one to restart (a faust ``App`` is not restartable).

    Args:
        settings: project settings (``kafka``, ``topics``, ``aggregate``, ``max_event_bytes``).
        profile: the reference profile drift is measured against.
        metrics: where the gauges and counters go.
    """

    def __init__(
        self, settings: Settings, profile: ReferenceProfile, metrics: AggregateMetrics
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        metrics.set_importance(profile)
        agg = settings.aggregate
        topics = settings.topics
        self.app = app = faust.App(agg.app_id, **faust_settings(settings))
        raw: dict[str, Any] = {
            "key_type": bytes,
            "value_type": bytes,
            "key_serializer": "raw",
            "value_serializer": "raw",
            "partitions": topics.partitions,
        }
        self.panes_topic = app.topic(topics.panes, **raw)
        self.panes_by_model = app.topic(f"{agg.app_id}-panes-by-model", internal=True, **raw)
        self.predictions_topic = app.topic(topics.predictions, **raw)
        self.sales_topic = app.topic(topics.sales, **raw)
        self.errors_by_model = app.topic(f"{agg.app_id}-errors-by-model", internal=True, **raw)
        self.windows_topic = app.topic(topics.windows, **raw)

        def table(name: str, **store: Any) -> Any:
            return app.Table(name, default=None, key_type=str, value_type=str, **store)

        specs, skew = window_specs(agg), settings.event_time_skew_s
        self.pane_windows = PaneWindows(
            specs, agg, profile, table("pane-states"), table("pane-clocks"), skew_s=skew
        )
        self.error_windows = ErrorWindows(
            specs,
            agg,
            profile,
            table("error-panes"),
            table("error-clocks"),
            skew_s=skew,
            idle_s=agg.idle_after_seconds,
        )
        self.recent = table("recent-predictions", **join_store("recent-predictions"))
        self.join_clock = EventClock(agg.prediction_retention_seconds, settings.event_time_skew_s)
        self._sweeping = asyncio.Lock()
        #: Predictions deleted by the sweeps of this instance.
        self.expired = 0
        self._sources: set[str] = set()
        if agg.windows_enabled:
            app.agent(self.panes_topic, name="route-panes")(self._route_panes)
            app.agent(self.panes_by_model, name="aggregate-panes")(self._aggregate_panes)
            self._sources |= {topics.panes, self.panes_by_model.get_topic_name()}
        if agg.join_enabled:
            app.agent(self.predictions_topic, name="store-predictions")(self._store_predictions)
            app.agent(self.sales_topic, name="join-sales")(self._join_sales)
            app.agent(self.errors_by_model, name="aggregate-errors")(self._aggregate_errors)
            self._sources |= {
                topics.predictions,
                topics.sales,
                self.errors_by_model.get_topic_name(),
            }
            app.timer(SWEEP_S, name="expire-predictions")(self.expire_predictions)
        app.timer(LAG_REFRESH_S, name="refresh-lag")(self._refresh_lag)
        app.timer(IDLE_TICK_S, name="idle-ticks")(self._idle_ticks)
        self._next_offsets: dict[tuple[str, int], int] = {}
        #: Per source topic: when its first and latest record reached an agent, and how many.
        self.activity: dict[str, Activity] = {}
        self._ready = False
        self._stop_requested = asyncio.Event()
        #: Seconds from start() until the worker was ready (set by start()).
        self.ready_after_s: float | None = None
        #: Records published to ``prediction-windows`` by this instance.
        self.published = 0

    @property
    def ready(self) -> Mapping[str, bool]:
        """The readiness check: the worker has its partitions and its tables recovered."""
        return {"worker_ready": self._ready}

    async def _start(self) -> None:
        """Start the worker; return once partitions are assigned and tables recovered."""
        started = time.perf_counter()
        await self.app.start()
        self.ready_after_s = time.perf_counter() - started
        self._ready = True
        log.info("stream app %s ready in %.1f s", self.app.conf.id, self.ready_after_s)

    async def _stop(self) -> None:
        """Stop the worker (commits, leaves the group); also after a start that failed half-way
        (the component base calls it then)."""
        self._ready = False
        if self.ready_after_s is not None:
            await self._seal_changelogs()
        await self.app.stop()
        shutil.rmtree(self.app.conf.datadir, ignore_errors=True)

    async def run(self) -> None:
        """Work (the agents run on their own) until :meth:`request_stop`."""
        await self._stop_requested.wait()

    def request_stop(self) -> None:
        """Make :meth:`run` return; :meth:`stop` then commits and leaves the group."""
        self._stop_requested.set()

    async def _seal_changelogs(self) -> None:
        """End every changelog partition with a record of its own, in its own batch.

        Tansu answers ListOffsets LATEST with the newest batch's base offset + 1, and faust
        recovers a table only up to that offset, so the rest of a multi-record last batch would
        be lost at the next start (docs/embedded-kafka.md). After a flush, one tombstone of a key no
        one uses per partition is a batch of one, and everything before it is recovered. Harmless
        on Apache Kafka. A crashed worker cannot do this: there the newest updates may be lost.
        """
        await self.app.producer.flush()
        for table in self.app.tables.values():
            for partition in range(self.settings.topics.partitions):
                table.send_changelog(partition, _SEAL_KEY, None, value_serializer="raw")
        await self.app.producer.flush()

    # -- agents --------------------------------------------------------------------------------

    async def _route_panes(self, stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            self._seen(event)
            key = event.key or b""
            _, sep, version = key.decode("utf-8", errors="replace").partition("/")
            if not sep or not version:
                self.metrics.panes_invalid.inc()
                log.warning("pane record without a <start>/<model version> key: %.80r", key)
                continue
            self.metrics.panes.inc()
            await self.panes_by_model.send(key=version.encode(), value=event.value)

    async def _aggregate_panes(self, stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            tick = self._seen(event)
            try:
                if tick:
                    outcome = self.pane_windows.idle((event.key or b"").decode(), time.time())
                else:
                    outcome = self.pane_windows.process(event.value, time.time())
            except DataError as exc:
                self.metrics.panes_invalid.inc(0 if tick else 1)
                log.warning("pane record not used: %s", exc)
                continue
            self.metrics.panes_future.inc(outcome.future)
            await self._publish(outcome)

    async def _store_predictions(self, stream: faust.StreamT[bytes]) -> None:
        max_bytes = self.settings.max_event_bytes
        async for event in stream.events():
            self._seen(event)
            try:
                prediction = decode(PredictionEvent, event.value, max_bytes=max_bytes)
            except InvalidEvent as exc:
                log.warning("prediction not stored: %s", exc)
                continue
            partition = event.message.partition
            stored = StoredPrediction.of(prediction, partition)
            self.recent[prediction.listing_id] = orjson.dumps(stored.to_list()).decode()
            self.join_clock.note(partition, stored.event_time)
            self.metrics.predictions_stored.inc()

    async def _join_sales(self, stream: faust.StreamT[bytes]) -> None:
        max_bytes = self.settings.max_event_bytes
        async for event in stream.events():
            self._seen(event)
            try:
                sale = decode(SaleEvent, event.value, max_bytes=max_bytes)
            except InvalidEvent as exc:
                log.warning("sale not joined: %s", exc)
                continue
            current = self.recent.get(sale.listing_id)
            stored = None if current is None else _stored(current)
            # Past the retention but not swept yet: expired all the same.
            if stored is None or self.join_clock.expired(stored.partition, stored.event_time):
                self.metrics.sales_unmatched.inc()
                continue
            self.metrics.sales_joined.inc()
            joined = {
                "sale_time": sale.event_time.timestamp(),
                "predicted": stored.price,
                "actual": sale.sale_price,
            }
            await self.errors_by_model.send(
                key=stored.model_version.encode(), value=orjson.dumps(joined)
            )

    async def _aggregate_errors(self, stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            version, now = (event.key or b"").decode(), time.time()
            try:
                if self._seen(event):
                    outcome = self.error_windows.idle(version, now)
                else:
                    joined = orjson.loads(event.value)
                    outcome = self.error_windows.process(
                        version,
                        float(joined["sale_time"]),
                        float(joined["predicted"]),
                        float(joined["actual"]),
                        now,
                    )
            except (DataError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                log.warning("joined sale not used: %r", exc)
                continue
            self.metrics.sales_future.inc(outcome.future)
            await self._publish(outcome)

    # -- helpers -------------------------------------------------------------------------------

    async def _publish(self, outcome: Outcome) -> None:
        admission = outcome.admission
        if admission is not None:
            for window in admission.late:
                self.metrics.panes_late.labels(window.name).inc()
            for window in admission.dropped:
                self.metrics.panes_dropped.labels(window.name).inc()
        for summary in outcome.closed:
            await self.windows_topic.send(key=summary.key, value=summary.to_record())
            self.metrics.window_closed(summary)
            self.published += 1
        for errors in outcome.closed_errors:
            await self.windows_topic.send(key=errors.key, value=errors.to_record())
            self.metrics.errors_closed(errors)
            self.published += 1
        # Empty windows get no record: silence would flood the topic with windows of nothing
        # (and a replay's gaps of event time with thousands); the gauges say it instead.
        for window in outcome.emptied:
            self.metrics.window_empty(window)
        for window in outcome.emptied_errors:
            self.metrics.errors_empty(window)
        if outcome.closed:
            self.metrics.windows_closed_at({s.window.name for s in outcome.closed}, time.time())

    def _seen(self, event: faust.EventT[bytes]) -> bool:
        """Note an input record (its offset for the lag, its time); True if it is an idle tick
        (which counts in the lag, not as activity)."""
        message = event.message
        self._next_offsets[(message.topic, message.partition)] = message.offset + 1
        if event.value == IDLE_TICK:
            return True
        now = time.monotonic()
        first, _, records = self.activity.get(message.topic, (now, now, 0))
        self.activity[message.topic] = Activity(first, now, records + 1)
        return False

    async def _idle_ticks(self) -> None:
        """Tick every model version whose stream is silent (``idle-ticks`` above)."""
        now = time.time()
        agg = self.settings.aggregate
        for enabled, windows, topic in (
            (agg.windows_enabled, self.pane_windows, self.panes_by_model),
            (agg.join_enabled, self.error_windows, self.errors_by_model),
        ):
            if enabled:
                for version in windows.due_for_tick(now):
                    await topic.send(key=version.encode(), value=IDLE_TICK)

    async def _refresh_lag(self) -> None:
        consumer = self.app.consumer
        lags: dict[tuple[str, int], int] = {}
        for tp in consumer.assignment():
            if tp.topic not in self._sources:
                continue
            high = consumer.highwater(tp)
            position = self._next_offsets.get((tp.topic, tp.partition))
            if position is None:
                position = await consumer.position(tp)
            if high is not None and position is not None:
                lags[(tp.topic, tp.partition)] = max(0, high - position)
        self.metrics.set_lag(lags)
        for version, text in list(self.pane_windows.clocks.items()):
            watermark = orjson.loads(text).get("watermark")
            if watermark is not None and version in self.metrics.model_versions:
                self.metrics.watermark.labels(version).set(watermark)

    async def expire_predictions(self) -> int:
        """Delete the join table's predictions past the retention (``expire-predictions``), a
        tombstone each on the changelog, in the databases of its active partitions (a standby
        copy gets the tombstones); how many (``stream.aggregate.join.sweep``)."""
        store: Any = self.recent.data  # faust's RocksDB store: its databases by partition
        topic = self.recent.changelog_topic.get_topic_name()
        actives = {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == topic}

        def tombstone(partition: int, key: bytes) -> None:
            self.recent.send_changelog(partition, key, None, "raw", "raw")

        async with self._sweeping:
            databases = [(p, db) for p, db in sorted(store._dbs.items()) if p in actives]
            deleted = await sweep(databases, self.join_clock, tombstone, skip=store.offset_key)
        self.expired += deleted
        if deleted:
            log.info("%d predictions past the retention deleted from the join table", deleted)
        return deleted


def _stored(text: str) -> StoredPrediction:
    return StoredPrediction.from_list(orjson.loads(text))
