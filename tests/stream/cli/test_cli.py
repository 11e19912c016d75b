"""The ``appraise`` command as a person runs it: a real process, its output and exit code."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from stream.model.load import load_model
from stream.service.process import die_with_parent_fn
from stream.settings import KafkaSettings


def appraise(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("APPRAISE_")}
    return subprocess.run(
        [sys.executable, "-m", "stream", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **(env or {})},
        check=False,
    )


@pytest.mark.parametrize("kind", ["listing", "prediction", "sale"])
def test_schema_prints_a_json_schema(kind: str) -> None:
    result = appraise("schema", kind)
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert schema["$schema"].endswith("2020-12/schema")
    assert "listing_id" in schema["properties"]


def test_schema_of_an_unknown_kind_is_one_clear_message() -> None:
    result = appraise("schema", "house")
    assert result.returncode == 2
    assert "expected one of listing, prediction, sale" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_setting_stops_start_up_with_a_message_not_a_traceback() -> None:
    result = appraise("settings", env={"APPRAISE_METRICS__SCORER_PORT": "http"})
    assert result.returncode == 2
    assert "APPRAISE_METRICS__SCORER_PORT='http' is invalid" in result.stderr
    assert "valid integer" in result.stderr
    assert "Traceback" not in result.stderr


def test_settings_shows_what_is_in_force_without_secrets() -> None:
    result = appraise(
        "settings",
        env={
            "APPRAISE_KAFKA__BOOTSTRAP_SERVERS": "kafka:9092",
            "APPRAISE_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "APPRAISE_KAFKA__SASL_MECHANISM": "PLAIN",
            "APPRAISE_KAFKA__SASL_USERNAME": "appraise",
            "APPRAISE_KAFKA__SASL_PASSWORD": "hunter2",
        },
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["kafka"]["bootstrap_servers"] == "kafka:9092"
    assert "hunter2" not in result.stdout


def test_settings_show_the_false_alarm_level_the_budget_implies() -> None:
    default = json.loads(appraise("settings").stdout)["derived"]
    patient = appraise("settings", env={"APPRAISE_AGGREGATE__FALSE_ALARM_DAYS": "300"})
    derived = json.loads(patient.stdout)["derived"]
    level = default["drift"]["false_alarm_level_per_test"]
    assert level == pytest.approx(1 / (30 * default["drift"]["tests_per_day"]))
    assert derived["drift"]["false_alarm_level_per_test"] == pytest.approx(level / 10)
    assert default["aggregate"]["idle_after_seconds"] == 60 + 30  # tumbling + lateness


def test_train_writes_a_loadable_model_and_says_how_good_it_is(tmp_path: Path) -> None:
    result = appraise("train", "--out", str(tmp_path / "model"))
    assert result.returncode == 0, result.stderr
    card = json.loads((tmp_path / "model" / "model_card.json").read_text())
    assert f"model {card['model_version']} written to {tmp_path / 'model'}" in result.stdout
    assert f"R² {card['holdout']['r2']:.3f}" in result.stdout
    assert load_model(tmp_path / "model").version == card["model_version"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_broker_says_it_is_ready_serves_and_stops_cleanly_on_ctrl_c() -> None:
    port = _free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("APPRAISE_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream", "broker", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean,
        preexec_fn=die_with_parent_fn(),  # a killed test run takes the broker with it
    )
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()  # blocks until the broker is up (or the process ends)
        assert f"broker ready on 127.0.0.1:{port}" in ready
        assert "listings(4)" in ready
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "broker stopped" in stdout
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port)):
        pass


def test_an_idempotent_producer_on_the_embedded_broker_names_the_setting(
    kafka_settings: KafkaSettings,
) -> None:
    env = {
        "APPRAISE_KAFKA__BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "APPRAISE_KAFKA__ENABLE_IDEMPOTENCE": "true",
        "APPRAISE_TOPICS__LISTINGS": f"idempotence-{os.getpid()}",
    }
    result = appraise("produce", "--count", "10", env=env)
    assert result.returncode == 2, result.stderr
    assert "APPRAISE_KAFKA__ENABLE_IDEMPOTENCE=false" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["--help", "up --help", "produce --help", "bench --help"])
def test_help_shows_no_metavar_on_a_flag(command: str) -> None:
    result = appraise(*command.split(), env={"COLUMNS": "100"})
    assert result.returncode == 0, result.stderr
    assert "<bool>" not in result.stdout
    assert "\\[" not in result.stdout  # rich's escapes stay out of plain help
    assert max(map(len, result.stdout.splitlines())) <= 100


def test_a_loop_flag_is_not_taken_by_faust() -> None:
    # faust reads --loop from the command line when imported; the CLI imports it for every
    # command, so it must not see `appraise produce --loop`'s.
    result = appraise("produce", "--loop", "--event-time", "live", "--help")
    assert result.returncode == 0, result.stderr
    assert "--loop" in result.stdout
