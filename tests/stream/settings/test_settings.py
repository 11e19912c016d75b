"""Settings: read from APPRAISE_* once; a bad value stops start-up naming field, value, expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.errors import ConfigError
from stream.ops.profiles import profile_named, with_profile
from stream.settings import AggregateSettings, KafkaSettings, Settings, load_settings


def test_defaults_match_the_documented_ports_and_topics() -> None:
    settings = Settings()
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert (settings.metrics.scorer_port, settings.metrics.aggregate_port) == (9400, 9401)
    assert settings.topics.all() == (
        "listings",
        "predictions",
        "listings.dlq",
        "sales",
        "prediction-panes",
        "prediction-windows",
    )


def test_environment_with_nested_names(monkeypatch: pytest.MonkeyPatch) -> None:
    # The one test of the environment path itself; others build settings directly.
    monkeypatch.setenv("APPRAISE_KAFKA__BOOTSTRAP_SERVERS", "kafka-1:9092, kafka-2:9092")
    monkeypatch.setenv("APPRAISE_TOPICS__PARTITIONS", "8")
    settings = load_settings()
    assert settings.kafka.bootstrap_servers == "kafka-1:9092,kafka-2:9092"
    assert settings.topics.partitions == 8


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.model_dir = Path("elsewhere")  # type: ignore[misc]


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("APPRAISE_KAFKA__BOOTSTRAP_SERVERS", "localhost", "host:port"),
        ("APPRAISE_KAFKA__BOOTSTRAP_SERVERS", "localhost:99999", "port 1-65535"),
        ("APPRAISE_TOPICS__PARTITIONS", "zero", "valid integer"),
        ("APPRAISE_TOPICS__PARTITIONS", "0", "greater than or equal to 1"),
        ("APPRAISE_TOPICS__LISTINGS", "bad topic!", "Kafka topic name"),
        ("APPRAISE_METRICS__SCORER_PORT", "70000", "less than or equal to 65535"),
        ("APPRAISE_KAFKA__SECURITY_PROTOCOL", "TLS", "'PLAINTEXT', 'SSL', 'SASL_PLAINTEXT'"),
        ("APPRAISE_MAX_EVENT_BYTES", "12", "greater than or equal to 1024"),
        ("APPRAISE_EVENT_TIME_SKEW_S", "-1", "greater than or equal to 0"),
        ("APPRAISE_EVENT_TIME_SKEW_S", "soon", "valid number"),
        ("APPRAISE_AGGREGATE__IDLE_SECONDS", "0", "greater than or equal to 1"),
    ],
)
def test_a_bad_value_names_the_variable_the_value_and_the_expectation(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert f"{variable}={value!r}" in message
    assert expected in message


def test_an_unknown_variable_is_refused_with_the_known_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APPRAISE_MODEL_DIRR", "x")
    with pytest.raises(ConfigError, match="unknown setting APPRAISE_MODEL_DIRR") as caught:
        load_settings()
    assert "APPRAISE_MODEL_DIR," in str(caught.value)


def test_sasl_needs_a_mechanism_and_credentials() -> None:
    with pytest.raises(ValueError, match="needs sasl_mechanism"):
        KafkaSettings(security_protocol="SASL_SSL")
    with pytest.raises(ValueError, match="needs sasl_username and sasl_password"):
        KafkaSettings(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512")


def test_the_password_comes_from_a_file_and_is_never_shown(tmp_path: Path) -> None:
    secret = tmp_path / "kafka-password"
    secret.write_text("s3cret\n")
    kafka = KafkaSettings(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="appraise",
        sasl_password_file=secret,
    )
    password = kafka.password()
    assert password is not None
    assert password.get_secret_value() == "s3cret"
    assert "s3cret" not in Settings(kafka=kafka).model_dump_json()


def test_an_error_never_shows_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPRAISE_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("APPRAISE_KAFKA__SASL_PASSWORD", "hunter2")
    with pytest.raises(ConfigError, match="needs sasl_mechanism") as caught:
        load_settings()
    assert "hunter2" not in str(caught.value)


def test_a_missing_password_file_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPRAISE_KAFKA__SASL_PASSWORD_FILE", "/nonexistent/password")
    with pytest.raises(ConfigError, match="sasl_password_file: /nonexistent/password is not"):
        load_settings()


def test_tls_files_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"ssl_cafile: .* is not a readable file"):
        KafkaSettings(security_protocol="SSL", ssl_cafile=tmp_path / "missing.pem")


def test_the_idle_time_is_derived_from_the_windows_unless_set() -> None:
    assert AggregateSettings().idle_after_seconds == 60 + 30  # tumbling + lateness
    demo = with_profile(Settings(), profile_named("demo"))
    assert demo.aggregate.idle_seconds is None  # derived in each process, not frozen in
    assert demo.aggregate.idle_after_seconds == 10 + 2
    assert AggregateSettings(idle_seconds=5).idle_after_seconds == 5
    assert Settings().event_time_skew_s == 300
