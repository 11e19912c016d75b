"""Listings through the real scorer and the stream app in two phases: the hold-out stream as it
is, then only the three most expensive neighbourhoods. The first phase's windows must look like
the reference, the second's must show prediction and feature drift."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from consumers.metrics import ScorerMetrics
from consumers.scorer import Scorer
from producers.scenarios import ScenarioStream, parse_scenario
from producers.sources import Draft, holdout_drafts
from stream.aggregate.app import AggregateApp
from stream.aggregate.service import new_metrics
from stream.contract.times import unix_rfc3339 as rfc3339
from stream.model.load import load_model
from stream.settings import KafkaSettings, ScorerSettings
from tests.conftest import TopicFactory
from tests.needs import until
from tests.stream.aggregate.helpers import app_settings, publish, read_records

T0 = 1_300_000_000.0  # a multiple of 80 s
RATE = 40.0  # events per second of event time: 1,600 events per 40 s window
PHASE_EVENTS = 1_600
PHASE_2_START = 80.0  # seconds after T0: no window mixes the phases
CHUNK = 400  # listings published at a time: 10 s of event time, half the allowed lateness


def _listings(drafts: list[Draft], start: float, prefix: str) -> list[tuple[bytes, bytes]]:
    base = datetime.fromtimestamp(T0 + start, UTC)
    out = []
    for i, draft in enumerate(drafts):
        assert draft.listing is not None
        listing_id = f"{prefix}-{i}"
        listing = {
            **draft.listing,
            "listing_id": listing_id,
            "event_time": base + timedelta(seconds=i / RATE),
        }
        out.append((listing_id.encode(), orjson.dumps(listing, option=orjson.OPT_UTC_Z)))
    return out


def _watermark(app: AggregateApp, version: str) -> float:
    text = app.pane_windows.clocks.get(version)
    return -1.0 if text is None else float(orjson.loads(text)["watermark"])


async def test_drift_shows_in_the_second_phase_only(
    kafka_settings: KafkaSettings, new_topic: TopicFactory, model_dir: Path
) -> None:
    settings = await app_settings(
        kafka_settings,
        new_topic,
        model_dir=model_dir,
        tumbling_seconds=40.0,
        hopping_seconds=80.0,
        hop_seconds=40.0,
        allowed_lateness_seconds=20.0,
        min_events=200,
    )
    model = load_model(model_dir)
    pool = holdout_drafts()
    expensive = list(
        ScenarioStream(
            [parse_scenario("segment:feature=neighbourhood,top=3")], seed=0, pool=pool
        ).apply(pool)
    )
    phase_1 = _listings(pool[:PHASE_EVENTS], 0.0, "p1")
    phase_2 = _listings(
        list(itertools.islice(itertools.cycle(expensive), PHASE_EVENTS)), PHASE_2_START, "p2"
    )
    # Closes every window of both phases: the last, [80, 160) of 80s, is due at 160 + 20 s.
    # On the way it passes [120, 160) of 40s, which holds no pane: the 40s gauges say so.
    tick = _listings(pool[:1], 180.0, "tick")
    scorer_settings = ScorerSettings(
        group_id=f"test-scorer-{uuid.uuid4().hex[:10]}",
        pane_seconds=5.0,
        pane_publish_interval_s=0.2,
    )
    registry = CollectorRegistry()
    app = AggregateApp(settings, model.profile, new_metrics(settings, registry))
    scorer = Scorer(
        settings,
        scorer_settings,
        model=model,
        metrics=ScorerMetrics(CollectorRegistry(), scorer_settings, process_collectors=False),
    )
    version = model.version
    async with app, scorer:
        scoring = asyncio.create_task(scorer.run())
        try:
            # Chunks of 10 s of event time, each once the app has seen the previous one: the
            # four partitions are scored in any order, and this bounds how far apart in event
            # time the pane partials arrive (the allowed lateness covers 20 s).
            listings = [*phase_1, *phase_2]
            for at in range(0, len(listings), CHUNK):
                chunk = listings[at : at + CHUNK]
                await publish(kafka_settings, settings.topics.listings, chunk)
                last = orjson.loads(chunk[-1][1])["event_time"]
                last_pane = datetime.fromisoformat(last).timestamp() // 5 * 5
                await until(
                    lambda: _watermark(app, version) >= last_pane,  # noqa: B023
                    60,
                    f"panes up to {rfc3339(last_pane)} aggregated",
                    lambda: (_watermark(app, version) - T0, scorer.stats, len(scorer.panes)),
                )
            await publish(kafka_settings, settings.topics.listings, tick)
            records = await read_records(kafka_settings, settings.topics.windows, 6, timeout_s=60)
            empty = {"window": "40s", "model_version": version}
            await until(
                lambda: registry.get_sample_value("appraise_window_events", empty) == 0,
                10,
                "the 40s gauges saying the window after the last one holds no data",
            )
        finally:
            scorer.request_stop()
            await scoring

    windows: dict[tuple[str, float], dict[str, Any]] = {
        (str(r["window"]), datetime.fromisoformat(str(r["start"])).timestamp() - T0): r
        for r in records
    }
    first = [windows[("40s", 0.0)], windows[("80s", -40.0)], windows[("80s", 0.0)]]
    second = [windows[("40s", 80.0)], windows[("80s", 40.0)], windows[("80s", 80.0)]]
    for record in [*first, *second]:
        assert record["events"] == PHASE_EVENTS
        assert record["model_version"] == version
    for record in first:
        prediction = record["prediction"]
        assert isinstance(prediction, dict)
        median = record["quantiles"]["0.5"]
        reference = record["reference_quantiles"]["0.5"]
        assert prediction["psi"] < 0.1
        assert abs(median / reference - 1) < 0.1
    for record in second:
        prediction = record["prediction"]
        assert isinstance(prediction, dict)
        drifting = record["drifting_features"]
        assert prediction["psi"] > 0.25
        assert isinstance(drifting, list)
        assert "living_area_sqft" in drifting
        assert "neighbourhood" in drifting
    get = registry.get_sample_value
    labels = {"window": "80s", "model_version": version}
    assert (get("appraise_prediction_psi", labels) or 0.0) > 0.25
    assert get("appraise_prediction_psi", empty) is None
