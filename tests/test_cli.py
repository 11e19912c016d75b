"""The ``appraise`` command as a person runs it: a real process, its output and exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


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
