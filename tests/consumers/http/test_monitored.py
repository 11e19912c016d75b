"""HTTP traffic is monitored like the stream: served predictions reach the predictions topic and
the stream app's windows and label join; with the broker gone, answers go on and every
prediction is accounted for, published or counted as not."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from stream.aggregate.app import AggregateApp
from stream.aggregate.service import new_metrics
from stream.kafka.broker import EmbeddedBroker
from stream.kafka.topics import topic_specs
from stream.model.load import load_model
from stream.settings import AggregateSettings, KafkaSettings, ScorerSettings, Settings
from tests.consumers.http.conftest import serve_settings, serving
from tests.needs import until
from tests.stream.aggregate.helpers import TEST_WINDOWS, publish, read_records

pytestmark = pytest.mark.integration

T0 = datetime(2009, 6, 1, 12, 0, tzinfo=UTC)  # a multiple of 20 s


def _stamped(listings: list[dict[str, Any]], n: int, spacing_s: float) -> list[dict[str, Any]]:
    return [
        {
            **listings[i % len(listings)],
            "listing_id": f"http-{i}",
            "event_time": (T0 + timedelta(seconds=i * spacing_s)).isoformat(),
        }
        for i in range(n)
    ]


async def test_served_predictions_reach_the_windows_and_the_label_join(
    kafka_settings: KafkaSettings, model_dir: Path, listings: list[dict[str, Any]]
) -> None:
    base = await serve_settings(kafka_settings, model_dir)
    aggregate = AggregateSettings.model_validate(
        {**TEST_WINDOWS, "app_id": f"test-{base.topics.panes}"}
    )
    settings = base.model_copy(update={"aggregate": aggregate})
    registry = CollectorRegistry()
    app = AggregateApp(settings, load_model(model_dir).profile, new_metrics(settings, registry))
    sent = _stamped(listings, 400, 0.1)  # 40 s of event time: 4 tumbling windows of 10 s
    async with serving(settings) as served, app:
        for start in range(0, len(sent), 100):
            status, answers = await served.post(
                "/predict/batch", orjson.dumps(sent[start : start + 100])
            )
            assert status == 200
            assert all("predicted_price" in a for a in answers)
        # The predictions topic carries them, marked as HTTP traffic.
        predictions = await read_records(kafka_settings, settings.topics.predictions, len(sent))
        assert sorted(str(p["listing_id"]) for p in predictions) == sorted(
            x["listing_id"] for x in sent
        )
        assert {p["source_topic"] for p in predictions} == {"/predict/batch"}
        stored = app.metrics.predictions_stored
        await until(lambda: stored._value.get() == len(sent), 30, "predictions stored by the join")
        # Sales for the first 100 listings, a second after each was listed.
        sales = [
            (
                str(s["listing_id"]).encode(),
                orjson.dumps(
                    {
                        "listing_id": s["listing_id"],
                        "event_time": (T0 + timedelta(seconds=i * 0.1 + 1)).isoformat(),
                        "sale_price": 200_000.0,
                    }
                ),
            )
            for i, s in enumerate(sent[:100])
        ]
        await publish(kafka_settings, settings.topics.sales, sales)
        joined = app.metrics.sales_joined
        await until(lambda: joined._value.get() == 100, 30, "sales joined")
        # A listing far ahead in event time, and a sale: every earlier window closes.
        tick = {
            **listings[0],
            "listing_id": "tick",
            "event_time": (T0 + timedelta(seconds=200)).isoformat(),
        }
        assert (await served.post("/predict", orjson.dumps(tick)))[0] == 200
        await until(lambda: stored._value.get() == len(sent) + 1, 30, "the tick stored")
        late_sale = {
            "listing_id": "tick",
            "event_time": (T0 + timedelta(seconds=201)).isoformat(),
            "sale_price": 1e5,
        }
        await publish(kafka_settings, settings.topics.sales, [(b"tick", orjson.dumps(late_sale))])
        # 4 tumbling and 5 hopping windows of listings, and the sales' windows (11 s of them).
        records = await read_records(kafka_settings, settings.topics.windows, 4 + 5 + 2 + 3)
    drift = [r for r in records if r["kind"] == "drift" and r["window"] == "10s"]
    assert Counter(str(r["start"]) for r in drift).most_common(1)[0][1] == 1
    assert sorted(int(str(r["events"])) for r in drift) == [100, 100, 100, 100]
    errors = [r for r in records if r["kind"] == "realised_error" and r["window"] == "10s"]
    assert sum(int(str(r["sales"])) for r in errors) == 100


async def test_with_the_broker_gone_answers_go_on_and_every_prediction_is_accounted_for(
    model_dir: Path, listings: list[dict[str, Any]]
) -> None:
    async with EmbeddedBroker(port=0, topics=topic_specs(Settings())) as broker:
        kafka = broker.kafka.model_copy(update={"request_timeout_ms": 1_000})
        settings = (await serve_settings(kafka, model_dir)).model_copy(
            update={"scorer": ScorerSettings(produce_retries=0, retry_backoff_s=0.05)}
        )
        async with serving(settings) as served:
            bodies = [orjson.dumps(x) for x in _stamped(listings, 150, 1.0)]
            for body in bodies[:50]:
                assert (await served.post("/predict", body))[0] == 200
            published = {"kind": "prediction"}
            await until(
                lambda: served.sample("appraise_http_published_total", published) == 50,
                30,
                "the first 50 published",
            )
            await broker.stop()
            for body in bodies[50:]:
                status, answer = await served.post("/predict", body)
                assert status == 200, answer
            metrics = served.service.registry
        sample = metrics.get_sample_value
        sent = sample("appraise_http_published_total", published) or 0
        lost = sample("appraise_http_unpublished_total", published) or 0
        assert (
            sample(
                "appraise_http_predictions_total", {"model_version": load_model(model_dir).version}
            )
            == 150
        )
        assert lost > 0
        assert sent + lost == 150
