"""``appraise bench serve`` end to end, small: both servers and the load generator as their own
processes, every figure reported, every process gone afterwards. How fast is not a test's
business: the figures are the bench's."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.bench.serve import bench_serve, format_result, steps
from stream.settings import Settings
from tests.tools import run_processes

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


async def test_bench_reports_every_figure_and_stops_its_processes(model_dir: Path) -> None:
    progress: list[int] = []
    figures = await bench_serve(
        Settings(model_dir=model_dir),
        concurrencies=(1, 4),
        seconds=1.0,
        warmup_s=0.5,
        progress=lambda done, _status: progress.append(done),
    )
    for c in (1, 4):
        for key in ("rps", "p50_ms", "p99_ms", "baseline_rps", "baseline_p50_ms", "speedup"):
            assert figures[f"{key}_c{c}"] > 0, key
        assert figures[f"errors_c{c}"] == 0  # every request answered 200
        speedup = figures[f"rps_c{c}"] / figures[f"baseline_rps_c{c}"]
        assert figures[f"speedup_c{c}"] == pytest.approx(speedup, rel=1e-2)
    assert figures["broker_stopped_rps_c4"] > 0
    assert figures["mean_batch_listings"] >= 1
    assert progress[-1] == steps((1, 4))
    assert "speedup" in format_result(figures, (1, 4))
    # Both servers carry the model directory (argument or environment): none is left.
    left = [cmd for _, cmd in run_processes([str(model_dir).encode()]) if b"serve" in cmd]
    assert left == []
