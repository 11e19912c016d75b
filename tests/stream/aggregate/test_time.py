"""The windows and the service's clock, with dict tables and ``now`` passed in (no sleep):
panes and sales from the future are dropped, a blinded restored state heals, silence closes
the open windows and clears the gauges, traffic after a silence is counted."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry

from stream.aggregate.aggregator import ErrorWindows, PaneWindows
from stream.aggregate.metrics import AggregateMetrics
from stream.aggregate.timed import Outcome
from stream.aggregate.windows import window_specs
from stream.contract.panes import decode_pane
from stream.model.profile import ReferenceProfile
from stream.settings import AggregateSettings
from tests.stream.aggregate.conftest import VERSION, PaneMaker

SETTINGS = AggregateSettings(
    tumbling_seconds=60,
    hopping_seconds=120,
    hop_seconds=60,
    allowed_lateness_seconds=10,
    idle_seconds=30,
)
SPECS = window_specs(SETTINGS)
T0 = 1_800_000_000.0  # a multiple of 60 s; "now" in these tests
SKEW = 300.0
DELAY = 2.0  # a pane is taken this long (wall time) after it starts
FUTURE = datetime(2999, 1, 1, tzinfo=UTC).timestamp()


def _panes(make_panes: PaneMaker, rows: pd.DataFrame, start: float, seconds: float) -> list[bytes]:
    """Pane records (10 s) of ``rows`` spread evenly over ``seconds`` from ``start``."""
    return make_panes(rows, start + np.arange(len(rows)) * (seconds / len(rows)))


def _feed(windows: PaneWindows, records: list[bytes]) -> list[Outcome]:
    """Each record taken DELAY after its pane started, as live traffic is."""
    return [windows.process(raw, decode_pane(raw).start + DELAY) for raw in records]


def _silence(
    windows: PaneWindows | ErrorWindows, last: float, seconds: int = 900
) -> tuple[list[Outcome], float | None]:
    """The app's timer for ``seconds`` of silence after wall time ``last``: every second, a tick
    for the version when it is due. The outcomes, and when the ticks stopped (None: never)."""
    outcomes: list[Outcome] = []
    stopped = None
    for wall in range(int(last) + 1, int(last) + seconds + 1):
        if windows.due_for_tick(wall) == [VERSION]:
            outcomes.append(windows.idle(VERSION, wall))
            stopped = None
        elif outcomes and stopped is None:
            stopped = wall
    return outcomes, stopped


def _metrics() -> tuple[AggregateMetrics, CollectorRegistry]:
    registry = CollectorRegistry()
    names = [spec.name for spec in SPECS]
    return AggregateMetrics(registry, names, process_collectors=False), registry


def _export(metrics: AggregateMetrics, outcomes: list[Outcome]) -> None:
    """What the app does with an outcome's windows, on the gauges."""
    for outcome in outcomes:
        for summary in outcome.closed:
            metrics.window_closed(summary)
        for window in outcome.emptied:
            metrics.window_empty(window)
        for errors in outcome.closed_errors:
            metrics.errors_closed(errors)
        for window in outcome.emptied_errors:
            metrics.errors_empty(window)


def test_a_pane_from_the_future_is_dropped_and_the_watermark_stays(
    profile: ReferenceProfile, holdout: pd.DataFrame, make_panes: PaneMaker
) -> None:
    windows = PaneWindows(SPECS, SETTINGS, profile, {}, {}, skew_s=SKEW)
    (future,) = _panes(make_panes, holdout.iloc[:5], FUTURE, 5.0)
    first = windows.process(future, T0)
    assert (first.future, first.admission, first.closed) == (1, None, [])
    assert windows.clocks == {}  # a version seen only in the future gets no clock
    # Just within the skew is still taken; beyond it is not.
    (near,) = _panes(make_panes, holdout.iloc[:5], T0 + SKEW - 10, 5.0)
    (beyond,) = _panes(make_panes, holdout.iloc[:5], T0 + SKEW + 10, 5.0)
    live = _panes(make_panes, holdout.iloc[:600], T0 - 120, 120.0)
    closed = [s for o in _feed(windows, live) for s in o.closed]
    assert windows.process(beyond, T0).future == 1
    assert windows.process(future, T0).future == 1
    assert windows.process(near, T0).future == 0
    assert {(s.window.name, s.window.start - T0) for s in closed} >= {("1m", -120.0)}


def test_a_blinded_restored_state_is_capped_and_heals(
    profile: ReferenceProfile, holdout: pd.DataFrame, make_panes: PaneMaker
) -> None:
    panes: dict[str, str] = {}
    clocks: dict[str, str] = {}
    # Before the fix: no cap (an infinite skew), and one pane from 2999 arrives.
    blinded = PaneWindows(SPECS, SETTINGS, profile, panes, clocks, skew_s=math.inf)
    _feed(blinded, _panes(make_panes, holdout.iloc[:300], T0 - 300, 60.0))
    (future,) = _panes(make_panes, holdout.iloc[:5], FUTURE, 5.0)
    blinded.process(future, T0)
    live = _panes(make_panes, holdout.iloc[300:900], T0, 120.0)
    assert all(o.admission is not None and not o.admission.accepted for o in _feed(blinded, live))
    # The upgrade: the same tables, now with the cap. The first pane caps the clock and drops
    # the pane from 2999; live windows close again once they end after the capped watermark.
    healed = PaneWindows(SPECS, SETTINGS, profile, panes, clocks, skew_s=SKEW)
    upgrade = T0 + 120
    later = _panes(make_panes, holdout.iloc[:1200], upgrade, 600.0)
    outcomes = _feed(healed, later)
    assert outcomes[0].capped == FUTURE
    assert outcomes[0].future == 1
    assert not any(key.endswith(f"/{FUTURE:.3f}") for key in panes)
    assert all(o.capped is None for o in outcomes[1:])
    closed = [s for o in outcomes for s in o.closed if s.window.name == "1m"]
    assert closed
    assert closed[0].events > 0
    assert closed[0].window.end <= upgrade + DELAY + SKEW + 60


def test_silence_closes_the_open_windows_and_the_gauges_say_no_data(
    profile: ReferenceProfile, holdout: pd.DataFrame, make_panes: PaneMaker
) -> None:
    windows = PaneWindows(SPECS, SETTINGS, profile, {}, {}, skew_s=SKEW)
    metrics, registry = _metrics()
    records = _panes(make_panes, holdout.iloc[:1200], T0, 240.0)  # 5 events/s for 4 minutes
    _export(metrics, _feed(windows, records))
    get = registry.get_sample_value
    tumbling = {"window": "1m", "model_version": VERSION}
    assert (get("appraise_prediction_psi", tumbling) or 0.0) > 0  # windows with drift values
    last = T0 + 230 + DELAY  # wall time the last pane was taken
    assert windows.due_for_tick(last + 29) == []  # not silent long enough yet

    # Silence: one tick a second. The open windows close with their panes, then each kind
    # passes a window without panes: its gauges say there is no data.
    ticks, stopped = _silence(windows, last)
    assert stopped is not None  # settled: the ticks stop by themselves
    closed = [(s.window.name, s.window.start - T0, s.events) for o in ticks for s in o.closed]
    assert ("1m", 180.0, 300) in closed  # the tumbling window open when the traffic stopped
    assert ("2m", 180.0, 300) in closed
    assert {w.name for o in ticks for w in o.emptied} == {"1m", "2m"}
    _export(metrics, ticks)
    for window in ("1m", "2m"):
        labels = {"window": window, "model_version": VERSION}
        assert get("appraise_window_events", labels) == 0
        assert get("appraise_prediction_psi", labels) is None
        assert get("appraise_drifting_features_ratio", labels) is None
        assert get("appraise_prediction_quantile_dollars", {**labels, "quantile": "0.5"}) is None
        assert get("appraise_feature_psi", {**labels, "feature": "living_area_sqft"}) is None

    # Traffic resumes: its panes are counted, not dropped, and its windows close again.
    resumed = _panes(make_panes, holdout.iloc[:600], last + 900 - DELAY, 120.0)
    outcomes = _feed(windows, resumed)
    assert all(o.admission is not None and not o.admission.dropped for o in outcomes)
    assert any(s.events > 0 for o in outcomes for s in o.closed)


def test_realised_error_sales_from_the_future_and_silence(profile: ReferenceProfile) -> None:
    windows = ErrorWindows(SPECS, SETTINGS, profile, {}, {}, skew_s=SKEW, idle_s=30.0)
    metrics, registry = _metrics()
    outcomes = [windows.process(VERSION, T0 + i, 110.0, 100.0, T0 + i + 1) for i in range(90)]
    future = windows.process(VERSION, FUTURE, 110.0, 100.0, T0 + 90)
    assert (future.future, future.admission) == (1, None)
    ticks, stopped = _silence(windows, T0 + 90)
    assert stopped is not None
    outcomes += ticks
    closed = [e for o in outcomes for e in o.closed_errors]
    sales = {(e.window.name, e.window.start - T0): e.errors.sales for e in closed}
    assert sales[("1m", 60.0)] == 30  # closed by the silence, not by a later sale
    assert {w.name for o in outcomes for w in o.emptied_errors} == {"1m", "2m"}
    _export(metrics, outcomes)
    labels = {"window": "1m", "model_version": VERSION}
    get = registry.get_sample_value
    assert get("appraise_realised_error_sales", labels) == 0
    assert get("appraise_realised_error_mae_dollars", labels) is None
    assert get("appraise_realised_error_mape_ratio", labels) is None
