"""The bench runs end to end on the embedded broker (tiny sizes: the figures are not judged)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from stream.bench.scorer import bench_scorer, format_result
from stream.settings import KafkaSettings, ScorerSettings, Settings

KEYS = {
    "scorer_eps",
    "pipe_eps",
    "per_event_eps",
    "ratio_to_pipe",
    "speedup_vs_per_event",
    "lag_p50_ms",
    "lag_p99_ms",
    "rss_mb",
}


@pytest.mark.timeout(150)
async def test_bench_reports_every_figure(kafka_settings: KafkaSettings, model_dir: Path) -> None:
    settings = Settings(kafka=kafka_settings, model_dir=model_dir)
    scorer = ScorerSettings()
    steps: list[str] = []
    result = await bench_scorer(
        settings,
        scorer,
        events=3_000,
        rate=500.0,
        lag_seconds=1.0,
        per_event_seconds=1.0,
        progress=steps.append,
    )
    figures = orjson.loads(result.to_json())
    assert set(figures) == KEYS
    assert all(value > 0 for value in figures.values())
    assert result.ratio_to_pipe == pytest.approx(result.scorer_eps / result.pipe_eps)
    assert "ratio to pipe" in format_result(result, scorer)
    assert len(steps) == 6
    assert any("compiling" in step for step in steps)
