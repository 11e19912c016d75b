"""Helpers of the stream app's integration tests: settings, publishing, reading back, waiting."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from pathlib import Path

import orjson
from aiokafka import TopicPartition

from stream.kafka.clients import make_consumer, make_producer
from stream.settings import (
    AggregateSettings,
    KafkaSettings,
    MetricsSettings,
    Settings,
    TopicSettings,
)
from tests.conftest import TopicFactory

#: Small windows so a test closes several in seconds of event time: 10 s tumbling, 20 s
#: hopping every 10 s, 20 s of lateness (the panes topic has 4 partitions: reordering). Windows
#: close on panes only: an hour of silence before the idle advance (the silence tests set
#: their own).
TEST_WINDOWS = {
    "tumbling_seconds": 10.0,
    "hopping_seconds": 20.0,
    "hop_seconds": 10.0,
    "allowed_lateness_seconds": 20.0,
    "min_events": 50,
    "idle_seconds": 3600.0,
}


async def app_settings(
    kafka: KafkaSettings,
    new_topic: TopicFactory,
    *,
    model_dir: Path = Path("models/none"),
    **aggregate: float | str,
) -> Settings:
    """Settings with fresh topics, a fresh app id (group) and the metrics on a free port."""
    topics = TopicSettings(
        listings=await new_topic(),
        predictions=await new_topic(),
        dlq=await new_topic(),
        sales=await new_topic(),
        panes=await new_topic(),
        windows=await new_topic(),
    )
    app_id = f"test-aggregate-{uuid.uuid4().hex[:10]}"
    return Settings(
        kafka=kafka,
        topics=topics,
        metrics=MetricsSettings(scorer_port=0, aggregate_port=0),
        aggregate=AggregateSettings.model_validate({**TEST_WINDOWS, "app_id": app_id, **aggregate}),
        model_dir=model_dir,
    )


async def publish(
    kafka: KafkaSettings,
    topic: str,
    records: Sequence[tuple[bytes, bytes]],
    *,
    partition: int | None = None,
) -> None:
    """Send (key, value) records (to ``partition``, or by key) and wait for the acks."""
    producer = make_producer(kafka)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value, key=key, partition=partition)
            for key, value in records
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_records(
    kafka: KafkaSettings,
    topic: str,
    count: int,
    *,
    timeout_s: float = 30.0,
    partitions: int = 4,
) -> list[dict[str, object]]:
    """The first ``count`` JSON records of ``topic`` (all partitions), waiting for them."""
    consumer = make_consumer(kafka, group_id=None, fetch_max_wait_ms=100)
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    out: list[dict[str, object]] = []
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        async with asyncio.timeout(timeout_s):
            while len(out) < count:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    out += [orjson.loads(r.value) for r in records]
    except TimeoutError:
        raise AssertionError(f"{len(out)} of {count} records on {topic} in {timeout_s} s") from None
    finally:
        await consumer.stop()
    return out
