"""The history sink: window records from ``prediction-windows`` into PostgreSQL.

Each round fetches up to ``history.batch_records`` records, types them with the contract's
reader (anything else is counted by reason, logged and skipped), keeps the last record of each
window, writes them in one transaction (:func:`consumers.history.write.write_batch`) and only
then commits the offsets: at-least-once, and the upserts make a record written twice one row.

The database away or restarting: the write is retried with exponential backoff (stamina, as the
scorer's commits) until it is back, nothing is committed meanwhile, ``/readyz`` says
``database_connected: false`` and the lag keeps being measured, so ``AppraiseHistoryBehind``
fires if it lasts. Credentials the server refuses, or a database that does not exist, are a
user's mistake: a :class:`~stream.errors.ConfigError` naming the setting, not a retry loop.
A stop request finishes the batch in hand while the database answers; while it does not, the
batch is left uncommitted for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any, Final

import psycopg
import stamina
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from consumers.delivery import commit
from consumers.history.metrics import REFUSED, HistoryMetrics
from consumers.history.schema import SchemaError, migrate
from consumers.history.write import Incoming, Written, latest_per_window, write_batch
from stream.contract.windows import NotAWindowRecord, decode_window_record
from stream.errors import ConfigError
from stream.kafka.clients import make_consumer
from stream.kafka.ranges import end_offsets_via_highwater
from stream.service.component import Component
from stream.settings import Settings

log = logging.getLogger(__name__)

#: How often windows past ``history.retention_days`` are deleted, in seconds.
RETENTION_EVERY_S: Final = 3_600.0
#: SQLSTATEs of a connection the server refuses for good: bad password, no such role or
#: database. Retrying would not help.
_REFUSED_FOR_GOOD: Final = ("28000", "28P01", "3D000")
_CONNECTION_ERRORS: Final = (psycopg.OperationalError, psycopg.InterfaceError)


class HistorySink(Component):
    """The sink of ``appraise history`` (module docstring).

    Args:
        settings: Kafka, the windows topic, the ``history`` section (DSN, credentials,
            batching, retries, retention).
        metrics: where to count; see :mod:`consumers.history.metrics`.
    """

    def __init__(self, settings: Settings, metrics: HistoryMetrics) -> None:
        if settings.history.dsn is None:
            raise ConfigError("APPRAISE_HISTORY__DSN is not set")
        self.settings = settings
        self.config = settings.history
        self.metrics = metrics
        self._consumer: AIOKafkaConsumer | None = None
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._migrated = False
        self._database_up = True  # until an operation fails: the first failure is logged
        self._stop_requested = asyncio.Event()
        self._caught_up_at = time.monotonic()
        self._committed: dict[TopicPartition, int] = {}
        self._last_retention = float("-inf")  # the first round deletes at once
        self.written = Written()
        """Totals of this run (tests and the benchmark read them)."""
        self.skipped = 0
        self.fetched = 0
        """Records taken from the topic (written, skipped or superseded in their batch)."""
        self.batches = 0
        self.busy_from: float | None = None
        """``time.perf_counter()`` when the first fetch with records came back."""
        self.busy_until = 0.0
        """``time.perf_counter()`` when the last batch was committed."""

    # --- lifecycle -----------------------------------------------------------------------------

    async def _start(self) -> None:
        self._stop_requested.clear()
        consumer = make_consumer(
            self.settings.kafka,
            group_id=self.config.group_id,
            fetch_max_wait_ms=self.config.fetch_max_wait_ms,
        )
        self._consumer = consumer
        await consumer.start()
        consumer.subscribe([self.settings.topics.windows])
        log.info(
            "history sink started: group %s on %s into %s",
            self.config.group_id,
            self.settings.topics.windows,
            self.config.where(),
        )

    async def _stop(self) -> None:
        consumer, conn = self._consumer, self._conn
        self._consumer = self._conn = None
        if consumer is not None:
            await consumer.stop()
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                await conn.close()

    def request_stop(self) -> None:
        """Stop fetching: :meth:`run` returns once the batch in hand is written (or, while the
        database is away, left uncommitted)."""
        self._stop_requested.set()

    @property
    def ready(self) -> dict[str, bool]:
        """The readiness checks: the database connected and its schema current."""
        return {
            "database_connected": self._conn is not None and not self._conn.closed,
            "schema_current": self._migrated,
        }

    # --- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Write windows until :meth:`request_stop`."""
        consumer = self._need_consumer()
        lag = asyncio.ensure_future(self._measure_lag())
        try:
            if not await self._until_done(self._connection()):
                return
            while not self._stop_requested.is_set():
                fetched = await consumer.getmany(
                    timeout_ms=self.config.fetch_max_wait_ms,
                    max_records=self.config.batch_records,
                )
                if not fetched:
                    continue
                if not await self._handle(consumer, fetched):
                    return
                await self._retention()  # after a write: what it wrote may already be old
        finally:
            lag.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lag

    async def _handle(
        self, consumer: AIOKafkaConsumer, fetched: Mapping[TopicPartition, list[Any]]
    ) -> bool:
        """Write one fetch and commit it; False when stopped before it could be written."""
        if self.busy_from is None:
            self.busy_from = time.perf_counter()
        items: list[Incoming] = []
        for tp, messages in fetched.items():
            for message in messages:
                try:
                    record = decode_window_record(message.value)
                except NotAWindowRecord as exc:
                    self._skip(
                        exc.reason, f"{tp.topic}/{tp.partition}@{message.offset}", exc.detail
                    )
                    continue
                items.append(Incoming(record, message.value))
        latest = latest_per_window(items)
        if latest:
            started = time.perf_counter()
            written = await self._until_done(self._write(latest))
            if written is None:
                return False
            self.metrics.write_duration.observe(time.perf_counter() - started)
            self._count(written)
        offsets = {tp: messages[-1].offset + 1 for tp, messages in fetched.items() if messages}
        if await commit(
            consumer,
            offsets,
            retries=5,
            backoff_s=self.config.retry_initial_s,
            on_retry=self.metrics.retries.inc,
        ):
            self._committed.update(offsets)
        self.fetched += sum(len(messages) for messages in fetched.values())
        self.batches += 1
        self.busy_until = time.perf_counter()
        return True

    def _skip(self, reason: str, where: str, detail: str) -> None:
        self.skipped += 1
        self.metrics.skipped.labels(reason).inc()
        log.warning("skipped %s: %s (%s)", where, reason, detail)

    def _count(self, written: Written) -> None:
        for kind, n in written.records.items():
            self.metrics.records.labels(kind).inc(n)
            self.written.records[kind] += n
        for table, n in written.rows.items():
            self.metrics.rows.labels(table).inc(n)
            self.written.rows[table] += n
        for item, message in written.refused:
            self._skip(REFUSED, item.record.key.decode(errors="replace"), message)
        self.metrics.last_write.set(time.time())

    async def _until_done(self, work: Any) -> Any:
        """``await work``, unless a stop is requested while the database is away: then give up
        (None). A write the database is answering is let finish."""
        task = asyncio.ensure_future(work)
        while True:
            done, _ = await asyncio.wait({task}, timeout=0.2)
            if done:
                return task.result()
            if self._stop_requested.is_set() and not self.ready["database_connected"]:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, *_CONNECTION_ERRORS):
                    await task
                log.warning("history sink: stopped while the database is away; not committed")
                return None

    # --- the database --------------------------------------------------------------------------

    async def _write(self, items: list[Incoming]) -> Written:
        """Write ``items``, retrying connection errors until the database is back."""
        async for attempt in self._retrying():
            with attempt:
                conn = await self._connect_once()
                try:
                    return await write_batch(conn, items)
                except _CONNECTION_ERRORS as exc:
                    await self._lost(exc)
                    raise
        raise AssertionError("unreachable: the retry loop retries forever")

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        """A connection with the schema migrated, retrying until the database answers."""
        async for attempt in self._retrying():
            with attempt:
                return await self._connect_once()
        raise AssertionError("unreachable: the retry loop retries forever")

    def _retrying(self) -> Any:
        def retry(exc: Exception) -> bool:
            if isinstance(exc, _CONNECTION_ERRORS):
                self.metrics.retries.inc()
                return True
            return False

        return stamina.retry_context(
            on=retry,
            attempts=None,
            timeout=None,
            wait_initial=self.config.retry_initial_s,
            wait_max=self.config.retry_max_s,
        )

    async def _connect_once(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            conn = await psycopg.AsyncConnection.connect(
                self.config.conninfo(),
                autocommit=True,
                connect_timeout=max(1, round(self.config.connect_timeout_s)),
                application_name="appraise-history",
            )
        except _CONNECTION_ERRORS as exc:
            if _refused_for_good(exc):
                raise ConfigError(
                    f"the history database {self.config.where()} refused the connection "
                    f"({_first_line(exc)}): check APPRAISE_HISTORY__DSN and the password "
                    "(APPRAISE_HISTORY__PASSWORD_FILE)"
                ) from None
            await self._lost(exc)
            raise
        try:
            before, applied = await migrate(conn)
        except SchemaError as exc:
            await conn.close()
            raise ConfigError(str(exc)) from None
        except BaseException:
            await conn.close()
            raise
        if applied:
            log.info("history schema migrated from version %d to %d", before, applied[-1])
        self.metrics.schema_version.set(applied[-1] if applied else before)
        self._migrated = True
        self._conn = conn
        self._database_up = True
        self.metrics.database_up.set(1)
        log.info("history database %s connected", self.config.where())
        return conn

    async def _lost(self, exc: BaseException) -> None:
        if self._database_up:  # once per outage
            log.warning("history database %s away: %s", self.config.where(), _first_line(exc))
        self._database_up = False
        self.metrics.database_up.set(0)
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                await conn.close()

    async def _retention(self) -> None:
        days = self.config.retention_days
        now = time.monotonic()
        if days <= 0 or now - self._last_retention < RETENTION_EVERY_S or self._conn is None:
            return
        self._last_retention = now
        try:
            cursor = await self._conn.execute(
                "DELETE FROM windows WHERE window_end < now() - %s * interval '1 day'", (days,)
            )
        except _CONNECTION_ERRORS as exc:
            await self._lost(exc)
            return
        if cursor.rowcount:
            log.info("deleted %d windows older than %g days", cursor.rowcount, days)

    # --- lag -----------------------------------------------------------------------------------

    async def _measure_lag(self) -> None:
        while True:
            with contextlib.suppress(KafkaError, OSError):
                await self.refresh_lag()
            await asyncio.sleep(self.config.lag_refresh_s)

    async def refresh_lag(self) -> int:
        """Measure the records not yet written and committed (high watermark minus committed
        offset, per assigned partition), set the lag gauges, and return the total.

        The high watermarks come with the sink's own fetches; while the database is away the
        sink fetches nothing, so they are asked of the broker (a fetch by a private reader)."""
        consumer = self._need_consumer()
        tps = sorted(consumer.assignment(), key=lambda tp: tp.partition)
        for tp in set(self._committed) - set(tps):
            del self._committed[tp]  # revoked: its next owner commits it
        if not tps:
            return 0
        if self._database_up:
            found = {tp: consumer.highwater(tp) for tp in tps}
            highs = {tp: high for tp, high in found.items() if high is not None}
        else:
            highs = await end_offsets_via_highwater(self.settings.kafka, tps)
        lags = []
        for tp, high in highs.items():
            if tp not in self._committed:
                self._committed[tp] = int(await consumer.committed(tp) or 0)
            lags.append((tp.partition, max(0, int(high) - self._committed[tp])))
        self.metrics.set_lag(lags)
        total = sum(n for _, n in lags)
        now = time.monotonic()
        if total == 0:
            self._caught_up_at = now
        self.metrics.behind.set(0 if total == 0 else now - self._caught_up_at)
        return total

    def _need_consumer(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("the history sink is not started")
        return self._consumer


def _refused_for_good(exc: BaseException) -> bool:
    state = getattr(exc, "sqlstate", None)
    if state in _REFUSED_FOR_GOOD:
        return True
    text = str(exc)
    if "password authentication failed" in text or "no password supplied" in text:
        return True
    return "database" in text and "does not exist" in text


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
