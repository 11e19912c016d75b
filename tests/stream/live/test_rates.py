"""Rates and event-lag quantiles from two snapshots, counter resets, a scorer that is down, and
Prometheus's histogram_quantile."""

from __future__ import annotations

import numpy as np
import pytest

from stream.live.rates import compute_rates, histogram_quantile
from stream.live.snapshot import Snapshot
from tests.stream.live.helpers import families, scorer_metrics, two_scorer_snapshots


def test_rates_and_lag_quantiles_come_from_the_increase_between_snapshots() -> None:
    before, after, _ = two_scorer_snapshots()
    rates = compute_rates(before, after, 2.0)
    assert rates.events_in == pytest.approx(50.0)
    assert rates.predictions_out == pytest.approx(48.0)
    assert rates.dead_letters == pytest.approx(2.0)
    assert {k: v for k, v in rates.dead_letters_by_reason.items() if v} == {
        "invalid_json": 3,
        "out_of_range": 1,
    }
    # 60 lags in (0.025, 0.05], 40 in (0.1, 0.25]; the 1,000 older ones at 5 s do not count.
    assert rates.lag_p50_s == pytest.approx(0.025 + 0.025 * 50 / 60)
    assert rates.lag_p99_s == pytest.approx(0.1 + 0.15 * 39 / 40)


def test_a_restarted_scorer_counts_from_zero_and_a_down_one_has_no_rates() -> None:
    _, after, aggregate_only = two_scorer_snapshots()
    restarted = scorer_metrics()
    restarted.events_consumed.inc(30)
    restarted.observe_event_lags(np.full(10, 0.2))
    fresh = Snapshot.from_families(families(restarted.registry), None)
    rates = compute_rates(after, fresh, 2.0)
    assert rates.events_in == pytest.approx(15.0)
    assert rates.predictions_out == 0.0
    assert rates.lag_p50_s == pytest.approx(0.1 + 0.15 * 0.5)
    down = compute_rates(after, aggregate_only, 2.0)
    assert (down.events_in, down.dead_letters, down.lag_p99_s) == (None, None, None)
    with pytest.raises(ValueError, match="elapsed_s must be positive"):
        compute_rates(after, after, 0.0)


def test_histogram_quantile_follows_prometheus() -> None:
    inf = float("inf")
    assert histogram_quantile(0.5, [(1.0, 0.0), (inf, 0.0)]) is None
    assert histogram_quantile(0.5, [(1.0, 10.0), (2.0, 30.0), (inf, 30.0)]) == pytest.approx(1.25)
    # In the +Inf bucket: the highest finite bound.
    assert histogram_quantile(0.99, [(1.0, 10.0), (2.0, 10.0), (inf, 20.0)]) == 2.0
