"""Kafka clients for appraise: the one place where client settings and broker workarounds live.

Every setting here holds on both brokers the project runs against: Tansu, the embedded default
(see EMBEDDED_KAFKA.md), and Apache Kafka. Where Tansu differs, the workaround is written here
once, with the reason beside it, so no other module repeats it:

- no idempotent producer by default (aiokafka's InitProducerId v0 fails on Tansu);
- ``fetch_max_wait_ms`` above 0 (Tansu answers 0 with empty responses);
- new groups start at ``earliest`` and end offsets come from fetch high watermarks, not from
  ListOffsets LATEST (Tansu answers the newest batch's base offset + 1);
- ``offsets_for_times`` is only a starting hint (Tansu matches on append time);
- every topic is created with its final partition count (Tansu cannot add partitions).

All factories must be called inside a running event loop (aiokafka binds to it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code
from aiokafka.helpers import create_ssl_context

from stream.errors import BrokerError, ConfigError, DataError
from stream.settings import KafkaSettings, TopicSettings

log = logging.getLogger(__name__)

# Waiting for a broker: start fast (Tansu is ready in a few ms), back off to 1 s so a cluster
# that takes minutes is not hammered.
_FIRST_RETRY_S = 0.005
_MAX_RETRY_S = 1.0
# How often to look at a consumer's fetch state while waiting for high watermarks.
_POLL_S = 0.01


def client_kwargs(kafka: KafkaSettings) -> dict[str, Any]:
    """Connection and security arguments shared by producers, consumers and admin clients.

    TLS and SASL cannot be exercised on Tansu (its SSL and SASL do not work with these clients);
    the mapping is unit-tested and the real check is a run against Apache Kafka.
    """
    kwargs: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers.split(","),
        "client_id": kafka.client_id,
        "request_timeout_ms": kafka.request_timeout_ms,
        "security_protocol": kafka.security_protocol,
    }
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        kwargs["ssl_context"] = create_ssl_context(
            cafile=kafka.ssl_cafile, certfile=kafka.ssl_certfile, keyfile=kafka.ssl_keyfile
        )
    if kafka.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        password = kafka.password()
        kwargs["sasl_mechanism"] = kafka.sasl_mechanism
        # aiokafka takes SCRAM credentials through the sasl_plain_* arguments too.
        kwargs["sasl_plain_username"] = kafka.sasl_username
        kwargs["sasl_plain_password"] = None if password is None else password.get_secret_value()
    return kwargs


def producer_kwargs(kafka: KafkaSettings) -> dict[str, Any]:
    """Producer arguments that hold on Tansu and on Apache Kafka."""
    return {
        **client_kwargs(kafka),
        # A send counts as done only once every in-sync replica has it: at-least-once needs it.
        "acks": "all",
        # Tansu fails aiokafka's InitProducerId v0 with UnknownError: off there, on for Kafka.
        "enable_idempotence": kafka.enable_idempotence,
        # 5 ms of batching took send-then-gather from ≈82,000 to ≈130,000 records/s here, and
        # adds at most 5 ms of latency to a lone record.
        "linger_ms": 5,
        # 1 MB batches (aiokafka's default is 16 KB): the measured best together with linger.
        "max_batch_size": 1_048_576,
        # Must stay at or below Kafka's message.max.bytes (1,048,588 by default).
        "max_request_size": 1_048_576,
        # Events are small JSON and the broker was never the bottleneck; CPU per event is.
        "compression_type": None,
    }


def consumer_kwargs(kafka: KafkaSettings, group_id: str | None) -> dict[str, Any]:
    """Consumer arguments that hold on Tansu and on Apache Kafka; ``group_id=None`` for readers
    that assign partitions themselves (replay, end offsets)."""
    return {
        **client_kwargs(kafka),
        "group_id": group_id,
        # The smallest session Kafka accepts by default (group.min.session.timeout.ms). Tansu holds
        # every JoinGroup for half the session, so a first member is assigned in ≈3 s.
        "session_timeout_ms": 6_000,
        # A sixth of the session: a member survives a few lost heartbeats (Kafka advises ≤ 1/3).
        "heartbeat_interval_ms": 1_000,
        # Commit only after the results of a batch are acknowledged: at-least-once.
        "enable_auto_commit": False,
        # Tansu's LATEST is the newest batch's base offset + 1, so "latest" delivers old records;
        # a new group starts at the beginning, an existing one at its committed offsets.
        "auto_offset_reset": "earliest",
        # Tansu answers a 0 ms wait with empty responses; 500 ms (Kafka's default) bounds the
        # latency of an idle partition.
        "fetch_max_wait_ms": 500,
        # No transactions anywhere: Tansu would deliver aborted records even with read_committed.
        "isolation_level": "read_uncommitted",
    }


def make_producer(kafka: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    """An unstarted producer with :func:`producer_kwargs`; ``overrides`` win."""
    return AIOKafkaProducer(**{**producer_kwargs(kafka), **overrides})


def make_consumer(
    kafka: KafkaSettings, *topics: str, group_id: str | None, **overrides: Any
) -> AIOKafkaConsumer:
    """An unstarted consumer with :func:`consumer_kwargs`, subscribed to ``topics`` if any;
    ``overrides`` win."""
    return AIOKafkaConsumer(*topics, **{**consumer_kwargs(kafka, group_id), **overrides})


def make_admin(kafka: KafkaSettings) -> AIOKafkaAdminClient:
    """An unstarted admin client."""
    return AIOKafkaAdminClient(**client_kwargs(kafka))


# ---------------------------------------------------------------------------------------------
# Reachability


async def wait_until_reachable(kafka: KafkaSettings, timeout_s: float) -> float:
    """Wait until a bootstrap server answers the Kafka protocol (a metadata request); return the
    seconds waited. Raise :class:`BrokerError` naming the servers after ``timeout_s``.

    A plain loop rather than ``stamina``: waiting for a broker that is starting is expected, not
    a failure, and stamina's default hooks log a warning per attempt and register a counter in
    the global Prometheus registry. Each attempt first opens a bare TCP connection (silent and
    cheap), so aiokafka logs no connection error for every poll of a port nobody listens on yet.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + timeout_s
    delay = _FIRST_RETRY_S
    last_error: BaseException | None = None
    while (remaining := deadline - loop.time()) > 0:
        try:
            async with asyncio.timeout(remaining):
                await _tcp_probe(kafka.bootstrap_servers)
                await _kafka_probe(kafka)
            return loop.time() - started
        except (OSError, KafkaError, TimeoutError) as exc:
            last_error = exc
        await asyncio.sleep(max(0.0, min(delay, deadline - loop.time())))
        delay = min(delay * 2, _MAX_RETRY_S)
    raise BrokerError(
        f"no Kafka broker answered at {kafka.bootstrap_servers} within {timeout_s:g} s "
        f"(last error: {last_error!r}). Start one (`appraise broker` runs the embedded one), "
        "or point APPRAISE_KAFKA__BOOTSTRAP_SERVERS and the security settings at a running cluster."
    )


async def _tcp_probe(bootstrap_servers: str) -> None:
    errors: list[OSError] = []
    for server in bootstrap_servers.split(","):
        host, _, port = server.rpartition(":")
        try:
            _, writer = await asyncio.open_connection(host.strip("[]"), int(port))
        except OSError as exc:
            errors.append(exc)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise errors[-1]


async def _kafka_probe(kafka: KafkaSettings) -> None:
    admin = make_admin(kafka)
    try:
        await admin.start()  # bootstraps: an ApiVersions and a metadata round trip
    finally:
        await admin.close()


# ---------------------------------------------------------------------------------------------
# Topics


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


def topic_specs(topics: TopicSettings) -> list[TopicSpec]:
    """The project's topics, all with the same partition count: faust joins and tables need
    co-partitioned topics."""
    return [TopicSpec(name, topics.partitions, topics.replication_factor) for name in topics.all()]


async def ensure_topics(
    kafka: KafkaSettings, topics: TopicSettings | Sequence[TopicLike]
) -> list[str]:
    """Create every topic with its final partition count; return the names that were created.

    A topic that already exists with the same partition count is fine. One with a different
    count raises :class:`ConfigError` naming it: Tansu cannot add partitions and faust needs
    co-partitioned topics, so the topic must be deleted (or the embedded broker restarted, which
    starts empty) or the setting changed.

    Topics are created before anything describes them: asking Tansu for the metadata of a topic
    that does not exist creates it with 4 partitions.
    """
    specs = topic_specs(topics) if isinstance(topics, TopicSettings) else list(topics)
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


# ---------------------------------------------------------------------------------------------
# Where a time range starts and where a partition ends


async def offsets_for_time(
    consumer: AIOKafkaConsumer,
    partitions: Iterable[TopicPartition],
    ts_ms: int,
    *,
    slack_ms: int = 0,
) -> dict[TopicPartition, int]:
    """A STARTING HINT for reading records with timestamps at or after ``ts_ms``: an offset per
    partition before which no such record is expected. The caller must still filter every record
    by its own timestamp (:func:`read_time_range` does).

    Why only a hint: Tansu matches ``offsets_for_times`` against the broker's append time, not the
    producer's CreateTime, and answers offset 0 when nothing matches (Kafka answers None). So on
    Tansu the hint is usually the start of the partition (records replayed with old event times
    were all appended "now") and reading is exact but longer. On Kafka the hint is exact for
    CreateTime topics; later records may still carry earlier timestamps (event time need not be
    monotonic), hence the filter. ``slack_ms`` asks for an earlier offset, covering producers whose
    timestamps run ahead of an append-time-matching broker's clock.

    Kafka's None ("no record that late yet") maps to the end offset from ListOffsets LATEST, which
    is right on Kafka; Tansu never answers None.
    """
    tps = list(partitions)
    query = max(0, ts_ms - slack_ms)
    found = await consumer.offsets_for_times(dict.fromkeys(tps, query))
    missing = [tp for tp in tps if found.get(tp) is None]
    ends = await consumer.end_offsets(missing) if missing else {}
    return {tp: ends[tp] if found.get(tp) is None else found[tp].offset for tp in tps}


async def end_offsets_via_highwater(
    kafka: KafkaSettings, partitions: Iterable[TopicPartition], *, timeout_s: float = 10.0
) -> dict[TopicPartition, int]:
    """The end offset (high watermark: the offset the next record will get) of each partition,
    as reported in fetch responses, which is right on both brokers.

    Do not use ``consumer.end_offsets``/``seek_to_end`` for this: Tansu's ListOffsets LATEST is
    the newest batch's base offset + 1, short by up to a batch. A private consumer (no group, so
    no one's positions move) fetches once from each partition and reads ``highwater``.
    """
    tps = list(partitions)
    async with _reader(kafka) as consumer:
        consumer.assign(tps)
        return await _fetch_highwaters(consumer, tps, timeout_s)


async def read_time_range(
    kafka: KafkaSettings,
    partitions: Iterable[TopicPartition],
    start_ms: int,
    end_ms: int,
    *,
    max_records: int = 1_000,
    stall_timeout_s: float = 30.0,
) -> AsyncGenerator[list[ConsumerRecord], None]:
    """Yield, in batches, exactly the records with ``start_ms <= timestamp < end_ms`` among those
    in ``partitions`` when the call starts (the end is fixed first, so a live topic still ends).

    ``timestamp`` is the record's own (CreateTime, or LogAppendTime on topics configured so).
    Reading starts at :func:`offsets_for_time` (a hint) and stops at the high watermarks.
    Raise :class:`BrokerError` if no partition makes progress for ``stall_timeout_s``. Close the
    iterator when stopping early (``contextlib.aclosing``) so its consumer is closed at once.
    """
    ranges = read_range(
        kafka,
        partitions,
        start_ms=start_ms,
        end_ms=end_ms,
        max_records=max_records,
        stall_timeout_s=stall_timeout_s,
    )
    async with contextlib.aclosing(ranges) as batches:
        async for batch in batches:
            yield batch


@dataclass(frozen=True, slots=True)
class RangeBounds:
    """Where a range read starts and stops in each partition (end exclusive)."""

    starts: dict[TopicPartition, int]
    ends: dict[TopicPartition, int]

    @property
    def records(self) -> int:
        """How many offsets lie between the starts and the ends (before any time filter)."""
        return sum(max(0, self.ends[tp] - self.starts[tp]) for tp in self.ends)


async def read_range(
    kafka: KafkaSettings,
    partitions: Iterable[TopicPartition],
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
    start_offsets: Mapping[TopicPartition, int] | None = None,
    end_offsets: Mapping[TopicPartition, int] | None = None,
    max_records: int = 1_000,
    stall_timeout_s: float = 30.0,
    on_bounds: Callable[[RangeBounds], None] | None = None,
) -> AsyncGenerator[list[ConsumerRecord], None]:
    """Yield, in batches, exactly the records of ``partitions`` inside the given bounds: offsets
    in ``[start_offsets, end_offsets)`` (default: the whole partition as it is when the call
    starts) and timestamps in ``[start_ms, end_ms)`` (default: any).

    The end is fixed first from the high watermarks, so a live topic still ends; a time start
    is only a hint for where to begin (:func:`offsets_for_time`), every record is filtered by its
    own timestamp. ``on_bounds`` learns the offsets before the first batch (for progress).
    """
    tps = list(partitions)
    async with _reader(kafka) as consumer:
        consumer.assign(tps)
        highwaters = await _fetch_highwaters(consumer, tps, stall_timeout_s)
        ends = {
            tp: min(highwaters[tp], (end_offsets or highwaters).get(tp, highwaters[tp]))
            for tp in tps
        }
        starts = dict.fromkeys(tps, 0)
        if start_ms is not None:
            starts = await offsets_for_time(consumer, tps, start_ms)
        if start_offsets is not None:
            starts = {tp: max(starts[tp], start_offsets.get(tp, 0)) for tp in tps}
        if on_bounds is not None:
            on_bounds(RangeBounds(starts, ends))
        todo = {tp for tp in tps if starts[tp] < ends[tp]}
        for tp in tps:
            consumer.seek(tp, min(starts[tp], ends[tp]))
        consumer.pause(*(set(tps) - todo))
        low = -1 if start_ms is None else start_ms
        high = None if end_ms is None else end_ms
        while todo:
            fetched = await consumer.getmany(
                *todo, timeout_ms=int(stall_timeout_s * 1000), max_records=max_records
            )
            if not fetched:
                raise BrokerError(
                    f"reading {sorted(todo)} made no progress for {stall_timeout_s:g} s "
                    f"(stopping at offsets {ends}); is the broker at {kafka.bootstrap_servers} up?"
                )
            batch = []
            for tp, records in fetched.items():
                batch += [
                    r
                    for r in records
                    if r.offset < ends[tp]
                    and r.timestamp >= low
                    and (high is None or r.timestamp < high)
                ]
                if await consumer.position(tp) >= ends[tp]:
                    todo.discard(tp)
                    consumer.pause(tp)
            if batch:
                yield batch


@contextlib.asynccontextmanager
async def _reader(kafka: KafkaSettings) -> AsyncIterator[AIOKafkaConsumer]:
    """A started group-less consumer for one-off reads, stopped on exit."""
    # 100 ms: an empty partition's fetch returns its high watermark after this wait on Kafka;
    # still above 0, which Tansu answers with empty responses.
    consumer = make_consumer(kafka, group_id=None, fetch_max_wait_ms=100)
    try:
        await consumer.start()
        yield consumer
    finally:
        await consumer.stop()


async def _fetch_highwaters(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], timeout_s: float
) -> dict[TopicPartition, int]:
    # Start each fetch at the broker's LATEST answer: on Kafka that is the end, so the fetch
    # returns no records; on Tansu it is at most one batch short, so it returns that batch. Both
    # responses carry the true high watermark, which the consumer keeps per partition.
    await consumer.seek_to_end(*tps)
    missing = tps
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                missing = [tp for tp in tps if consumer.highwater(tp) is None]
                if not missing:
                    break
                # aiokafka signals nothing when a fetch only updates the high watermark: poll.
                await asyncio.sleep(_POLL_S)
    except TimeoutError:
        raise BrokerError(
            f"no fetch response for {missing} within {timeout_s:g} s, so their end offsets are "
            "unknown; check that the topics exist and the broker is up"
        ) from None
    return {tp: consumer.highwater(tp) for tp in tps}
