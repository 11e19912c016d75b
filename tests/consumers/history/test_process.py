"""``appraise history`` as a person runs it: a real process on the session's broker and
PostgreSQL, its probes and /metrics page, a clean stop on SIGTERM, and one clear line for each
setting a user can get wrong."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from stream.contract.history_metrics import HISTORY
from stream.service.process import die_with_parent_fn
from stream.settings import KafkaSettings
from tests.postgres import Database
from tests.tools import free_port, http_get, wait_until

pytestmark = pytest.mark.integration


def _env(**settings: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("APPRAISE_")}
    return {**clean, **{f"APPRAISE_{k}": v for k, v in settings.items()}}


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream", "history", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
        preexec_fn=die_with_parent_fn(),
    )


def test_history_serves_its_probes_and_metrics_and_stops_cleanly_on_sigterm(
    kafka_settings: KafkaSettings, postgres_db: Database, tmp_path: Path
) -> None:
    port = free_port()
    env = _env(
        KAFKA__BOOTSTRAP_SERVERS=kafka_settings.bootstrap_servers,
        METRICS__HISTORY_PORT=str(port),
        HISTORY__DSN=postgres_db.dsn,
        HISTORY__PASSWORD_FILE=str(postgres_db.password_file),
        HISTORY__GROUP_ID=f"test-history-{port}",
    )
    log = tmp_path / "history.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stream", "history"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=die_with_parent_fn(),
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: True if (http_get(f"{url}/readyz") or (0,))[0] == 200 else None,
            timeout=60,
            what="/readyz 200",
            alive=lambda: None if proc.poll() is None else f"exited {proc.returncode}",
        )
        answer = http_get(f"{url}/metrics")
        assert answer is not None, log.read_text()[-3000:]
        assert answer[0] == 200
        page = answer[1].decode()
        missing = [
            m.name for m in HISTORY if f"\n# TYPE {m.name.removesuffix('_total')}" not in page
        ]
        assert missing == []
        assert "appraise_history_database_up 1.0" in page
        assert "appraise_history_schema_version 1.0" in page
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "history ready; writing prediction-windows into 127.0.0.1:" in log.read_text()


def test_history_without_a_dsn_says_which_setting_in_one_line() -> None:
    result = _run(env=_env())
    assert result.returncode == 2
    assert "APPRAISE_HISTORY__DSN is not set" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_bad_dsn_names_the_setting_and_what_was_expected() -> None:
    result = _run("--dsn", "host=db dbname", env=_env())
    assert result.returncode == 2
    assert "APPRAISE_HISTORY__DSN='host=db dbname' is invalid" in result.stderr
    assert "libpq connection string" in result.stderr
    assert "Traceback" not in result.stderr


def test_credentials_the_database_refuses_exit_2_naming_the_settings(
    kafka_settings: KafkaSettings, postgres_db: Database, tmp_path: Path
) -> None:
    wrong = tmp_path / "password"
    wrong.write_text("guessed\n")
    env = _env(
        KAFKA__BOOTSTRAP_SERVERS=kafka_settings.bootstrap_servers,
        METRICS__HISTORY_PORT="0",
        HISTORY__DSN=postgres_db.dsn,
        HISTORY__PASSWORD_FILE=str(wrong),
    )
    result = _run(env=env)
    assert result.returncode == 2
    assert "refused the connection" in result.stderr
    assert "APPRAISE_HISTORY__PASSWORD_FILE" in result.stderr
    assert "guessed" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
