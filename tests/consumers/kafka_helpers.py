"""Helpers of the scorer's integration tests: publish, read back, HTTP, a scorer subprocess."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aiokafka import ConsumerRecord, TopicPartition

from stream.kafka.clients import make_consumer, make_producer
from stream.kafka.ranges import end_offsets_via_highwater
from stream.settings import KafkaSettings, MetricsSettings, Settings, TopicSettings

#: Large enough for the 2 MB malformed record.
MAX_REQUEST = 4 * 1_048_576


@dataclass(frozen=True)
class Topics:
    """One fresh set of the scorer's topics."""

    listings: str
    predictions: str
    dlq: str
    panes: str

    def settings(self, kafka: KafkaSettings, model_dir: Path) -> Settings:
        return Settings(
            kafka=kafka,
            topics=TopicSettings(
                listings=self.listings, predictions=self.predictions, dlq=self.dlq, panes=self.panes
            ),
            metrics=MetricsSettings(scorer_port=0),
            model_dir=model_dir,
        )

    def env(
        self, kafka: KafkaSettings, model_dir: Path, group: str, **scorer: str
    ) -> dict[str, str]:
        """Environment for ``appraise score`` with these topics; ``scorer`` settings as text."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("APPRAISE_")}
        env.update(
            APPRAISE_KAFKA__BOOTSTRAP_SERVERS=kafka.bootstrap_servers,
            APPRAISE_TOPICS__LISTINGS=self.listings,
            APPRAISE_TOPICS__PREDICTIONS=self.predictions,
            APPRAISE_TOPICS__DLQ=self.dlq,
            APPRAISE_TOPICS__PANES=self.panes,
            APPRAISE_METRICS__SCORER_PORT="0",
            APPRAISE_MODEL_DIR=str(model_dir),
            APPRAISE_SCORER__GROUP_ID=group,
        )
        env.update({f"APPRAISE_SCORER__{k.upper()}": v for k, v in scorer.items()})
        return env


def new_group() -> str:
    return f"test-scorer-{uuid.uuid4().hex[:12]}"


async def publish(
    kafka: KafkaSettings, topic: str, records: Sequence[tuple[bytes | None, bytes | None]]
) -> list[tuple[int, int]]:
    """Send (key, value) records; return the (partition, offset) of each, in order."""
    producer = make_producer(kafka, max_request_size=MAX_REQUEST)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in records]
        metadata = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [(m.partition, m.offset) for m in metadata]


async def total(kafka: KafkaSettings, topic: str, partitions: int = 4) -> int:
    """How many records ``topic`` holds (sum of high watermarks)."""
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    return sum((await end_offsets_via_highwater(kafka, tps)).values())


async def read_all(
    kafka: KafkaSettings, topic: str, partitions: int = 4, timeout_s: float = 30.0
) -> list[ConsumerRecord]:
    """Every record ``topic`` holds now."""
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    ends = await end_offsets_via_highwater(kafka, tps)
    consumer = make_consumer(
        kafka, group_id=None, fetch_max_wait_ms=100, max_partition_fetch_bytes=MAX_REQUEST
    )
    out: list[ConsumerRecord] = []
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        todo = {tp for tp in tps if ends[tp] > 0}
        async with asyncio.timeout(timeout_s):
            while todo:
                for tp, records in (await consumer.getmany(*todo, timeout_ms=500)).items():
                    out += [r for r in records if r.offset < ends[tp]]
                    if await consumer.position(tp) >= ends[tp]:
                        todo.discard(tp)
    finally:
        await consumer.stop()
    return out


async def committed(kafka: KafkaSettings, group: str, topic: str, partitions: int = 4) -> int:
    """Sum of the group's committed offsets on ``topic``."""
    consumer = make_consumer(kafka, group_id=group)
    await consumer.start()
    try:
        offsets = [await consumer.committed(TopicPartition(topic, p)) for p in range(partitions)]
    finally:
        await consumer.stop()
    return sum(o or 0 for o in offsets)
