"""``appraise up`` without Prometheus and Alertmanager, and with a part that dies.

A machine without the binaries still runs the product and says what is missing and how to get
it; when a part dies, ``up`` names it, quotes the end of its log, stops the rest and exits 2.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ops.tools import ROOT, free_port, http_get, listening, run_processes, wait_until


def _predictions(metrics_url: str) -> float | None:
    answer = http_get(metrics_url)
    if answer is None or answer[0] != 200:
        return None
    total = 0.0
    for line in answer[1].decode().splitlines():
        if line.startswith("appraise_predictions_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total if total > 0 else None


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_up_runs_without_monitoring_binaries_and_stops_when_a_part_dies(
    ops_model_dir: Path, tmp_path: Path
) -> None:
    ports = {
        "BROKER__PORT": free_port(),
        "METRICS__SCORER_PORT": free_port(),
        "METRICS__STREAM_PORT": free_port(),
    }
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("APPRAISE_")}
    env |= {f"APPRAISE_{name}": str(port) for name, port in ports.items()}
    env["APPRAISE_MODEL_DIR"] = str(ops_model_dir)
    env["APPRAISE_MONITORING__PROMETHEUS_BIN"] = str(tmp_path / "no-such-prometheus")
    run_dir = tmp_path / "run"
    argv = [sys.executable, "-m", "stream", "up", "--profile", "demo", "--no-live"]
    argv += ["--run-dir", str(run_dir)]
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        up = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:

        def alive() -> str | None:
            if up.poll() is None:
                return None
            return f"appraise up exited with {up.returncode}:\n{log.read_text()[-3000:]}"

        wait_until(
            lambda: True if b"Ctrl-C stops everything" in log.read_bytes() else None,
            timeout=120,
            what="appraise up to start",
            alive=alive,
        )
        text = log.read_text()
        assert "monitoring NOT running: Prometheus" in text
        assert "no-such-prometheus" in text
        assert "apt-get install prometheus prometheus-alertmanager" in text
        scorer_metrics = f"http://127.0.0.1:{ports['METRICS__SCORER_PORT']}/metrics"
        wait_until(
            lambda: _predictions(scorer_metrics),
            timeout=60,
            what="predictions flowing",
            alive=alive,
        )

        marker = f"SCORER_PORT={ports['METRICS__SCORER_PORT']}".encode()
        (scorer,) = [pid for pid, cmdline in run_processes([marker]) if b"\0score" in cmdline]
        os.kill(scorer, signal.SIGKILL)
        assert up.wait(timeout=90) == 2  # as every error appraise reports
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()

    text = log.read_text()
    assert "scorer exited with code -9" in text
    assert f"{run_dir / 'scorer.log'}:" in text
    assert "  | " in text  # the quoted end of the scorer's log
    assert run_processes([marker]) == []
    assert [name for name, port in ports.items() if listening(port)] == []
