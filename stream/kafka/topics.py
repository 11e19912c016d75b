"""Topics: created explicitly with their final partition count and configs, checked when they
exist, listed and deleted."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import TopicPartition
from aiokafka.admin import NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from stream.errors import BrokerError, ConfigError, DataError
from stream.kafka.clients import make_admin
from stream.settings import KafkaSettings, Settings

log = logging.getLogger(__name__)


class TopicLike(Protocol):
    """What :func:`ensure_topics` needs of a topic; aiokafka's ``NewTopic`` fits too."""

    @property
    def name(self) -> str: ...
    @property
    def num_partitions(self) -> int: ...
    @property
    def replication_factor(self) -> int: ...


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create: its final partition count, replication factor and configs."""

    name: str
    num_partitions: int
    replication_factor: int = 1
    topic_configs: Mapping[str, str] = field(default_factory=dict, hash=False)


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """The project's topics, all with the same partition count (faust joins and tables need
    co-partitioned topics). The dead-letter topic takes records up to the scorer's
    ``max_record_bytes``: a dead letter carries the original value, which may be larger than
    Kafka's default ``max.message.bytes`` (1 MB)."""
    topics = settings.topics
    dlq_configs = {"max.message.bytes": str(settings.scorer.max_record_bytes)}
    return [
        TopicSpec(
            name,
            topics.partitions,
            topics.replication_factor,
            dlq_configs if name == topics.dlq else {},
        )
        for name in topics.all()
    ]


async def ensure_topics(kafka: KafkaSettings, topics: Sequence[TopicLike]) -> list[str]:
    """Create every topic with its final partition count; return the names that were created.

    A topic that already exists with the same partition count is fine. One with a different
    count raises :class:`ConfigError` naming it: Tansu cannot add partitions and faust needs
    co-partitioned topics, so the topic must be deleted (or the embedded broker restarted, which
    starts empty) or the setting changed.

    Topics are created before anything describes them: asking Tansu for the metadata of a topic
    that does not exist creates it with 4 partitions.
    """
    specs = list(topics)
    if not specs:
        return []
    wanted = {spec.name: spec for spec in specs}
    new = [
        NewTopic(
            spec.name,
            spec.num_partitions,
            spec.replication_factor,
            topic_configs=dict(getattr(spec, "topic_configs", None) or {}),
        )
        for spec in wanted.values()
    ]
    admin = make_admin(kafka)
    try:
        await admin.start()
        response = await admin.create_topics(new)
        created, existing = [], []
        for entry in response.to_object()["topic_errors"]:
            name, error = entry["topic"], for_code(entry["error_code"])
            if entry["error_code"] == 0:
                created.append(name)
            elif error is TopicAlreadyExistsError:
                existing.append(name)
            else:
                raise _topic_error(name, wanted[name], error, entry.get("error_message"))
        if existing:
            for described in await admin.describe_topics(existing):
                _check_existing(described, wanted[described["topic"]])
    finally:
        await admin.close()
    log.info("topics created: %s; already there: %s", created or "none", existing or "none")
    return created


async def topic_partitions(kafka: KafkaSettings, topic: str) -> list[TopicPartition]:
    """The partitions of ``topic``; DataError if it does not exist. (On Tansu, asking for a
    missing topic's metadata creates it empty, so there it shows up as a topic with no data.)"""
    admin = make_admin(kafka)
    try:
        await admin.start()
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if not described or described[0]["error_code"] != 0 or not described[0]["partitions"]:
        raise DataError(f"topic {topic!r} does not exist at {kafka.bootstrap_servers}")
    return sorted(TopicPartition(topic, p["partition"]) for p in described[0]["partitions"])


def _topic_error(
    name: str, spec: TopicLike, error: type[KafkaError], message: str | None
) -> BrokerError | ConfigError:
    text = (
        f"could not create topic {name!r} with {spec.num_partitions} partitions and "
        f"replication factor {spec.replication_factor}: {error.__name__}"
        f"{': ' + message if message else ''}"
    )
    return BrokerError(text + "; try again") if error.retriable else ConfigError(text)


def _check_existing(described: Mapping[str, Any], spec: TopicLike) -> None:
    name = described["topic"]
    if described["error_code"] != 0:
        raise BrokerError(
            f"topic {name!r} exists but cannot be described: "
            f"{for_code(described['error_code']).__name__}"
        )
    have = len(described["partitions"])
    if have != spec.num_partitions:
        raise ConfigError(
            f"topic {name!r} already exists with {have} partitions, but {spec.num_partitions} "
            "are configured (APPRAISE_TOPICS__PARTITIONS). Partitions cannot be added on the "
            "embedded broker and faust needs co-partitioned topics: delete the topic (restarting "
            f"the embedded broker empties it) or set the partition count to {have}."
        )


async def delete_topics(kafka: KafkaSettings, names: Iterable[str]) -> None:
    """Delete the topics ``names`` (on the embedded broker this frees their memory)."""
    wanted = list(names)
    if not wanted:
        return
    admin = make_admin(kafka)
    try:
        await admin.start()
        await admin.delete_topics(wanted)
    finally:
        await admin.close()
