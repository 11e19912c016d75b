"""The stream app against time, on the embedded broker: an event from the future does not blind
it (the real scorer dead-letters the listing, the app drops the pane), and silence reaches the
gauges (the open windows close by the app's clock, then the drift gauges go away)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
from prometheus_client import CollectorRegistry

from consumers.metrics import ScorerMetrics
from consumers.panes import PaneBook
from consumers.scorer import Scorer
from producers.sources import holdout_drafts
from stream.aggregate.app import AggregateApp
from stream.aggregate.service import new_metrics
from stream.contract.features import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from stream.contract.panes import encode_pane
from stream.contract.reasons import DLQ_DETAIL, DLQ_REASON
from stream.contract.times import unix_rfc3339 as rfc3339
from stream.kafka.clients import producing
from stream.model.load import load_model
from stream.model.profile import ReferenceProfile
from stream.settings import KafkaSettings, ScorerSettings
from tests.conftest import TopicFactory
from tests.consumers.kafka_helpers import read_all
from tests.needs import until
from tests.stream.aggregate.conftest import VERSION, PaneMaker
from tests.stream.aggregate.helpers import app_settings, publish, read_records

#: Windows of seconds, so live traffic closes several while the test runs.
SMALL_WINDOWS: dict[str, Any] = {
    "tumbling_seconds": 2.0,
    "hopping_seconds": 4.0,
    "hop_seconds": 2.0,
    "allowed_lateness_seconds": 1.0,
    "min_events": 10,
}
FUTURE = "2999-01-01T00:00:00Z"


async def _live_traffic(kafka: KafkaSettings, topic: str, stop: asyncio.Event) -> None:
    """Hold-out listings stamped with the current time, 5 every 0.1 s, until ``stop``."""
    drafts = itertools.cycle([d.listing for d in holdout_drafts() if d.listing is not None])
    for n in itertools.count():
        if stop.is_set():
            return
        now = datetime.now(UTC)
        batch = []
        for i in range(5):
            listing_id = f"live-{n}-{i}"
            event = {**next(drafts), "listing_id": listing_id, "event_time": now}
            batch.append((listing_id.encode(), orjson.dumps(event, option=orjson.OPT_UTC_Z)))
        await publish(kafka, topic, batch)
        # Pacing the traffic, not waiting for a condition.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)


async def test_an_event_from_the_future_does_not_blind_the_stream_app(
    kafka_settings: KafkaSettings, new_topic: TopicFactory, model_dir: Path
) -> None:
    settings = await app_settings(kafka_settings, new_topic, model_dir=model_dir, **SMALL_WINDOWS)
    topics = settings.topics
    model = load_model(model_dir)
    scorer_settings = ScorerSettings(
        group_id=f"test-scorer-{uuid.uuid4().hex[:10]}",
        pane_seconds=1.0,
        pane_publish_interval_s=0.2,
    )
    registry, scorer_registry = CollectorRegistry(), CollectorRegistry()
    app = AggregateApp(settings, model.profile, new_metrics(settings, registry))
    scorer_metrics = ScorerMetrics(scorer_registry, scorer_settings, process_collectors=False)
    scorer = Scorer(settings, scorer_settings, model=model, metrics=scorer_metrics)
    get = registry.get_sample_value
    tumbling = {"window": "2s", "model_version": model.version}

    def closed_after(moment: float) -> bool:
        """A tumbling window with events that started after ``moment`` has closed."""
        end = get("appraise_window_end_timestamp_seconds", tumbling) or 0.0
        return end - 2.0 > moment and (get("appraise_window_events", tumbling) or 0) > 0

    stop = asyncio.Event()
    async with app, scorer:
        scoring = asyncio.create_task(scorer.run())
        traffic = asyncio.create_task(_live_traffic(kafka_settings, topics.listings, stop))
        try:
            await until(lambda: closed_after(0.0), 60, "live windows closing")
            # One valid listing from 2999, between live ones, with a header of its own.
            draft = next(d.listing for d in holdout_drafts() if d.listing is not None)
            bad = orjson.dumps({**draft, "listing_id": "from-2999", "event_time": FUTURE})
            sent = time.time()
            await _send(kafka_settings, topics.listings, b"from-2999", bad, [("trace", b"t-1")])
            reason = {"reason": "future_event_time"}
            await until(
                lambda: (
                    scorer_registry.get_sample_value("appraise_scoring_errors_total", reason) == 1
                ),
                30,
                "the listing from 2999 dead-lettered",
            )
            await until(lambda: closed_after(sent), 30, "live windows closing after it")

            # A pane partial from the future straight on the panes topic (another producer).
            book = PaneBook(1.0, model.version, model.profile.sketch_k)
            book.fold(
                np.array([datetime.fromisoformat(FUTURE).timestamp()]),
                np.array([200_000.0]),
                {name: np.array([np.nan]) for name in NUMERIC_FEATURES},
                {name: [None] for name in CATEGORICAL_FEATURES},
            )
            (pane,) = book.drain()
            sent = time.time()
            await publish(kafka_settings, topics.panes, [(pane.key, encode_pane(pane))])
            await until(lambda: get("appraise_panes_future_total") == 1, 30, "the pane dropped")
            await until(lambda: closed_after(sent), 30, "live windows closing after the pane")
            clock = orjson.loads(app.pane_windows.clocks[model.version])
            assert clock["watermark"] <= time.time() + settings.event_time_skew_s
        finally:
            stop.set()
            await traffic
            scorer.request_stop()
            await scoring

    letters = [r for r in await read_all(kafka_settings, topics.dlq) if r.key == b"from-2999"]
    (letter,) = letters
    assert letter.value == bad  # the original bytes
    headers = dict(letter.headers)
    assert headers["trace"] == b"t-1"
    assert headers[DLQ_REASON] == b"future_event_time"
    assert FUTURE in headers[DLQ_DETAIL].decode()


async def _send(
    kafka: KafkaSettings, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]
) -> None:
    async with producing(kafka, f"sending to {topic}") as producer:
        await (await producer.send(topic, value, key=key, headers=headers))


async def test_silence_closes_the_open_windows_and_takes_the_drift_gauges_away(
    kafka_settings: KafkaSettings,
    new_topic: TopicFactory,
    profile: ReferenceProfile,
    holdout: pd.DataFrame,
    make_panes: PaneMaker,
) -> None:
    settings = await app_settings(
        kafka_settings, new_topic, **{**SMALL_WINDOWS, "idle_seconds": 1.0}
    )
    registry = CollectorRegistry()
    app = AggregateApp(settings, profile, new_metrics(settings, registry))
    get = registry.get_sample_value
    # 4 s of live traffic in panes of 1 s, 50 events/s, starting at a tumbling boundary.
    start = math.floor(time.time() / 2) * 2
    values = make_panes(holdout.iloc[:200], start + np.arange(200) * 0.02, pane_seconds=1.0)
    records = [(f"{rfc3339(start + i)}/{VERSION}".encode(), v) for i, v in enumerate(values)]
    labels = {kind: {"window": kind, "model_version": VERSION} for kind in ("2s", "4s")}

    def drift(kind: str) -> float | None:
        return get("appraise_prediction_psi", labels[kind])

    async with app:
        await publish(kafka_settings, settings.topics.panes, records, partition=0)
        # With traffic: windows with drift values close, of both kinds.
        await until(lambda: drift("2s") is not None and drift("4s") is not None, 30, "drift")
        # Silence: the windows still open close by the app's clock, then each kind passes a
        # window without panes and its gauges say so.
        await until(
            lambda: all(
                drift(k) is None and get("appraise_window_events", labels[k]) == 0 for k in labels
            ),
            60,
            "the drift gauges taken away after the silence",
            lambda: (app.published, app.pane_windows.clocks.get(VERSION)),
        )
        for kind in labels:
            quantile = {**labels[kind], "quantile": "0.5"}
            assert get("appraise_prediction_quantile_dollars", quantile) is None
            assert get("appraise_window_last_closed_timestamp_seconds", {"window": kind})
        # Every window holding panes has its record, and no empty window has one: 2 tumbling
        # ([0, 2), [2, 4)) and 3 hopping ([-2, 2), [0, 4), [2, 6)).
        published = app.published
    assert published == 5
    got = await read_records(kafka_settings, settings.topics.windows, 5)
    windows = {(str(r["window"]), str(r["start"]), r["events"]) for r in got}
    assert windows == {
        ("2s", rfc3339(start), 100),
        ("2s", rfc3339(start + 2), 100),
        ("4s", rfc3339(start - 2), 100),
        ("4s", rfc3339(start), 200),
        ("4s", rfc3339(start + 2), 100),
    }
    assert get("appraise_panes_dropped_total", {"window": "2s"}) == 0
