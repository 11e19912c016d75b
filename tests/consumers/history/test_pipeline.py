"""The history database holds the windows the stream app closed: the real price service, stream
app and sink (``tests.consumers.history.pipeline``), then every record on the windows topic
compared with its rows, value for value, and no row without a record."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from consumers.history.read import read_history
from stream.contract.windows import QUANTILES, DriftRecord, ErrorRecord, quantile_key
from stream.ops.postgres import LocalPostgres
from stream.settings import KafkaSettings
from tests.consumers.history.conftest import rows
from tests.consumers.history.pipeline import PipelineRun, pipeline_database, run_pipeline

pytestmark = pytest.mark.integration

Key = tuple[str, datetime, str]
_QUANTILE_COLUMNS = ", ".join(f"p{round(q * 100)}" for q in QUANTILES)
_REFERENCE_COLUMNS = ", ".join(f"reference_p{round(q * 100)}" for q in QUANTILES)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def run(
    kafka_settings: KafkaSettings, model_dir: Path, postgres_server: LocalPostgres
) -> AsyncIterator[PipelineRun]:
    """One run of the pipeline for the module, into a database of its own."""
    async with pipeline_database(postgres_server) as database:
        yield await run_pipeline(kafka_settings, model_dir, database)


def _key(record: DriftRecord | ErrorRecord) -> Key:
    return (record.window, record.start, record.model_version)


def _quantiles(values: dict[str, float] | None) -> tuple[float | None, ...]:
    return tuple((values or {}).get(quantile_key(q)) for q in QUANTILES)


async def _by_key(conninfo: str, columns: str, where: str = "true") -> dict[Key, tuple[Any, ...]]:
    found = await rows(
        conninfo,
        f"SELECT window_kind, window_start, model_version, {columns} FROM windows WHERE {where}",  # noqa: S608
    )
    return {(r[0], r[1], r[2]): tuple(r[3:]) for r in found}


async def test_the_run_closed_windows_of_every_sort(run: PipelineRun) -> None:
    """What the comparisons below stand on: both window kinds, stable and drifting windows, a
    window under min_events, realised error with and without target drift."""
    drift, errors = run.drift, run.errors
    assert len(drift) == 18
    assert len(errors) == 17
    assert {r.window for r in drift} == {r.window for r in errors} == {"10s", "20s"}
    assert {r.model_version for r in run.records} == {run.model_version}
    measured = [r for r in drift if r.has_drift]
    assert [r for r in drift if not r.has_drift], "a window under min_events"
    drifting = [r for r in measured if r.drifting_features]
    assert drifting
    assert all("living_area_sqft" in (r.drifting_features or []) for r in drifting)
    assert [r for r in measured if not r.drifting_features], "windows without drift"
    assert any(r.target is not None for r in errors)
    assert any(r.target is None for r in errors), "sales under min_events"
    assert sum(r.sales for r in errors if r.window == "10s") == 350


async def test_every_drift_record_is_its_windows_row(run: PipelineRun) -> None:
    stored = await _by_key(
        run.conninfo,
        "window_end, reference_model_version, events, panes, min_events, "
        f"{_QUANTILE_COLUMNS}, {_REFERENCE_COLUMNS}, prediction_psi, prediction_ks, "
        "prediction_score, prediction_drifting, drifting_share, drifting_features, "
        "likely_causes, psi_threshold, false_alarm_level",
        "drift_record IS NOT NULL",
    )
    expected = {}
    for r in run.drift:
        p = r.prediction
        causes = None if r.likely_causes is None else [c.model_dump() for c in r.likely_causes]
        expected[_key(r)] = (
            r.end,
            r.reference_model_version,
            r.events,
            r.panes,
            r.min_events,
            *_quantiles(r.quantiles),
            *_quantiles(r.reference_quantiles),
            None if p is None else p.psi,
            None if p is None else p.ks,
            None if p is None else p.score,
            None if p is None else p.drifting,
            r.drifting_share,
            r.drifting_features,  # NULL for a window without drift values (test below)
            causes,
            r.psi_threshold,
            r.false_alarm_level,
        )
    assert stored.keys() == expected.keys()
    for key, values in expected.items():
        assert stored[key] == values, key


async def test_a_window_without_drift_values_has_no_drifting_features(run: PipelineRun) -> None:
    unmeasured = [r for r in run.drift if r.drifting_features is None]
    assert unmeasured
    for r in unmeasured:
        got = await rows(
            run.conninfo,
            "SELECT drifting_features FROM windows WHERE window_kind = %s AND "
            "window_start = %s AND model_version = %s",
            *_key(r),
        )
        assert got == [(None,)], _key(r)


async def test_every_drift_record_is_its_feature_windows_rows(run: PipelineRun) -> None:
    found = await rows(
        run.conninfo,
        "SELECT window_kind, window_start, model_version, feature, psi, ks, psi_critical, "
        "ks_critical, noise, score, drifting, missing_rate, unseen_rate, out_of_range_rate "
        "FROM feature_windows",
    )
    stored = {(r[0], r[1], r[2], r[3]): tuple(r[4:]) for r in found}
    expected = {
        (*_key(r), name): (
            f.psi,
            f.ks,
            f.psi_critical,
            f.ks_critical,
            f.noise,
            f.score,
            f.drifting,
            f.missing_rate,
            f.unseen_rate,
            f.out_of_range_rate,
        )
        for r in run.drift
        for name, f in (r.features or {}).items()
    }
    assert len(expected) == 20 * len([r for r in run.drift if r.has_drift])
    assert stored.keys() == expected.keys()
    for key, values in expected.items():
        assert stored[key] == values, key


async def test_every_realised_error_record_is_its_windows_row(run: PipelineRun) -> None:
    stored = await _by_key(
        run.conninfo,
        "window_end, sales, mae_dollars, mape, target_psi, target_score, target_drifting",
        "error_record IS NOT NULL",
    )
    expected = {
        _key(r): (
            r.end,
            r.sales,
            r.mae_dollars,
            r.mape,
            None if r.target is None else r.target.psi,
            None if r.target is None else r.target.score,
            None if r.target is None else r.target.drifting,
        )
        for r in run.errors
    }
    assert stored.keys() == expected.keys()
    for key, values in expected.items():
        assert stored[key] == values, key


async def test_no_row_without_a_record(run: PipelineRun) -> None:
    drift = {_key(r) for r in run.drift}
    errors = {_key(r) for r in run.errors}
    stored = await _by_key(
        run.conninfo,
        "drift_record IS NOT NULL, events IS NOT NULL, error_record IS NOT NULL, sales IS NOT NULL",
    )
    assert stored.keys() == drift | errors
    for key, (has_drift, has_events, has_error, has_sales) in stored.items():
        assert (has_drift, has_events) == (key in drift,) * 2, key
        assert (has_error, has_sales) == (key in errors,) * 2, key
    assert drift - errors, "windows with listings and no sales"
    assert errors - drift, "a window with sales and no listings"
    orphans = await rows(
        run.conninfo,
        "SELECT count(*) FROM feature_windows f WHERE NOT EXISTS (SELECT 1 FROM windows w "
        "WHERE (w.window_kind, w.window_start, w.model_version, true) = "
        "(f.window_kind, f.window_start, f.model_version, w.drift_record IS NOT NULL))",
    )
    assert orphans == [(0,)]


async def test_the_records_read_back_are_the_records_on_the_topic(run: PipelineRun) -> None:
    for window in ("10s", "20s"):
        back, skipped = await read_history(run.conninfo, window=window, since_s=86_400)
        assert skipped == 0
        on_topic = [r for r in run.latest().values() if r.window == window]
        # The report reads the distributions of the newest measured window only.
        newest = max(
            (r for r in on_topic if isinstance(r, DriftRecord) and r.has_drift), key=lambda r: r.end
        )
        expected = [
            r
            if not isinstance(r, DriftRecord) or r is newest
            else r.model_copy(update={"distributions": None})
            for r in on_topic
        ]
        key = lambda r: (r.kind, r.start)  # noqa: E731
        assert sorted(back, key=key) == sorted(expected, key=key)
