"""Kafka clients: the one place where client settings and broker workarounds live, and waiting
for a broker to answer.

Every setting here holds on both brokers the project runs against: Tansu, the embedded default
(docs/embedded-kafka.md), and Apache Kafka. Where Tansu differs, the workaround is written once,
with the reason beside it (here, or in ``topics.py`` and ``ranges.py`` beside this module):

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
from collections.abc import AsyncIterator
from typing import Any

import stamina
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, UnknownError
from aiokafka.helpers import create_ssl_context

from stream.errors import AppraiseError, BrokerError, ConfigError
from stream.settings import KafkaSettings

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


def client_error(exc: BaseException, kafka: KafkaSettings, doing: str) -> AppraiseError:
    """The error a user sees for a client's failure at ``doing`` (e.g. "sending to listings"):
    a ConfigError naming the setting when one is the cause, else a BrokerError."""
    if isinstance(exc, UnknownError) and kafka.enable_idempotence:
        return ConfigError(
            f"{doing}: the broker refused the idempotent producer that "
            "APPRAISE_KAFKA__ENABLE_IDEMPOTENCE=true asks for; Apache Kafka supports it, the "
            "embedded broker (Tansu) does not: set APPRAISE_KAFKA__ENABLE_IDEMPOTENCE=false there"
        )
    return BrokerError(f"{doing}: {exc!r}")


def make_producer(kafka: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    """An unstarted producer with :func:`producer_kwargs`; ``overrides`` win."""
    return AIOKafkaProducer(**{**producer_kwargs(kafka), **overrides})


@contextlib.asynccontextmanager
async def producing(
    kafka: KafkaSettings, doing: str, **overrides: Any
) -> AsyncIterator[AIOKafkaProducer]:
    """A started producer (:func:`make_producer`), stopped (and flushed) on exit; a client error
    inside becomes :func:`client_error` for ``doing`` (e.g. "sending to listings")."""
    producer = make_producer(kafka, **overrides)
    try:
        await producer.start()
        yield producer
    except KafkaError as exc:
        raise client_error(exc, kafka, doing) from None
    finally:
        with contextlib.suppress(KafkaError):
            await producer.stop()


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

    Attempts start fast (the embedded broker answers within milliseconds) and back off to 1 s,
    so a cluster that takes minutes is not hammered. Each attempt first opens a bare TCP
    connection (silent and cheap), so aiokafka logs no connection error for every poll of a port
    nobody listens on yet.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + timeout_s
    try:
        async for attempt in stamina.retry_context(
            on=(OSError, KafkaError, TimeoutError),
            attempts=None,
            timeout=timeout_s,
            wait_initial=_FIRST_RETRY_S,
            wait_max=_MAX_RETRY_S,
            wait_jitter=0.0,
        ):
            with attempt:
                async with asyncio.timeout(max(deadline - loop.time(), _FIRST_RETRY_S)):
                    await _tcp_probe(kafka.bootstrap_servers)
                    await _kafka_probe(kafka)
    except (OSError, KafkaError, TimeoutError) as exc:
        raise BrokerError(
            f"no Kafka broker answered at {kafka.bootstrap_servers} within {timeout_s:g} s "
            f"(last error: {exc!r}). Start one (`appraise broker` runs the embedded one), or point "
            "APPRAISE_KAFKA__BOOTSTRAP_SERVERS and the security settings at a running cluster."
        ) from None
    return loop.time() - started


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
