"""Nothing outlives ``appraise up``: closing its terminal (SIGHUP) stops every part in order, and
a SIGKILLed ``up`` takes every child with it (broker, scorer, stream app, producer, Prometheus,
Alertmanager), so the ports are free for the next run."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.needs import binary
from tests.tools import UP_PORTS, appraise_up, listening, run_processes, wait_until

PORTS = UP_PORTS


def _nothing_left(markers: list[bytes], ports: dict[str, int]) -> bool | None:
    """True once no process of the run is left and nothing listens on its ports."""
    if run_processes(markers) or any(listening(port) for port in ports.values()):
        return None
    return True


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_closing_the_terminal_stops_everything(model_dir: Path, tmp_path: Path) -> None:
    binary("prometheus")
    binary("prometheus-alertmanager")
    args = ["--profile", "demo", "--no-live", "--run-dir", str(tmp_path / "run")]
    with appraise_up(args, tmp_path, model_dir, PORTS) as up:
        assert "prometheus ready" in up.log.read_text()
        up.process.send_signal(signal.SIGHUP)
        assert up.process.wait(timeout=90) == 0, up.log.read_text()[-3000:]
        text = up.log.read_text()
        assert "stopping: producer, prometheus, alertmanager, aggregate, scorer" in text
        assert run_processes(up.markers) == []
        assert [name for name, port in up.ports.items() if listening(port)] == []


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_a_killed_up_takes_its_children_with_it(model_dir: Path, tmp_path: Path) -> None:
    binary("prometheus")
    binary("prometheus-alertmanager")
    args = ["--profile", "demo", "--no-live", "--run-dir", str(tmp_path / "run")]
    with appraise_up(args, tmp_path, model_dir, PORTS) as up:
        children = run_processes(up.markers)
        names = b" ".join(cmdline for _, cmdline in children)
        for part in (b"score", b"aggregate", b"produce", b"prometheus", b"alertmanager"):
            assert part in names, names
        up.process.send_signal(signal.SIGKILL)  # no handler, no cleanup: only the kernel acts
        assert up.process.wait(timeout=10) == -signal.SIGKILL
        # The children were killed with it; the kernel needs a moment to reap them.
        wait_until(
            lambda: _nothing_left(up.markers, up.ports),
            timeout=30,
            what=f"every child of up gone and its ports free: {run_processes(up.markers)}",
        )
