"""Pane partials through the windows with dict tables: closing, lateness, redelivery, restart,
and realised error."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from stream.aggregate.aggregator import ErrorWindows, PaneWindows
from stream.aggregate.state import PaneState
from stream.aggregate.windows import window_specs
from stream.contract.panes import PaneFormatError, decode_pane
from stream.contract.times import unix_rfc3339
from stream.errors import DataError
from stream.model.profile import ReferenceProfile
from stream.settings import AggregateSettings
from tests.stream.aggregate.conftest import PaneMaker

SETTINGS = AggregateSettings(
    tumbling_seconds=60, hopping_seconds=120, hop_seconds=60, allowed_lateness_seconds=10
)
T0 = 1_200_000_000.0  # a multiple of 60 s


def _windows(
    profile: ReferenceProfile, panes: dict[str, str], clocks: dict[str, str]
) -> PaneWindows:
    return PaneWindows(window_specs(SETTINGS), SETTINGS, profile, panes, clocks)


def _records(
    make_panes: PaneMaker, rows: pd.DataFrame, start: float, seconds: float
) -> list[bytes]:
    times = start + np.arange(len(rows)) * (seconds / len(rows))
    return make_panes(rows, times)


def test_panes_become_window_summaries(
    profile: ReferenceProfile, holdout: pd.DataFrame, make_panes: PaneMaker
) -> None:
    windows = _windows(profile, {}, {})
    rows = holdout.iloc[:1200]
    closed = []
    for raw in _records(make_panes, rows, T0, 240.0):  # 5 events/s for 4 minutes
        closed += windows.process(raw).closed
    names = [(s.window.name, s.window.start - T0, s.events) for s in closed]
    # Watermark 230 s: [0,60), [60,120), [120,180) of 1m and [-60,60), [0,120) of 2m closed.
    assert names == [
        ("1m", 0.0, 300),
        ("2m", -60.0, 300),
        ("1m", 60.0, 300),
        ("2m", 0.0, 600),
        ("1m", 120.0, 300),
        ("2m", 60.0, 600),
    ]
    for summary in closed:
        assert summary.drift is not None
        assert not summary.drift.prediction.drifting
    # Only panes of windows still open are kept.
    assert len(windows.panes) <= 12


def test_late_and_dropped_panes(
    profile: ReferenceProfile, holdout: pd.DataFrame, make_panes: PaneMaker
) -> None:
    windows = _windows(profile, {}, {})
    records = _records(make_panes, holdout.iloc[:140], T0, 140.0)  # panes 0..130 s
    by_start = {decode_pane(raw).start - T0: raw for raw in records}
    for start in (0, 10, 20, 30, 40, 60):
        windows.process(by_start[start])
    late = windows.process(by_start[50])  # watermark 60: [0, 60) ended, open until 70
    assert late.admission is not None
    assert [w.name for w in late.admission.late] == ["1m", "2m"]
    assert late.admission.dropped == ()
    closing = windows.process(by_start[70])
    tumbling = next(s for s in closing.closed if s.window.name == "1m")
    assert tumbling.panes == 6
    assert tumbling.events == 60
    # [0, 60) of 1m and [-60, 60) of 2m have closed: another partial of pane 50 is dropped
    # there and still counted in [0, 120) of 2m.
    again = _records(make_panes, holdout.iloc[140:150], T0 + 50, 10.0)[0]
    dropped = windows.process(again)
    assert dropped.admission is not None
    assert [(w.name, w.start - T0) for w in dropped.admission.dropped] == [
        ("1m", 0.0),
        ("2m", -60.0),
    ]
    assert [(w.name, w.start - T0) for w in dropped.admission.accepted] == [("2m", 0.0)]


def test_a_partial_delivered_twice_counts_once(
    profile: ReferenceProfile, holdout: pd.DataFrame, make_panes: PaneMaker
) -> None:
    windows = _windows(profile, {}, {})
    raw = _records(make_panes, holdout.iloc[:10], T0, 10.0)[0]
    assert not windows.process(raw).duplicate
    assert windows.process(raw).duplicate
    other = _records(make_panes, holdout.iloc[10:20], T0, 10.0)[0]
    assert not windows.process(other).duplicate
    (state,) = windows.panes.values()
    assert PaneState.from_text(state, 200).pane.events == 20


def test_a_restart_continues_from_the_tables(
    profile: ReferenceProfile, holdout: pd.DataFrame, make_panes: PaneMaker
) -> None:
    records = _records(make_panes, holdout.iloc[:900], T0, 180.0)
    straight = _windows(profile, {}, {})
    expected = [s for raw in records for s in straight.process(raw).closed]
    panes: dict[str, str] = {}
    clocks: dict[str, str] = {}
    first = _windows(profile, panes, clocks)
    got = [s for raw in records[:7] for s in first.process(raw).closed]
    second = _windows(profile, dict(panes), dict(clocks))  # only the tables survive
    got += [s for raw in records[7:] for s in second.process(raw).closed]
    # Same windows with the same panes and events (KLL compaction is randomised, so the
    # sketches themselves may differ within their rank error).
    assert [(s.window, s.panes, s.events) for s in got] == [
        (s.window, s.panes, s.events) for s in expected
    ]
    assert len(got) >= 4


def test_bad_records_are_refused(
    profile: ReferenceProfile, holdout: pd.DataFrame, make_panes: PaneMaker
) -> None:
    windows = _windows(profile, {}, {})
    with pytest.raises(PaneFormatError):
        windows.process(b'{"format": "nope"}')
    odd = make_panes(holdout.iloc[:5], T0 + np.arange(5.0), pane_seconds=7.0)[0]
    with pytest.raises(DataError, match="do not tile"):
        windows.process(odd)
    other_k = _records(make_panes, holdout.iloc[:5], T0, 5.0)[0].replace(b"k=200", b"k=100")
    with pytest.raises(DataError):
        windows.process(other_k)
    assert windows.panes == {}
    assert windows.clocks == {}


def _errors(profile: ReferenceProfile) -> ErrorWindows:
    return ErrorWindows(window_specs(SETTINGS), SETTINGS, profile, {}, {})


def test_realised_error_per_window_of_sale_time(profile: ReferenceProfile) -> None:
    windows = _errors(profile)
    assert windows.width == 60.0
    for i in range(60):
        assert not windows.process("v1", T0 + i, predicted=110.0, actual=100.0).closed_errors
    outcome = windows.process("v1", T0 + 130, predicted=90.0, actual=100.0)
    (summary,) = [s for s in outcome.closed_errors if s.window.name == "1m"]
    assert summary.window.start == T0
    assert summary.errors.sales == 60
    assert summary.errors.mae_dollars == pytest.approx(10.0)
    assert summary.errors.mape == pytest.approx(0.1)
    assert summary.key == f"realised_error/1m/{unix_rfc3339(T0)}/v1".encode()
    late = windows.process("v1", T0 + 5, predicted=1.0, actual=2.0)
    assert late.admission is not None
    assert [w.name for w in late.admission.dropped] == ["1m", "2m"]
    assert not math.isnan(summary.errors.mape)
    assert summary.target is None  # 60 sales: under min_events, no target drift
    assert summary.record().target is None


@pytest.mark.parametrize(("factor", "drifting"), [(1.0, False), (1.6, True)])
def test_target_drift_compares_sale_prices_with_the_training_prices(
    profile: ReferenceProfile, training: pd.DataFrame, factor: float, drifting: bool
) -> None:
    windows = _errors(profile)
    prices = training["sale_price"].to_numpy(dtype=np.float64)[:600] * factor
    for i, price in enumerate(prices):  # 10 sales a second for 60 s
        windows.process("v1", T0 + i / 10, predicted=price, actual=price)
    outcome = windows.process("v1", T0 + 130, predicted=1.0, actual=1.0)
    (summary,) = [s for s in outcome.closed_errors if s.window.name == "1m"]
    assert summary.errors.sales == 600
    target = summary.target
    assert target is not None
    assert target.drifting is drifting
    assert (target.score > 1) is drifting
    record = summary.record()
    assert record.target is not None
    assert record.target.drifting is drifting
