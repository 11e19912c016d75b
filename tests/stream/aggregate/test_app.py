"""The faust app on the embedded broker: panes in, window records and gauges out; sales joined
to predictions; a restarted worker continues its open windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pandas as pd
import pytest
from aiohttp import ClientSession
from prometheus_client import CollectorRegistry

from stream.aggregate.aggregator import PaneWindows
from stream.aggregate.app import AggregateApp
from stream.aggregate.service import new_metrics
from stream.aggregate.windows import window_specs
from stream.contract.times import unix_rfc3339 as rfc3339
from stream.model.profile import ReferenceProfile
from stream.service.http import MetricsServer
from stream.settings import KafkaSettings, Settings
from tests.conftest import TopicFactory
from tests.needs import until
from tests.stream.aggregate.conftest import VERSION, PaneMaker
from tests.stream.aggregate.helpers import app_settings, publish, read_records

T0 = 1_300_000_000.0  # a multiple of 20 s


def _pane_records(make_panes: PaneMaker, holdout: pd.DataFrame) -> list[tuple[bytes, bytes]]:
    """60 s of event time, 10 events/s, panes of 5 s, as (key, value) records."""
    rows = holdout.iloc[:600]
    values = make_panes(rows, T0 + np.arange(600) * 0.1, pane_seconds=5.0)
    keys = [f"{rfc3339(T0 + 5 * i)}/{VERSION}".encode() for i in range(len(values))]
    return list(zip(keys, values, strict=True))


def _tick(make_panes: PaneMaker, holdout: pd.DataFrame) -> tuple[bytes, bytes]:
    """A pane far ahead in event time: moves the watermark so every earlier window closes."""
    (value,) = make_panes(holdout.iloc[:1], np.array([T0 + 200]), pane_seconds=5.0)
    return f"{rfc3339(T0 + 200)}/{VERSION}".encode(), value


def _expected(
    settings: Settings, profile: ReferenceProfile, records: list[tuple[bytes, bytes]]
) -> set[tuple[str, str, int]]:
    """(window, start, events) of every window the records close, computed without faust."""
    windows = PaneWindows(window_specs(settings.aggregate), settings.aggregate, profile, {}, {})
    return {
        (s.window.name, rfc3339(s.window.start), s.events)
        for _, raw in records
        for s in windows.process(raw).closed
    }


def _watermark(app: AggregateApp) -> float | None:
    text = app.pane_windows.clocks.get(VERSION)
    return None if text is None else orjson.loads(text)["watermark"]


async def test_panes_become_window_records_gauges_and_realised_error(
    kafka_settings: KafkaSettings,
    new_topic: TopicFactory,
    profile: ReferenceProfile,
    holdout: pd.DataFrame,
    make_panes: PaneMaker,
) -> None:
    settings = await app_settings(kafka_settings, new_topic)
    topics = settings.topics
    registry = CollectorRegistry()
    app = AggregateApp(settings, profile, new_metrics(settings, registry))
    panes = _pane_records(make_panes, holdout)
    tick = _tick(make_panes, holdout)
    expected = _expected(settings, profile, [*panes, tick])
    assert len(expected) == 6 + 7  # 6 tumbling, 7 hopping windows; the tick's stay open
    async with (
        MetricsServer("127.0.0.1", 0, registry, lambda: app.ready) as server,
        app,
    ):
        assert app.ready == {"worker_ready": True}
        # One partition: the app sees the panes in event-time order, as from one scorer, so
        # the windows do not depend on how four partitions interleave (the other tests and
        # the scorer's own panes cover that).
        await publish(kafka_settings, topics.panes, panes, partition=0)
        await until(lambda: _watermark(app) == T0 + 55, 30, "all panes aggregated")
        get = registry.get_sample_value
        labels = {"window": "10s", "model_version": VERSION}
        # The windows closed so far had panes: their gauges hold their values.
        await until(lambda: get("appraise_window_events", labels) == 100, 10, "window gauges")
        assert get("appraise_prediction_psi", labels) is not None
        async with ClientSession() as http, http.get(f"{server.url}/metrics") as response:
            assert response.status == 200
            text = await response.text()
        assert 'appraise_prediction_quantile_dollars{model_version="' in text
        assert "appraise_feature_psi{" in text
        await publish(kafka_settings, topics.panes, [tick], partition=0)

        # The label join: 100 predictions, sales for 80 of them and 10 unknown listings.
        start = datetime.fromtimestamp(T0, UTC)
        predictions = [
            (
                f"ames-{i}".encode(),
                orjson.dumps(
                    {
                        "listing_id": f"ames-{i}",
                        "event_time": start + timedelta(seconds=i * 0.5),
                        "predicted_price": 110_000.0,
                        "model_version": VERSION,
                        "scored_at": start,
                        "source_topic": topics.listings,
                        "source_partition": 0,
                        "source_offset": i,
                    },
                    option=orjson.OPT_UTC_Z,
                ),
            )
            for i in range(100)
        ]
        # Predictions and sales on partition 0 of both topics: co-partitioned, and in order.
        await publish(kafka_settings, topics.predictions, predictions, partition=0)
        stored = app.metrics.predictions_stored
        await until(lambda: stored._value.get() == 100, 30, "predictions stored")

        def sale(i: int, seconds: float) -> tuple[bytes, bytes]:
            event = {
                "listing_id": f"ames-{i}",
                "event_time": start + timedelta(seconds=seconds),
                "sale_price": 100_000.0,
            }
            return f"ames-{i}".encode(), orjson.dumps(event, option=orjson.OPT_UTC_Z)

        await publish(
            kafka_settings,
            topics.sales,
            [sale(i, i * 0.5) for i in range(80)] + [sale(1000 + i, 1.0) for i in range(10)],
            partition=0,
        )
        joined, unmatched = app.metrics.sales_joined, app.metrics.sales_unmatched
        await until(
            lambda: joined._value.get() == 80 and unmatched._value.get() == 10, 30, "sales joined"
        )
        # Closes the sale windows.
        await publish(kafka_settings, topics.sales, [sale(99, 200.0)], partition=0)

        records = await read_records(kafka_settings, topics.windows, len(expected) + 9)
        drift = {
            (str(r["window"]), str(r["start"]), int(str(r["events"])))
            for r in records
            if r["kind"] == "drift"
        }
        assert drift == expected
        errors = [r for r in records if r["kind"] == "realised_error"]
        # Sales at 0..39.5 s: 4 tumbling windows of 10 s and 5 hopping ones.
        assert len(errors) == 9
        assert sum(int(str(r["sales"])) for r in errors if r["window"] == "10s") == 80
        for record in errors:
            assert record["mae_dollars"] == pytest.approx(10_000.0)
            assert record["mape"] == pytest.approx(0.1)
        full = next(r for r in records if r["kind"] == "drift" and r["events"] == 100)
        assert full["prediction"] is not None
        assert full["features"] is not None

        assert get("appraise_windows_closed_total", {"window": "20s"}) == 7
        # The tick (and the sale at 200 s) jumped over windows holding nothing: the gauges
        # say there is no data rather than show the last window with data.
        assert get("appraise_window_events", labels) == 0
        assert get("appraise_prediction_psi", labels) is None
        assert get("appraise_realised_error_sales", labels) == 0
        assert get("appraise_realised_error_mape_ratio", labels) is None
        assert get("appraise_sales_unmatched_total") == 10
        assert get("appraise_panes_total") == len(panes) + 1
        assert get("appraise_panes_dropped_total", {"window": "10s"}) == 0
        await until(
            lambda: (
                get("appraise_consumer_lag_records", {"topic": topics.panes, "partition": "0"})
                is not None
            ),
            10,
            "lag gauges",
        )


async def _one_by_one(
    kafka: KafkaSettings, app: AggregateApp, topic: str, records: list[tuple[bytes, bytes]]
) -> None:
    """Publish pane records in event-time order, each once the previous one is aggregated."""
    for key, value in records:
        start = datetime.fromisoformat(key.decode().split("/")[0]).timestamp()
        await publish(kafka, topic, [(key, value)])
        await until(lambda: _watermark(app) == start, 30, f"pane {key!r} aggregated")  # noqa: B023


async def test_a_restarted_worker_continues_its_open_windows(
    kafka_settings: KafkaSettings,
    new_topic: TopicFactory,
    profile: ReferenceProfile,
    holdout: pd.DataFrame,
    make_panes: PaneMaker,
) -> None:
    # 5 s of lateness: windows ending by 20 s close before the restart at 25 s; the panes go
    # in one at a time, so none is late and the result does not depend on partition order.
    settings = await app_settings(kafka_settings, new_topic, allowed_lateness_seconds=5.0)
    topic = settings.topics.panes
    panes = _pane_records(make_panes, holdout)
    tick = _tick(make_panes, holdout)
    expected = _expected(settings, profile, [*panes, tick])
    first = AggregateApp(settings, profile, new_metrics(settings, CollectorRegistry()))
    async with first:
        await _one_by_one(kafka_settings, first, topic, panes[:6])  # 0..25 s
        # [0,10) and [10,20) of 10s, [-10,10) and [0,20) of 20s
        await until(lambda: first.published == 4, 10, "four windows closed before the restart")
    # A new worker in the same group recovers the tables from their changelogs and continues
    # the windows that were open: [20,30) of 10s, [10,30) and [20,40) of 20s.
    second = AggregateApp(settings, profile, new_metrics(settings, CollectorRegistry()))
    async with second:
        assert second.ready_after_s is not None
        assert _watermark(second) == T0 + 25
        await _one_by_one(kafka_settings, second, topic, [*panes[6:], tick])
        records = await read_records(kafka_settings, settings.topics.windows, len(expected))
    got = {(str(r["window"]), str(r["start"]), int(str(r["events"]))) for r in records}
    assert got == expected
