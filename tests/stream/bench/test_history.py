"""``appraise bench history`` end to end, small: the stream app closing windows, the real sink
writing them into a PostgreSQL of the bench's own, a small generated year queried; every figure
reported. How fast is not a test's business (a shared machine is noisy): the figures are the
bench's."""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime
from pathlib import Path

import orjson
import pytest

from stream.bench.history import bench_history, format_result, steps
from stream.bench.history_query import MINUTES_PER_YEAR
from stream.bench.history_sink import sink_records
from stream.contract.features import FEATURES
from stream.contract.windows import DriftRecord, ErrorRecord, decode_window_record
from stream.settings import KafkaSettings, ScorerSettings, Settings
from tests.consumers.history.conftest import drift_record
from tests.needs import postgres_bin

ISSUE_KEYS = ("windows_written_per_s", "windows_closed_per_s", "ratio_written_to_closed")


@pytest.mark.integration
@pytest.mark.timeout(300)
async def test_bench_reports_the_issue_keys(kafka_settings: KafkaSettings, model_dir: Path) -> None:
    postgres_bin()  # skipped (failed under CI) without PostgreSQL's server
    years = 0.002
    done: list[int] = []
    result = await bench_history(
        Settings(kafka=kafka_settings, model_dir=model_dir),
        ScorerSettings(),
        events=3_000,
        window_events=100,
        records=400,
        years=years,
        query_runs=2,
        progress=lambda n, _status: done.append(n),
    )
    figures = orjson.loads(result.to_json())
    for key in (*ISSUE_KEYS, "query_30d_s", "query_30d_all_features_s", "records_written_per_s"):
        assert figures[key] > 0, key
    assert result.ratio_written_to_closed == pytest.approx(
        result.windows_written_per_s / result.windows_closed_per_s
    )
    # 3,000 listings 0.6 s apart: 30 minutes, so about 30 1-minute and 34 5-minute windows.
    assert 50 <= result.windows_closed <= 90
    assert result.pane_partials > result.windows_closed / 2
    assert (result.records_written, result.drift_records_written) == (400, 200)
    assert result.windows_written_per_s == pytest.approx(
        result.drift_records_written / result.sink_s
    )
    assert result.feature_rows_written > 0
    windows = round(years * MINUTES_PER_YEAR)
    assert (result.year_windows, result.year_feature_rows) == (windows, windows * len(FEATURES))
    # The whole generated span is within 30 days: the newest window is the last minute's.
    assert result.query_30d_rows == windows
    assert result.query_30d_all_features_rows >= len(FEATURES) * (windows // 60)
    assert "Scan" in result.query_30d_plan
    assert done[-1] == steps(years, skip_query=False)
    text = format_result(result)
    assert "written / closed" in text
    assert "30-day query" in text

    skipped = dataclasses.replace(result, query_30d_s=math.nan, query_30d_all_features_s=math.nan)
    assert orjson.loads(skipped.to_json())["query_30d_s"] is None
    assert "skipped" in format_result(skipped)


def test_sink_records_are_new_windows_each_with_its_realised_error() -> None:
    originals = [drift_record(m) for m in range(3)] + [drift_record(0, window="5m")]
    records = sink_records([(r.key, r.to_bytes()) for r in originals], 21)
    assert len(records) == 21
    decoded = [decode_window_record(value) for _, value in records]
    assert [key for key, _ in records] == [r.key for r in decoded]
    assert len({key for key, _ in records}) == 21  # every record its own window
    drift = [r for r in decoded if isinstance(r, DriftRecord)]
    errors = [r for r in decoded if isinstance(r, ErrorRecord)]
    assert (len(drift), len(errors)) == (11, 10)
    for d, e in zip(drift, errors, strict=False):
        assert (e.window, e.start, e.end, e.model_version) == (
            d.window,
            d.start,
            d.end,
            d.model_version,
        )
    # The copies keep everything but the window's place in time.
    first, copy = drift[0], drift[len(originals)]
    assert copy.start < first.start
    assert copy.model_copy(update={"start": first.start, "end": first.end}) == first
    assert all(isinstance(r.start, datetime) for r in decoded)
