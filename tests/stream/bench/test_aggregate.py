"""``appraise bench aggregate`` end to end, small: it runs every step and reports every figure.
How fast is not a test's business (a shared machine is noisy): the figures are the bench's."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from stream.bench.aggregate import bench_aggregate, format_result
from stream.settings import KafkaSettings, ScorerSettings, Settings


async def test_bench_reports_the_issue_keys(kafka_settings: KafkaSettings, model_dir: Path) -> None:
    lines: list[str] = []
    result = await bench_aggregate(
        Settings(kafka=kafka_settings, model_dir=model_dir),
        ScorerSettings(),
        events=20_000,
        join_events=500,
        progress=lines.append,
    )
    figures = orjson.loads(result.to_json())
    assert {"aggregate_eps", "scorer_eps", "ratio_to_scorer", "join_eps"} <= set(figures)
    assert result.scorer_eps > 0
    assert result.join_eps > 0
    assert result.panes >= 2  # the scorer's partials and the closing one
    assert result.ratio_to_scorer == pytest.approx(result.aggregate_eps / result.scorer_eps)
    assert "ratio to scorer" in format_result(result)
    assert any("label join" in line for line in lines)
