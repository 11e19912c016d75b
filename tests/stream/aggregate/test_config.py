"""The faust configuration mirrors the project's client settings (no broker needed)."""

from __future__ import annotations

from pathlib import Path

import faust
import pytest

from stream.aggregate.config import faust_credentials, faust_settings
from stream.kafka.clients import consumer_kwargs
from stream.settings import AggregateSettings, KafkaSettings, Settings, TopicSettings


def test_broker_timings_mirror_the_client_settings() -> None:
    kafka = KafkaSettings(bootstrap_servers="a:9092,b:9093", request_timeout_ms=2_000)
    config = faust_settings(Settings(kafka=kafka, topics=TopicSettings(partitions=8)))
    consumer = consumer_kwargs(kafka, None)
    assert config["broker"] == ["kafka://a:9092", "kafka://b:9093"]
    assert config["broker_session_timeout"] == consumer["session_timeout_ms"] / 1000 == 6
    assert config["broker_heartbeat_interval"] == 1
    # faust needs the request timeout above the session timeout, whatever the client setting.
    assert config["broker_request_timeout"] > config["broker_session_timeout"]
    assert config["consumer_auto_offset_reset"] == "earliest"
    assert config["topic_partitions"] == 8
    assert config["topic_replication_factor"] == 1
    assert config["broker_credentials"] is None


def test_sasl_settings_become_faust_credentials(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    word = "not-a-real-one"
    secret.write_text(word + "\n")
    kafka = KafkaSettings(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="appraise",
        sasl_password_file=secret,
    )
    credentials = faust_credentials(kafka)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.username == "appraise"
    assert credentials.password == word
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert credentials.ssl_context is None


def test_nothing_to_run_is_refused() -> None:
    with pytest.raises(ValueError, match="nothing to run"):
        AggregateSettings(windows_enabled=False, join_enabled=False)
