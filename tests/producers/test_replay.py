"""Replay: exactly the selected records, kept intact, paced; rescoring compares two models."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka import TopicPartition

from producers.replay import republish
from producers.run import ProduceOptions, produce
from stream.kafka.clients import make_consumer, make_producer
from stream.kafka.ranges import TopicRange
from stream.model.rescore import rescore
from stream.model.train import train
from stream.settings import KafkaSettings, Settings, TopicSettings
from tests.conftest import TopicFactory

BASE_MS = 1_700_000_000_000
Record = tuple[int, int, bytes | None, bytes | None, list[tuple[str, bytes]], int]


async def publish_timed(kafka: KafkaSettings, topic: str, count: int, step_ms: int) -> None:
    """``count`` records, record i stamped ``BASE_MS + i * step_ms``, spread over 4 partitions."""
    producer = make_producer(kafka)
    await producer.start()
    try:
        futures = [
            await producer.send(
                topic,
                value=f"value-{i}".encode(),
                key=f"key-{i}".encode(),
                partition=i % 4,
                timestamp_ms=BASE_MS + i * step_ms,
                headers=[("origin", f"test-{i}".encode())],
            )
            for i in range(count)
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_topic(kafka: KafkaSettings, topic: str, expected: int) -> list[Record]:
    consumer = make_consumer(kafka, group_id=None)
    await consumer.start()
    consumer.assign([TopicPartition(topic, p) for p in range(4)])
    got: list[Record] = []
    try:
        while len(got) < expected:
            batches = await consumer.getmany(timeout_ms=5_000)
            assert batches, f"only {len(got)} of {expected} records arrived"
            for records in batches.values():
                got += [
                    (r.partition, r.offset, r.key, r.value, list(r.headers), r.timestamp)
                    for r in records
                ]
    finally:
        await consumer.stop()
    return got


def settings_for(kafka: KafkaSettings, **topics: str) -> Settings:
    return Settings(kafka=kafka, topics=TopicSettings(**topics))


async def test_a_time_range_replays_exactly_its_records_with_key_headers_and_time(
    kafka_settings: KafkaSettings, new_topic: TopicFactory
) -> None:
    source, target = await new_topic(), await new_topic()
    await publish_timed(kafka_settings, source, 400, step_ms=1_000)
    selection = TopicRange(topic=source, start_ms=BASE_MS + 100_000, end_ms=BASE_MS + 300_000)
    done = await republish(settings_for(kafka_settings), selection, target, speed=None)
    assert done.done == 200
    copied = await read_topic(kafka_settings, target, 200)
    assert sorted(ts for *_, ts in copied) == [BASE_MS + i * 1_000 for i in range(100, 300)]
    for _, _, key, value, headers, ts in copied:
        i = (ts - BASE_MS) // 1_000
        assert (key, value) == (f"key-{i}".encode(), f"value-{i}".encode())
        assert headers == [("origin", f"test-{i}".encode())]
    assert {partition for partition, *_ in copied} == {0, 1, 2, 3}


async def test_an_offset_range_per_partition(
    kafka_settings: KafkaSettings, new_topic: TopicFactory
) -> None:
    source, target = await new_topic(), await new_topic()
    await publish_timed(kafka_settings, source, 400, step_ms=1)
    selection = TopicRange(topic=source, partitions=(1, 2), start_offset=10, end_offset=30)
    done = await republish(settings_for(kafka_settings), selection, target, speed=None)
    assert done.done == 40
    assert done.next_offsets == {1: 30, 2: 30}
    copied = await read_topic(kafka_settings, target, 40)
    # partition p holds records p, p+4, ...: offset o of partition p is record 4*o + p
    expected = {f"value-{4 * o + p}".encode() for p in (1, 2) for o in range(10, 30)}
    assert {value for _, _, _, value, _, _ in copied} == expected


async def test_speed_paces_as_it_happened(
    kafka_settings: KafkaSettings, new_topic: TopicFactory
) -> None:
    source, target = await new_topic(), await new_topic()
    await publish_timed(kafka_settings, source, 201, step_ms=500)  # 100 s of record time
    started = time.monotonic()
    done = await republish(settings_for(kafka_settings), TopicRange(topic=source), target, speed=10)
    elapsed = time.monotonic() - started
    assert done.done == 201
    # 100 s of record time at speed 10: never sooner than 10 s (how close the pacing keeps to
    # it is not asserted here: the machine may be slow).
    assert elapsed >= 9.5


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The champion (trained on 2006-2007) and a candidate trained on 2008-2010."""
    root = tmp_path_factory.mktemp("models")
    train(root / "champion")
    train(root / "candidate", years=(2008, 2010))
    return root / "champion", root / "candidate"


async def test_rescore_with_the_same_model_reports_no_difference(
    kafka_settings: KafkaSettings, new_topic: TopicFactory, models: tuple[Path, Path]
) -> None:
    champion, _ = models
    settings = Settings(
        kafka=kafka_settings,
        topics=TopicSettings(listings=await new_topic(), sales=await new_topic()),
        model_dir=champion,
    )
    await produce(settings, ProduceOptions(count=400))
    result = await rescore(settings, TopicRange(topic=settings.topics.listings), champion)
    assert (result.records, result.scored, result.invalid) == (400, 400, 0)
    assert result.mean_abs_diff == 0
    assert result.p95_abs_diff == 0
    assert result.moved_share == 0
    assert result.champion.quantiles == result.candidate.quantiles
    assert result.labelled == 0
    assert result.champion.mape is None


async def test_rescore_with_a_model_of_other_years_reports_differences_and_errors(
    kafka_settings: KafkaSettings, new_topic: TopicFactory, models: tuple[Path, Path]
) -> None:
    champion, candidate = models
    settings = Settings(
        kafka=kafka_settings,
        topics=TopicSettings(listings=await new_topic(), sales=await new_topic()),
        model_dir=champion,
    )
    options = ProduceOptions(count=400, with_sales=True, sale_delay_s=0.0)
    await produce(settings, options)
    result = await rescore(settings, TopicRange(topic=settings.topics.listings), candidate)
    assert result.scored == 400
    assert result.labelled == 400
    assert result.mean_abs_diff > 1_000
    assert 0 < result.moved_share < 1
    assert result.champion.mape is not None
    assert result.candidate.mape is not None
    # The candidate learned from these very sales: its realised error must be the smaller.
    assert result.candidate.mape < result.champion.mape


def appraise(kafka: KafkaSettings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPRAISE_")}
    env["APPRAISE_KAFKA__BOOTSTRAP_SERVERS"] = kafka.bootstrap_servers
    return subprocess.run(
        [sys.executable, "-m", "stream", "replay", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to", "x", "--rescore", "m"], "give exactly one of --to TOPIC or --rescore MODEL_DIR"),
        (["--to", "elsewhere", "--from", "-1h", "--until", "-30m"], "no records in topic"),
        (["--rescore", "/nonexistent/model"], "/nonexistent/model"),
        (["--to", "x", "--from", "last tuesday"], "'last tuesday' is not a time"),
    ],
)
async def test_bad_arguments_get_one_clear_message(
    kafka_settings: KafkaSettings, new_topic: TopicFactory, args: list[str], message: str
) -> None:
    topic = await new_topic()
    result = await asyncio.to_thread(appraise, kafka_settings, "--topic", topic, *args)
    assert result.returncode == 2, result.stdout
    assert message in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
