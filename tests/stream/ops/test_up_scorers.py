"""``appraise up --scorers N``: N scorer processes in one consumer group, each on its own metrics
port and ready on its own ``/readyz``, all scraped by the run's Prometheus through its file_sd
file; more scorers than partitions is one clear error before anything starts."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.needs import binary
from tests.tools import ROOT, appraise_up, http_get, listening, run_processes, wait_until

_READY = re.compile(r"^(scorer(?:-\d)?) +ready; metrics http://127\.0\.0\.1:(\d+)/metrics", re.M)


def _json(url: str) -> object | None:
    answer = http_get(url)
    return None if answer is None or answer[0] != 200 else orjson.loads(answer[1])


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_up_runs_two_scorers_in_one_group_and_prometheus_scrapes_both(
    model_dir: Path, tmp_path: Path
) -> None:
    binary("prometheus")
    binary("prometheus-alertmanager")
    run_dir = tmp_path / "run"
    args = ["--profile", "demo", "--no-live", "--run-dir", str(run_dir), "--scorers", "2"]
    ports = ["BROKER__PORT", "METRICS__SCORER_PORT", "METRICS__AGGREGATE_PORT"]
    ports += ["MONITORING__PROMETHEUS_PORT", "MONITORING__ALERTMANAGER_PORT"]
    ports += ["MONITORING__WEBHOOK_PORT"]
    env = {"APPRAISE_TOPICS__PARTITIONS": "2"}
    with appraise_up(args, tmp_path, model_dir, ports, env_extra=env) as up:
        scorers = dict(_READY.findall(up.log.read_text()))
        assert list(scorers) == ["scorer", "scorer-2"]
        assert int(scorers["scorer"]) == up.ports["METRICS__SCORER_PORT"]
        assert scorers["scorer"] != scorers["scorer-2"]
        # Each holds one of the two partitions: both ready, neither idle.
        for port in scorers.values():
            ready = _json(f"http://127.0.0.1:{port}/readyz")
            assert isinstance(ready, dict)
            assert ready["ready"] is True
            assert ready["group_joined"] is True
        prometheus = f"http://127.0.0.1:{up.ports['MONITORING__PROMETHEUS_PORT']}"

        def both_scraped() -> dict[str, str] | None:
            answer = _json(f"{prometheus}/api/v1/targets")
            if not isinstance(answer, dict):
                return None
            found = {
                t["labels"]["part"]: t["health"]
                for t in answer["data"]["activeTargets"]
                if t["labels"]["job"] == "appraise-scorer"
            }
            return found if set(found.values()) == {"up"} and len(found) == 2 else None

        wait_until(both_scraped, timeout=60, what="both scorers scraped", alive=up.alive)

        def held() -> list[float] | None:
            query = "appraise_scorer_assigned_partitions"
            answer = _json(f"{prometheus}/api/v1/query?query={query}")
            if not isinstance(answer, dict):
                return None
            values = sorted(float(r["value"][1]) for r in answer["data"]["result"])
            return values if values == [1.0, 1.0] else None

        wait_until(held, timeout=60, what="one partition each", alive=up.alive)
        up.process.send_signal(signal.SIGINT)
        assert up.process.wait(timeout=90) == 0
    text = up.log.read_text()
    assert "stopping: producer, prometheus, alertmanager, aggregate, scorer-2, scorer" in text
    assert run_processes(up.markers) == []
    assert not any(listening(int(port)) for port in scorers.values())


def test_more_scorers_than_partitions_is_one_clear_error(tmp_path: Path) -> None:
    env = {"APPRAISE_TOPICS__PARTITIONS": "2", "APPRAISE_MODEL_DIR": str(tmp_path / "none")}
    done = subprocess.run(
        [sys.executable, "-m", "stream", "up", "--scorers", "3", "--run-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**_clean_env(), **env},
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    said = (done.stdout + done.stderr).strip().splitlines()
    assert len(said) == 1, said
    assert "--scorers 3" in said[0]
    assert "APPRAISE_TOPICS__PARTITIONS=2" in said[0]
    assert not (tmp_path / "broker.log").exists()  # nothing started


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.upper().startswith("APPRAISE_")}
