"""Publishing through the embedded broker: the rate holds, sale labels follow, bad args fail."""

from __future__ import annotations

import subprocess
import sys

import pytest
from aiokafka import TopicPartition

from producers.run import ProduceOptions, produce
from producers.scenarios import parse_scenario
from stream.kafka.clients import make_consumer
from stream.kafka.ranges import end_offsets_via_highwater
from stream.settings import KafkaSettings, Settings, TopicSettings
from tests.conftest import TopicFactory


async def count_records(kafka: KafkaSettings, topic: str, partitions: int = 4) -> int:
    ends = await end_offsets_via_highwater(
        kafka, [TopicPartition(topic, p) for p in range(partitions)]
    )
    return sum(ends.values())


async def read_all(
    kafka: KafkaSettings, topic: str, expected: int
) -> list[tuple[bytes | None, bytes | None]]:
    consumer = make_consumer(kafka, topic, group_id=None)
    await consumer.start()
    records: list[tuple[bytes | None, bytes | None]] = []
    try:
        while len(records) < expected:
            batches = await consumer.getmany(timeout_ms=10_000)
            assert batches, f"only {len(records)} of {expected} records arrived"
            for batch in batches.values():
                records += [(r.key, r.value) for r in batch]
    finally:
        await consumer.stop()
    return records


async def test_a_rate_is_never_exceeded(
    kafka_settings: KafkaSettings, new_topic: TopicFactory
) -> None:
    settings = Settings(kafka=kafka_settings, topics=TopicSettings(listings=await new_topic()))
    stats = await produce(settings, ProduceOptions(rate=2_000, count=20_000, loop=True))
    assert stats.listings == 20_000
    # At most 2,000 a second: never faster (a slow machine may be slower; how close it keeps
    # to the rate is the pacer's, tested with a clock of its own in test_pacing.py).
    assert stats.elapsed_s >= 9.5
    assert await count_records(kafka_settings, settings.topics.listings) == 20_000


async def test_sale_labels_follow_their_listings(
    kafka_settings: KafkaSettings, new_topic: TopicFactory
) -> None:
    topics = TopicSettings(listings=await new_topic(), sales=await new_topic())
    settings = Settings(kafka=kafka_settings, topics=topics)
    options = ProduceOptions(count=300, with_sales=True, sale_delay_s=0.2)
    stats = await produce(settings, options)
    assert (stats.listings, stats.sales) == (300, 300)
    listings = await read_all(kafka_settings, topics.listings, 300)
    sales = await read_all(kafka_settings, topics.sales, 300)
    assert {key for key, _ in sales} == {key for key, _ in listings}


async def test_what_reaches_the_topic_is_what_the_scenarios_made(
    kafka_settings: KafkaSettings, new_topic: TopicFactory
) -> None:
    settings = Settings(kafka=kafka_settings, topics=TopicSettings(listings=await new_topic()))
    options = ProduceOptions(
        count=500,
        scenarios=[parse_scenario("malformed:share=0.2,kinds=nan|tombstone|not_utf8")],
        seed=3,
    )
    await produce(settings, options)
    first = sorted(await read_all(kafka_settings, settings.topics.listings, 500), key=repr)
    again = Settings(kafka=kafka_settings, topics=TopicSettings(listings=await new_topic()))
    await produce(again, options)
    second = sorted(await read_all(kafka_settings, again.topics.listings, 500), key=repr)
    assert first == second
    assert any(value is None for _, value in first)  # tombstones published as null values


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scenario", "explode"], "unknown scenario 'explode'"),
        (["--source", "/nonexistent.jsonl"], "--source /nonexistent.jsonl: no such file"),
        (["--rate", "-5"], "expected events per second above 0"),
        (["--event-time", "yesterday"], "expected 'history' or 'live'"),
    ],
)
def test_bad_arguments_get_one_clear_message(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "stream", "produce", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert message in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
