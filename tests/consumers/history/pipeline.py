"""The real pipeline in one test process, for the history tests: listings priced by the HTTP price
service, windows closed by the stream app, written to PostgreSQL by the history sink.

:func:`run_pipeline` sends 70 s of event time of hold-out listings (100 per 10 s window), the
last 30 s with living areas 1.8 times too large (the ``scale`` scenario), one listing alone in a
later window (under ``min_events``: a record without drift values) and sales, a second later,
of every other listing; then a listing and a sale far ahead close every window. It returns once
every record on the windows topic is written and committed by the sink, with the records read
back from the topic: 18 drift and 17 realised-error records, about 12 s (4 of them the
stream app joining its group). :func:`pipeline_database` gives a module-scoped fixture a
database of its own (``postgres_db`` is per test).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TypeVar

import orjson
from aiohttp import ClientSession
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry
from psycopg import sql

from consumers.http.publisher import Publisher
from consumers.http.service import ServeService, ServeWorker
from producers.scenarios import ScenarioStream, parse_scenario
from producers.sources import Draft, holdout_drafts
from stream.aggregate.app import AggregateApp
from stream.aggregate.service import new_metrics
from stream.contract.windows import DriftRecord, ErrorRecord, read_window_record
from stream.kafka.ranges import read_range
from stream.model.load import load_model
from stream.ops.postgres import LocalPostgres
from stream.service.runtime import CLEAN_EXIT, Endpoint, Worker, run_service
from stream.settings import (
    AggregateSettings,
    KafkaSettings,
    ScorerSettings,
    ServeSettings,
    Settings,
)
from tests.consumers.history.conftest import Running, history_settings, running_sink
from tests.consumers.http.conftest import Served
from tests.needs import until
from tests.postgres import Database, connect, with_dbname
from tests.stream.aggregate.helpers import TEST_WINDOWS, publish

T = TypeVar("T")

#: Event time of the first listing: a multiple of the 20 s hopping window.
T0: Final = datetime(2009, 6, 1, 12, 0, tzinfo=UTC)
SPACING_S: Final = 0.1
STABLE_S: Final = 40
DRIFT_S: Final = 30
#: The drift of the last DRIFT_S seconds.
SCENARIO: Final = "scale:feature=living_area_sqft,factor=1.8"
#: One listing alone in its 10 s window: a drift record without drift values.
THIN_AT_S: Final = 85.0
#: Sales for every other listing of the first SOLD_S seconds, SALE_AFTER_S later (the last ones
#: in a window without listings).
SOLD_S: Final = 70
SALE_AFTER_S: Final = 1.0
#: A listing and a sale this far in: every window of the traffic above closes (end + 20 s
#: lateness <= 200 s), and their own windows stay open.
TICK_AT_S: Final = 200.0
#: Listings and sales are sent 30 s of event time at a time (from T0, a multiple of the pane),
#: each once the app has taken the one before. Within one such span they reach the app in any
#: order (4 partitions), and none is dropped: a window closes once the newest pane start seen
#: reaches its end plus the 20 s lateness, and a span's newest pane starts at most 20 s after
#: its oldest, which belongs only to windows ending 10 s or more after it starts.
SPAN_S: Final = 30


@dataclass(frozen=True)
class PipelineRun:
    """What one run left: every record on the windows topic (typed, in offset order within each
    partition; a window's records share a key, so a partition holds all of them), the history
    database's conninfo (password included), the settings and the model version."""

    records: list[DriftRecord | ErrorRecord]
    conninfo: str
    settings: Settings
    model_version: str

    def latest(self) -> dict[bytes, DriftRecord | ErrorRecord]:
        """The last record of each key: what the sink keeps of a window re-closed by late data."""
        return {record.key: record for record in self.records}

    @property
    def drift(self) -> list[DriftRecord]:
        """The latest drift record of every window."""
        return [r for r in self.latest().values() if isinstance(r, DriftRecord)]

    @property
    def errors(self) -> list[ErrorRecord]:
        """The latest realised-error record of every window."""
        return [r for r in self.latest().values() if isinstance(r, ErrorRecord)]


def _at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def _listing(draft: Draft, listing_id: str, seconds: float) -> dict[str, Any]:
    assert draft.listing is not None
    as_json = orjson.loads(orjson.dumps(draft.listing, option=orjson.OPT_UTC_Z))
    return {**as_json, "listing_id": listing_id, "event_time": _at(seconds)}


@dataclass(frozen=True)
class Traffic:
    """What :func:`run_pipeline` sends: listings and sales in spans of SPAN_S seconds of event
    time, oldest first, and the tick's listing and sale."""

    listings: list[list[dict[str, Any]]]
    sales: list[list[tuple[bytes, bytes]]]
    tick: dict[str, Any]
    tick_sale: tuple[bytes, bytes]


def traffic() -> Traffic:
    """Stable listings, drifting ones, the thin window's one; the sales of every other listing
    of the first SOLD_S seconds; the tick (module docstring)."""
    pool = holdout_drafts()
    stable_n, drift_n = round(STABLE_S / SPACING_S), round(DRIFT_S / SPACING_S)
    scale = ScenarioStream([parse_scenario(SCENARIO)], seed=0, pool=pool)
    drifting = list(scale.apply(pool[stable_n : stable_n + drift_n]))
    drafts = [*pool[:stable_n], *drifting]
    listings = [(i * SPACING_S, _listing(d, f"h-{i}", i * SPACING_S)) for i, d in enumerate(drafts)]
    listings.append((THIN_AT_S, _listing(pool[0], "thin", THIN_AT_S)))
    sales = [
        (t, _sale(f"h-{i}", t, drafts[i].sale_price))
        for i in range(0, round(SOLD_S / SPACING_S), 2)
        for t in [i * SPACING_S + SALE_AFTER_S]
    ]
    return Traffic(
        _spans(listings),
        _spans(sales),
        _listing(pool[1], "tick", TICK_AT_S),
        _sale("tick", TICK_AT_S + SALE_AFTER_S, 1e5),
    )


def _spans(timed: list[tuple[float, T]]) -> list[list[T]]:
    """Items by their span of SPAN_S seconds after T0, oldest span first."""
    spans: dict[int, list[T]] = {}
    for seconds, item in sorted(timed, key=lambda pair: pair[0]):
        spans.setdefault(int(seconds // SPAN_S), []).append(item)
    return [spans[k] for k in sorted(spans)]


def _sale(listing_id: str, seconds: float, price: float | None) -> tuple[bytes, bytes]:
    assert price is not None
    sale = {"listing_id": listing_id, "event_time": _at(seconds), "sale_price": price}
    return listing_id.encode(), orjson.dumps(sale)


def _watermark(clocks: Any, version: str) -> float:
    """The event-time watermark of a clock table (pane or error clocks), Unix seconds."""
    text = clocks.get(version)
    return -1.0 if text is None else float(orjson.loads(text)["watermark"])


def _pane_start(seconds: float) -> float:
    """Unix start of the 10 s pane ``seconds`` after T0."""
    return (T0 + timedelta(seconds=seconds)).timestamp() // 10 * 10


async def _post(served: Served, listings: Sequence[dict[str, Any]]) -> None:
    status, answers = await served.post("/predict/batch", orjson.dumps(list(listings)))
    assert status == 200, answers
    assert all("predicted_price" in a for a in answers), answers


async def run_pipeline(kafka: KafkaSettings, model_dir: Path, database: Database) -> PipelineRun:
    """Run the price service, the stream app and the history sink on fresh topics into
    ``database`` (module docstring); return once the sink has written every window record."""
    base = await history_settings(kafka, database.dsn, database.password_file)
    settings = base.model_copy(
        update={
            "model_dir": model_dir,
            "serve": ServeSettings(port=0, publish_interval_s=0.05),
            # No tree compilation (2 s): scikit-learn prices a few hundred listings at once.
            "scorer": ScorerSettings(pane_publish_interval_s=0.05, compile_trees=False),
            "aggregate": AggregateSettings.model_validate(
                {**TEST_WINDOWS, "app_id": f"test-history-app-{uuid.uuid4().hex[:10]}"}
            ),
        }
    )
    model = load_model(model_dir)
    version = model.version
    app = AggregateApp(settings, model.profile, new_metrics(settings, CollectorRegistry()))
    sent = traffic()
    listings = sum(len(span) for span in sent.listings)
    metrics = app.metrics
    async with running_sink(settings) as sink:
        async with _serving(settings) as (served, publisher), app:
            routed = app.panes_by_model.get_topic_name()

            def aggregated() -> bool:
                """Every pane partial folded so far published, and taken by the aggregator."""
                published = served.sample("appraise_http_published_total", {"kind": "pane"})
                seen = app.activity.get(routed)
                return publisher.buffered == 0 and published == (seen.records if seen else 0)

            # A span of listings at a time (SPAN_S), each once its pane partials are aggregated.
            for span in sent.listings:
                await _post(served, span)
                await until(aggregated, 30, f"panes up to {span[-1]['event_time']} aggregated")
            stored = metrics.predictions_stored._value
            await until(lambda: stored.get() == listings, 30, "every prediction stored")
            # A span of sales at a time, each once joined: the join sends them on, in that
            # order, to the one partition of the errors topic that holds the model version.
            joined, done = metrics.sales_joined._value, 0
            for sales in sent.sales:
                await publish(kafka, settings.topics.sales, sales)
                done += len(sales)
                await until(lambda: joined.get() == done, 30, f"{done} sales joined")  # noqa: B023
            # The tick: its listing closes the listings' windows, its sale the sales' windows.
            await _post(served, [sent.tick])
            await until(lambda: stored.get() == listings + 1, 30, "the tick stored")
            await publish(kafka, settings.topics.sales, [sent.tick_sale])
            closed_at = _pane_start(TICK_AT_S)
            panes, errors = app.pane_windows.clocks, app.error_windows.clocks
            await until(
                lambda: min(_watermark(panes, version), _watermark(errors, version)) >= closed_at,
                30,
                "both clocks at the tick",
            )
        # The app stopped (its producer flushed): the windows topic holds all it will hold.
        partitions = [
            TopicPartition(settings.topics.windows, p) for p in range(settings.topics.partitions)
        ]
        await _until_written(sink, len(partitions))
    records = await _read(kafka, partitions)
    assert len(records) == app.published, (len(records), app.published)
    return PipelineRun(records, settings.history.conninfo(), settings, version)


@asynccontextmanager
async def _serving(settings: Settings) -> AsyncIterator[tuple[Served, Publisher]]:
    """``appraise serve`` in this process, as ``tests.consumers.http.conftest.serving``, and
    its publisher: what it holds unsent says when every folded partial is out."""
    service = ServeService(settings)
    started: list[tuple[str, ServeWorker]] = []
    stop = asyncio.Event()

    def on_ready(server: Endpoint, worker: Worker) -> None:
        assert isinstance(worker, ServeWorker)
        started.append((server.url, worker))

    running = asyncio.ensure_future(
        run_service(service, settings, stop=stop, handle_signals=False, on_ready=on_ready)
    )
    try:
        await until(lambda: bool(started) or running.done(), 60, "the price service ready")
        assert started, f"the service ended with {running.result()}"
        url, worker = started[0]
        assert worker.publisher is not None
        async with ClientSession() as http:
            yield Served(url, http, service, settings), worker.publisher
    finally:
        stop.set()
        code = await running
    assert code == CLEAN_EXIT


async def _until_written(sink: Running, partitions: int, timeout_s: float = 30.0) -> None:
    """Wait until the sink holds every partition and has committed all of it: it commits a
    fetch only after writing it, so every record is then in the database."""
    deadline = time.monotonic() + timeout_s
    while True:
        lag = await sink.sink.refresh_lag()
        lags = [
            sink.service.registry.get_sample_value(
                "appraise_history_lag_records", {"partition": str(p)}
            )
            for p in range(partitions)
        ]
        if lag == 0 and None not in lags:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the sink not written up within {timeout_s} s: lags {lags}")
        await asyncio.sleep(0.1)


async def _read(
    kafka: KafkaSettings, partitions: list[TopicPartition]
) -> list[DriftRecord | ErrorRecord]:
    records: list[DriftRecord | ErrorRecord] = []
    async for batch in read_range(kafka, partitions):
        for message in batch:
            record = read_window_record(message.value)
            assert record is not None, message.value
            records.append(record)
    return records


@asynccontextmanager
async def pipeline_database(server: LocalPostgres) -> AsyncIterator[Database]:
    """A fresh database on the session's server for a module's fixture (``postgres_db`` is one
    test's), dropped afterwards even with connections left open."""
    name = f"test_{uuid.uuid4().hex}"
    dsn, password_file = server.dsn, server.password_file
    async with await connect(dsn, password_file, autocommit=True) as conn:
        await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield Database(with_dbname(dsn, name), password_file, name)
    finally:
        async with await connect(dsn, password_file, autocommit=True) as conn:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            await conn.execute(drop.format(sql.Identifier(name)))
