"""The scorer on the embedded broker: exact counts, dead letters with original bytes, readiness
(an idle standby's too), and two scorers sharing a group."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry

from consumers.metrics import ScorerMetrics
from consumers.scorer import Scorer
from stream.contract.events import PredictionEvent
from stream.contract.malformed import MALFORMATIONS
from stream.contract.panes import decode_pane
from stream.contract.reasons import DLQ_REASON, DLQ_SOURCE_OFFSET, DLQ_SOURCE_PARTITION
from stream.model.predict import LoadedModel
from stream.service.http import MetricsServer
from stream.settings import KafkaSettings, ScorerSettings
from tests.conftest import TopicFactory
from tests.consumers.kafka_helpers import (
    Topics,
    new_group,
    publish,
    read_all,
    total,
)
from tests.consumers.records import listing, valid_value
from tests.http import http_get
from tests.needs import until

pytestmark = pytest.mark.timeout(150)

SMALL = [m for m in MALFORMATIONS if m.reason != "too_large"]
LARGE = next(m for m in MALFORMATIONS if m.reason == "too_large")


async def _topics(new_topic: TopicFactory) -> Topics:
    return Topics(*[await new_topic() for _ in range(4)])


def _scorer(
    kafka: KafkaSettings,
    topics: Topics,
    model_dir: Path,
    model: LoadedModel,
    group: str,
    *,
    batch_size: int = 1_000,
) -> tuple[Scorer, CollectorRegistry]:
    registry = CollectorRegistry()
    config = ScorerSettings(group_id=group, batch_size=batch_size, pane_publish_interval_s=0.5)
    metrics = ScorerMetrics(registry, config, process_collectors=False)
    return Scorer(topics.settings(kafka, model_dir), config, model=model, metrics=metrics), registry


def _invalid(n: int) -> list[tuple[bytes | None, str]]:
    """``n`` invalid values: every kind of the contract's catalogue, two of them 2 MB."""
    out: list[tuple[bytes | None, str]] = [
        (LARGE.make(listing(900_000 + i)), LARGE.reason) for i in range(2)
    ]
    for i in range(n - 2):
        bad = SMALL[i % len(SMALL)]
        out.append((bad.make(listing(800_000 + i)), bad.reason))
    return out


async def test_every_record_gets_a_prediction_or_a_dead_letter(
    kafka_settings: KafkaSettings, new_topic: TopicFactory, model_dir: Path, model: LoadedModel
) -> None:
    topics = await _topics(new_topic)
    invalid = _invalid(500)
    records: list[tuple[bytes | None, bytes | None]] = []
    reasons: list[str] = []
    bad = iter(invalid)
    for i in range(10_500):
        if i % 21 == 20:  # 500 invalid ones spread among 10,000 valid ones
            value, reason = next(bad)
            records.append((f"bad-{i}".encode(), value))
            reasons.append(reason)
        else:
            records.append((f"ames-{i:06d}".encode(), valid_value(i)))
            reasons.append("")
    placed = await publish(kafka_settings, topics.listings, records)
    sent = {
        where: (record, reason)
        for where, record, reason in zip(placed, records, reasons, strict=True)
    }

    scorer, registry = _scorer(kafka_settings, topics, model_dir, model, new_group())
    async with scorer:
        stats = await scorer.run(max_events=10_500, timeout=90)
    assert (stats.events, stats.predictions, stats.dead_letters) == (10_500, 10_000, 500)

    predictions = await read_all(kafka_settings, topics.predictions)
    assert len(predictions) == 10_000
    seen: Counter[str] = Counter()
    for record in predictions:
        event = PredictionEvent.model_validate_json(record.value)
        (key, value), reason = sent[(event.source_partition, event.source_offset)]
        assert reason == ""
        assert value is not None
        assert orjson.loads(value)["listing_id"] == event.listing_id == record.key.decode()
        assert event.model_version == model.version
        seen[event.listing_id] += 1
    assert len(seen) == 10_000
    assert set(seen.values()) == {1}

    letters = await read_all(kafka_settings, topics.dlq)
    assert len(letters) == 500
    by_reason: Counter[str] = Counter()
    for letter in letters:
        headers = dict(letter.headers)
        where = (int(headers[DLQ_SOURCE_PARTITION]), int(headers[DLQ_SOURCE_OFFSET]))
        (key, value), reason = sent[where]
        assert (letter.key, letter.value) == (key, value)  # the original bytes, untouched
        assert headers[DLQ_REASON].decode() == reason
        by_reason[reason] += 1
    assert by_reason == Counter(reason for _, reason in invalid)
    assert set(by_reason) == {m.reason for m in MALFORMATIONS}

    for reason, n in by_reason.items():
        assert registry.get_sample_value("appraise_scoring_errors_total", {"reason": reason}) == n
    predicted = {"model_version": model.version}
    assert registry.get_sample_value("appraise_predictions_total", predicted) == 10_000
    assert registry.get_sample_value("appraise_events_consumed_total") == 10_500
    assert registry.get_sample_value("appraise_predicted_price_dollars_count") == 10_000

    panes = [decode_pane(r.value) for r in await read_all(kafka_settings, topics.panes)]
    assert sum(p.events for p in panes) == 10_000


async def test_readyz_turns_ready_once_partitions_are_assigned(
    kafka_settings: KafkaSettings, new_topic: TopicFactory, model_dir: Path, model: LoadedModel
) -> None:
    topics = await _topics(new_topic)
    scorer, registry = _scorer(kafka_settings, topics, model_dir, model, new_group())
    async with MetricsServer("127.0.0.1", 0, registry, lambda: scorer.ready) as sidecar:
        status, body = await http_get(f"{sidecar.url}/readyz")
        assert status == 503
        assert orjson.loads(body)["broker_reachable"] is False
        async with scorer:
            status, body = await http_get(f"{sidecar.url}/readyz")
            assert (status, orjson.loads(body)["partitions_assigned"]) == (503, False)
            runner = asyncio.create_task(scorer.run(timeout=30))
            await until(lambda: bool(scorer.assignment), 20, "partitions assigned")
            status, body = await http_get(f"{sidecar.url}/readyz")
            assert (status, orjson.loads(body)["ready"]) == (200, True)
            assert (await http_get(f"{sidecar.url}/healthz"))[0] == 200
            status, body = await http_get(f"{sidecar.url}/metrics")
            assert status == 200
            assert b"appraise_scorer_assigned_partitions 4.0" in body
            scorer.request_stop()
            await runner


async def test_two_scorers_in_one_group_score_every_listing_once(
    kafka_settings: KafkaSettings, new_topic: TopicFactory, model_dir: Path, model: LoadedModel
) -> None:
    topics = await _topics(new_topic)
    group = new_group()
    # small batches: a predict call has a fixed cost, so the first scorer is still working
    # through the backlog when the second one joins
    first, _ = _scorer(kafka_settings, topics, model_dir, model, group, batch_size=100)
    second, _ = _scorer(kafka_settings, topics, model_dir, model, group, batch_size=100)
    backlog, n = 20_000, 22_000
    await publish(kafka_settings, topics.listings, [(None, valid_value(i)) for i in range(backlog)])
    async with first:
        runs = [asyncio.create_task(first.run(timeout=90))]
        await until(lambda: first.stats.events > 0, 20, "the first scorer scoring")
        async with second:  # joining makes the first one give up partitions mid-stream
            runs.append(asyncio.create_task(second.run(timeout=90)))
            await asyncio.wait_for(second.wait_assigned(), 20)
            rest = [(None, valid_value(i)) for i in range(backlog, n)]
            await publish(kafka_settings, topics.listings, rest)
            await until(
                lambda: first.stats.events + second.stats.events >= n, 90, "every event consumed"
            )
            assert first.assignment.isdisjoint(second.assignment)
            assert len(first.assignment | second.assignment) == 4
            first.request_stop()
            second.request_stop()
            await asyncio.gather(*runs)
    # the second took over partitions with a backlog: the rebalance came mid-stream
    assert second.stats.events > n - backlog
    assert first.stats.events + second.stats.events == n
    ids = Counter(
        PredictionEvent.model_validate_json(r.value).listing_id
        for r in await read_all(kafka_settings, topics.predictions)
    )
    assert len(ids) == n
    assert set(ids.values()) == {1}
    assert await total(kafka_settings, topics.dlq) == 0


async def test_a_scorer_the_group_gives_no_partition_is_ready_and_idle(
    kafka_settings: KafkaSettings, new_topic: TopicFactory, model_dir: Path, model: LoadedModel
) -> None:
    topics = Topics(await new_topic(partitions=1), *[await new_topic() for _ in range(3)])
    group = new_group()
    first, _ = _scorer(kafka_settings, topics, model_dir, model, group)
    second, registry = _scorer(kafka_settings, topics, model_dir, model, group)
    async with first, second:
        runs = [asyncio.create_task(s.run(timeout=60)) for s in (first, second)]
        await until(
            lambda: (
                len(first.assignment | second.assignment) == 1
                and all(s.ready["group_joined"] for s in (first, second))
            ),
            30,
            "one partition held and both scorers in the group",
        )
        holder, standby = (first, second) if first.assignment else (second, first)
        assert standby.assignment == frozenset()
        async with MetricsServer("127.0.0.1", 0, registry, lambda: standby.ready) as sidecar:
            status, body = await http_get(f"{sidecar.url}/readyz")
        assert status == 200
        assert orjson.loads(body) == {
            "ready": True,
            "model_loaded": True,
            "broker_reachable": True,
            "group_joined": True,
            "idle": True,
        }
        assert holder.ready == {
            "model_loaded": True,
            "broker_reachable": True,
            "group_joined": True,
            "partitions_assigned": True,
        }
        first.request_stop()
        second.request_stop()
        await asyncio.gather(*runs)
