"""The label join's on-disk table on the embedded broker: a sale 45 days (event time) after its
listing still joins, one past the 60-day retention is unmatched and swept out (a tombstone on
the changelog, so a restarted worker forgets it too), and a million stored predictions keep the
stream app's memory within its budget."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from stream.aggregate.app import AggregateApp
from stream.aggregate.service import new_metrics
from stream.kafka.clients import make_consumer, make_producer
from stream.kafka.topics import TopicSpec, delete_topics, ensure_topics
from stream.model.profile import ReferenceProfile
from stream.service.process import die_with_parent_fn
from stream.settings import KafkaSettings, Settings, settings_env
from tests.conftest import TopicFactory
from tests.needs import until
from tests.stream.aggregate.conftest import VERSION
from tests.stream.aggregate.helpers import app_settings, publish, read_records
from tests.stream.aggregate.join_rss import prediction, stored_keys

DAY = 86_400.0
#: The stream app's memory budget with a million stored predictions, in bytes.
RSS_BUDGET = 500 * 2**20
STORED = int(os.environ.get("APPRAISE_TEST_JOIN_STORED", "1000000"))
REPO = Path(__file__).resolve().parents[3]


def _sale(listing: str, event_time: float, price: float) -> tuple[bytes, bytes]:
    event = {
        "listing_id": listing,
        "event_time": datetime.fromtimestamp(event_time, UTC),
        "sale_price": price,
    }
    return listing.encode(), orjson.dumps(event, option=orjson.OPT_UTC_Z)


async def _changelog(kafka: KafkaSettings, topic: str) -> list[tuple[bytes, bytes | None]]:
    """(key, value) of partition 0 of a changelog, up to its end."""
    consumer = make_consumer(kafka, group_id=None, fetch_max_wait_ms=100)
    tp = TopicPartition(topic, 0)
    out: list[tuple[bytes, bytes | None]] = []
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        while await consumer.position(tp) < end:
            for records in (await consumer.getmany(tp, timeout_ms=200)).values():
                out += [(r.key or b"", r.value) for r in records]
    finally:
        await consumer.stop()
    return out


async def test_a_sale_45_days_late_joins_and_one_past_the_retention_does_not(
    kafka_settings: KafkaSettings, new_topic: TopicFactory, profile: ReferenceProfile
) -> None:
    settings = await app_settings(kafka_settings, new_topic)
    assert settings.aggregate.prediction_retention_days == 60
    topics = settings.topics
    # Event time 70 days ago, on a 20 s boundary; everything stays in the past (no clock cap).
    t0 = (time.time() - 70 * DAY) // 20 * 20
    kept_at, last = t0 + 16 * DAY, t0 + 61 * DAY
    predictions = [
        (b"old", prediction("old", t0, 200_000.0, topics.listings)),
        (b"kept", prediction("kept", kept_at, 210_000.0, topics.listings)),
        # The newest prediction of the partition: "old" is now 61 days old, "kept" 45.
        (b"newest", prediction("newest", last, 300_000.0, topics.listings)),
    ]
    app = AggregateApp(settings, profile, new_metrics(settings, CollectorRegistry()))
    async with app:
        # Predictions and sales on partition 0 of both topics: co-partitioned, and in order.
        await publish(kafka_settings, topics.predictions, predictions, partition=0)
        stored = app.metrics.predictions_stored
        await until(lambda: stored._value.get() == 3, 30, "predictions stored")
        assert stored_keys(app) == {"old", "kept", "newest"}
        sales = [
            _sale("kept", last, 200_000.0),  # 45 days after its listing
            _sale("old", last, 200_000.0),  # 61 days after its listing: past the retention
            _sale("newest", last + 100, 300_000.0),  # closes the windows of the first
        ]
        await publish(kafka_settings, topics.sales, sales, partition=0)
        joined, unmatched = app.metrics.sales_joined, app.metrics.sales_unmatched
        await until(
            lambda: joined._value.get() == 2 and unmatched._value.get() == 1, 30, "sales joined"
        )
        # The 10 s window of the 45-day sale and the two 20 s windows that hold it.
        records = await read_records(kafka_settings, topics.windows, 3)
        assert {(r["window"], r["sales"]) for r in records} == {("10s", 1), ("20s", 1)}
        for record in records:
            assert record["kind"] == "realised_error"
            assert record["mae_dollars"] == pytest.approx(10_000.0)

        # The sweep deletes the expired prediction from the store and the changelog.
        assert await app.expire_predictions() == 1
        assert await app.expire_predictions() == 0
        assert stored_keys(app) == {"kept", "newest"}
        changelog = app.recent.changelog_topic.get_topic_name()
    assert (b'"old"', None) in await _changelog(kafka_settings, changelog)

    # A restarted worker recovers the table from its changelog: without the expired entry.
    second = AggregateApp(settings, profile, new_metrics(settings, CollectorRegistry()))
    async with second:
        assert stored_keys(second) == {"kept", "newest"}
        # Its clock comes back with the first sweep (which reads every entry).
        assert await second.expire_predictions() == 0
        assert second.join_clock.horizon(0) == pytest.approx(last - 60 * DAY)


async def _publish_changelog(settings: Settings, count: int, event_time: float) -> str:
    """``count`` stored predictions of distinct listings written to the join table's changelog
    (pre-encoded, in big batches), as a worker that stored them would have; its name."""
    topic = f"{settings.aggregate.app_id}-recent-predictions-changelog"
    partitions = settings.topics.partitions
    await ensure_topics(settings.kafka, [TopicSpec(topic, partitions)])
    stored = [
        orjson.dumps(orjson.dumps([180_000.0, VERSION, event_time, p]).decode())
        for p in range(partitions)
    ]
    producer = make_producer(settings.kafka, linger_ms=20, max_batch_size=1_000_000)
    await producer.start()
    try:
        pending = []
        for i in range(count):
            p = i % partitions
            key = b'"ames-%d"' % i
            pending.append(await producer.send(topic, stored[p], key=key, partition=p))
            if len(pending) == 50_000:
                await pending[-1]
                pending.clear()
        await producer.flush()
        # One record in a batch of its own ends each partition: Tansu's end offset is the last
        # batch's first + 1, and recovery stops there (stream.aggregate.app._seal_changelogs).
        for p in range(partitions):
            await (await producer.send(topic, None, key=b'"__seal__"', partition=p))
    finally:
        await producer.stop()
    return topic


# About 2 minutes on 2 cores (publishing 10 s, recovery 110 s); more beside other tests.
@pytest.mark.timeout(600)
async def test_a_million_stored_predictions_keep_the_memory_within_its_budget(
    kafka_settings: KafkaSettings, new_topic: TopicFactory, model_dir: Path
) -> None:
    # The join only: the panes play no part here.
    settings = await app_settings(
        kafka_settings, new_topic, model_dir=model_dir, windows_enabled="false"
    )
    event_time = time.time() - 30 * DAY
    started = time.perf_counter()
    changelog = await _publish_changelog(settings, STORED, event_time)
    published = time.perf_counter()
    # The budget is a process's: the stream app runs alone in one, as `appraise aggregate` does.
    env = {**settings_env(settings), "JOIN_RSS_NEW": "1000", "JOIN_RSS_EVENT_TIME": str(event_time)}
    try:
        child = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "tests.stream.aggregate.join_rss"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=540,
            check=False,
            preexec_fn=die_with_parent_fn(),  # a killed test run takes the stream app with it
        )
    finally:
        await delete_topics(kafka_settings, [changelog])
    assert child.returncode == 0, child.stderr[-3000:]
    figures = orjson.loads(child.stdout.splitlines()[-1])
    print(  # noqa: T201 (the figures, for -s)
        f"\n{STORED} predictions published in {published - started:.0f} s, recovered in "
        f"{figures['recovered_s']:.0f} s; RSS {figures['before'] / 2**20:.0f} MB before, "
        f"{figures['after'] / 2**20:.0f} MB after, {figures['peak'] / 2**20:.0f} MB after a "
        f"sweep of {figures['sweep_s']:.1f} s"
    )
    assert figures["stored"] == STORED
    assert figures["stored_after"] == STORED + 1_000
    assert figures["expired"] == 0  # all within the retention
    assert figures["after"] <= RSS_BUDGET
    assert figures["peak"] <= RSS_BUDGET
