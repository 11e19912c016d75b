"""``appraise up --http --history`` without Prometheus and Alertmanager, and with a part that
dies.

A machine without the binaries still runs the product and says what is missing and how to get
it; when a part dies, ``up`` names it, quotes the end of its log, stops the rest and exits 2.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.tools import appraise_up, http_get, listening, run_processes, wait_until


def _predictions(metrics_url: str, name: str = "appraise_predictions_total") -> float | None:
    answer = http_get(metrics_url)
    if answer is None or answer[0] != 200:
        return None
    total = 0.0
    for line in answer[1].decode().splitlines():
        if line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total if total > 0 else None


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_up_runs_without_monitoring_binaries_and_stops_when_a_part_dies(
    model_dir: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    args = ["--profile", "demo", "--no-live", "--run-dir", str(run_dir), "--http", "--history"]
    ports = ["BROKER__PORT", "METRICS__SCORER_PORT", "METRICS__AGGREGATE_PORT", "SERVE__PORT"]
    ports += ["METRICS__HISTORY_PORT"]
    missing = {"APPRAISE_MONITORING__PROMETHEUS_BIN": str(tmp_path / "no-such-prometheus")}
    with appraise_up(args, tmp_path, model_dir, ports, env_extra=missing) as up:
        log = up.log
        text = log.read_text()
        assert "monitoring NOT running: Prometheus" in text
        assert "no-such-prometheus" in text
        assert "apt-get install prometheus prometheus-alertmanager" in text
        scorer_metrics = f"http://127.0.0.1:{up.ports['METRICS__SCORER_PORT']}/metrics"
        wait_until(
            lambda: _predictions(scorer_metrics),
            timeout=60,
            what="predictions flowing",
            alive=up.alive,
        )
        # --http: the price service answers the second producer's requests.
        assert "serve      ready on http://127.0.0.1:" in log.read_text()
        api_metrics = f"http://127.0.0.1:{up.ports['SERVE__PORT']}/metrics"
        wait_until(
            lambda: _predictions(api_metrics, "appraise_http_predictions_total"),
            timeout=60,
            what="HTTP predictions answered",
            alive=up.alive,
        )
        # --history: a local PostgreSQL in the run directory, and the sink writing windows to it.
        assert "postgres   ready on 127.0.0.1:" in log.read_text()
        assert (run_dir / "postgres" / "password").stat().st_mode & 0o077 == 0
        history_metrics = f"http://127.0.0.1:{up.ports['METRICS__HISTORY_PORT']}/metrics"
        wait_until(
            lambda: _predictions(history_metrics, "appraise_history_records_total"),
            timeout=90,
            what="windows written to PostgreSQL",
            alive=up.alive,
        )

        (scorer,) = [pid for pid, cmdline in run_processes(up.markers) if b"\0score" in cmdline]
        os.kill(scorer, signal.SIGKILL)
        assert up.process.wait(timeout=90) == 2  # as every error appraise reports

    text = log.read_text()
    assert "scorer exited with code -9" in text
    assert f"{run_dir / 'scorer.log'}:" in text
    assert "  | " in text  # the quoted end of the scorer's log
    assert run_processes(up.markers) == []
    assert _postgres_of(run_dir) == []
    assert [name for name, port in up.ports.items() if listening(port)] == []


def _postgres_of(run_dir: Path) -> list[int]:
    """Pids of postgres servers whose data directory is the run's (none once ``up`` stopped)."""
    data = {str(run_dir / "postgres" / "data").encode()}
    data.add(os.path.realpath(run_dir / "postgres" / "data").encode())
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"postgres") and any(a in data for a in argv):
            found.append(int(proc.name))
    return found
