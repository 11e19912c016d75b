"""Unit tests of the client settings: no broker needed.

TLS and SASL cannot be tried against Tansu (its SSL and SASL do not work with these clients), so
the mapping from settings to aiokafka arguments is checked here; the end-to-end check is a run
against Apache Kafka. Certificates are made with the ``openssl`` CLI (the ``cryptography``
package is not a dependency).
"""

from __future__ import annotations

import socket
import ssl
import subprocess
from pathlib import Path

import pytest
from pydantic import SecretStr

from stream.errors import BrokerError
from stream.kafka.clients import (
    client_kwargs,
    consumer_kwargs,
    make_admin,
    make_consumer,
    make_producer,
    producer_kwargs,
    wait_until_reachable,
)
from stream.kafka.topics import ensure_topics, topic_specs
from stream.settings import KafkaSettings, ScorerSettings, Settings, TopicSettings
from tests.needs import binary

_BASE_KEYS = {"bootstrap_servers", "client_id", "request_timeout_ms", "security_protocol"}
_PASSWORD = "s3cret"  # noqa: S105 - a made-up test value
_SASL_KEYS = {"sasl_mechanism", "sasl_plain_username", "sasl_plain_password"}


def _self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    command = ["openssl", "req", "-x509", "-nodes", "-days", "1", "-subj", f"/CN={name}",
               "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
               "-keyout", str(key), "-out", str(cert)]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A throwaway CA (self-signed), a client certificate and key, and a key that does not
    match the certificate."""
    binary("openssl")  # fails under CI when missing, as every required tool does
    directory = tmp_path_factory.mktemp("tls")
    ca, _ = _self_signed(directory, "test-ca")
    cert, key = _self_signed(directory, "test-client")
    _, other_key = _self_signed(directory, "other")
    return {"ca": ca, "cert": cert, "key": key, "other_key": other_key}


def test_plaintext_passes_only_connection_arguments() -> None:
    kafka = KafkaSettings(bootstrap_servers="a.example:9092, b.example:9093", client_id="scorer-1")
    kwargs = client_kwargs(kafka)
    assert kwargs == {
        "bootstrap_servers": ["a.example:9092", "b.example:9093"],
        "client_id": "scorer-1",
        "request_timeout_ms": 30_000,
        "security_protocol": "PLAINTEXT",
    }


def test_ssl_builds_a_verifying_context_from_the_files(tls_files: dict[str, Path]) -> None:
    kafka = KafkaSettings(
        security_protocol="SSL",
        ssl_cafile=tls_files["ca"],
        ssl_certfile=tls_files["cert"],
        ssl_keyfile=tls_files["key"],
    )
    kwargs = client_kwargs(kafka)
    assert set(kwargs) == _BASE_KEYS | {"ssl_context"}
    context = kwargs["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    subjects = [ca["subject"] for ca in context.get_ca_certs()]
    assert ((("commonName", "test-ca"),),) in subjects


def test_ssl_loads_the_client_key(tls_files: dict[str, Path]) -> None:
    # The only observable sign that certfile/keyfile reach the context: a key that does not
    # belong to the certificate is refused.
    kafka = KafkaSettings(
        security_protocol="SSL",
        ssl_cafile=tls_files["ca"],
        ssl_certfile=tls_files["cert"],
        ssl_keyfile=tls_files["other_key"],
    )
    with pytest.raises(ssl.SSLError):
        client_kwargs(kafka)


def test_sasl_plaintext_plain_passes_credentials_without_tls() -> None:
    kafka = KafkaSettings(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="appraise",
        sasl_password=SecretStr(_PASSWORD),
    )
    kwargs = client_kwargs(kafka)
    assert set(kwargs) == _BASE_KEYS | _SASL_KEYS
    assert kwargs["security_protocol"] == "SASL_PLAINTEXT"
    assert kwargs["sasl_mechanism"] == "PLAIN"
    assert kwargs["sasl_plain_username"] == "appraise"
    assert kwargs["sasl_plain_password"] == _PASSWORD


def test_sasl_ssl_scram_reads_the_password_file(tls_files: dict[str, Path], tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_text(f"{_PASSWORD}-from-a-file\n")
    kafka = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="appraise",
        sasl_password_file=password_file,
        ssl_cafile=tls_files["ca"],
    )
    kwargs = client_kwargs(kafka)
    assert set(kwargs) == _BASE_KEYS | _SASL_KEYS | {"ssl_context"}
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_username"] == "appraise"
    assert kwargs["sasl_plain_password"] == f"{_PASSWORD}-from-a-file"
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)


async def test_aiokafka_accepts_the_secure_arguments(tls_files: dict[str, Path]) -> None:
    # aiokafka validates security arguments in its constructors; nothing connects here.
    kafka = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="appraise",
        sasl_password=SecretStr(_PASSWORD),
        ssl_cafile=tls_files["ca"],
    )
    producer = make_producer(kafka)
    consumer = make_consumer(kafka, "listings", group_id="g")
    admin = make_admin(kafka)
    await producer.stop()
    await consumer.stop()
    await admin.close()


def test_producer_defaults_hold_on_both_brokers() -> None:
    kwargs = producer_kwargs(KafkaSettings())
    assert kwargs["acks"] == "all"
    assert kwargs["enable_idempotence"] is False  # Tansu cannot; a setting for Apache Kafka
    assert kwargs["linger_ms"] == 5
    assert kwargs["max_batch_size"] == 1_048_576
    assert kwargs["max_request_size"] <= 1_048_588  # Kafka's default message.max.bytes
    assert kwargs["compression_type"] is None
    assert producer_kwargs(KafkaSettings(enable_idempotence=True))["enable_idempotence"] is True


def test_consumer_defaults_hold_on_both_brokers() -> None:
    kwargs = consumer_kwargs(KafkaSettings(), "scorer")
    assert kwargs["group_id"] == "scorer"
    assert kwargs["session_timeout_ms"] == 6_000
    assert kwargs["heartbeat_interval_ms"] == 1_000
    assert kwargs["enable_auto_commit"] is False
    assert kwargs["auto_offset_reset"] == "earliest"
    assert kwargs["fetch_max_wait_ms"] > 0  # Tansu answers 0 with empty responses
    assert consumer_kwargs(KafkaSettings(), None)["group_id"] is None


def test_factories_let_overrides_win(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[tuple[object, ...], dict[str, object]]] = []

    def record(*args: object, **kwargs: object) -> None:
        calls.append((args, kwargs))

    monkeypatch.setattr("stream.kafka.clients.AIOKafkaProducer", record)
    monkeypatch.setattr("stream.kafka.clients.AIOKafkaConsumer", record)
    make_producer(KafkaSettings(), linger_ms=50)
    make_consumer(KafkaSettings(), "listings", "sales", group_id="g", fetch_max_wait_ms=100)
    (_, produced), (topics, consumed) = calls
    assert produced == {**producer_kwargs(KafkaSettings()), "linger_ms": 50}
    assert topics == ("listings", "sales")
    assert consumed == {**consumer_kwargs(KafkaSettings(), "g"), "fetch_max_wait_ms": 100}


def test_topic_specs_give_every_topic_the_same_partitions() -> None:
    topics = TopicSettings(partitions=8, replication_factor=3)
    specs = topic_specs(Settings(topics=topics))
    assert [s.name for s in specs] == list(TopicSettings().all())
    assert {(s.num_partitions, s.replication_factor) for s in specs} == {(8, 3)}


def test_the_dead_letter_topic_takes_the_largest_record_the_scorer_sends() -> None:
    scorer = ScorerSettings(max_record_bytes=8_388_608)
    configs = {s.name: dict(s.topic_configs) for s in topic_specs(Settings(scorer=scorer))}
    assert configs.pop("listings.dlq") == {"max.message.bytes": "8388608"}
    assert all(not c for c in configs.values())  # the others keep the broker's defaults


async def test_ensure_no_topics_needs_no_broker() -> None:
    assert await ensure_topics(KafkaSettings(bootstrap_servers="127.0.0.1:1"), []) == []


async def test_unreachable_broker_fails_naming_the_servers() -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    servers = f"127.0.0.1:{port}"
    with pytest.raises(BrokerError, match=f"no Kafka broker answered at {servers} within 0.3 s"):
        await wait_until_reachable(KafkaSettings(bootstrap_servers=servers), 0.3)
