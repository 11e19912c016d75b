"""Snapshots of the real metric pages: what each says, and the window the view shows."""

from __future__ import annotations

import pytest

from stream.contract.features import FEATURES
from stream.live.snapshot import latest_window, worst_features
from tests.stream.live.helpers import QUANTILES, REFERENCE, WINDOW_END, two_scorer_snapshots


def test_a_snapshot_reads_both_pages() -> None:
    _, after, _ = two_scorer_snapshots()
    assert after.scorer_up
    assert after.aggregate_up
    assert after.model_version == "v1"
    assert after.events_consumed == 1_100
    assert after.predictions == 1_076
    assert after.dead_letters["invalid_json"] == 18
    assert after.dead_letters["model_error"] == 0  # every reason is on the page at 0
    assert after.consumer_lag == {
        ("scorer", "listings"): 8,
        ("aggregate", "prediction-panes"): 4,
        ("aggregate", "sales"): 0,
    }
    assert after.event_lag_buckets[-1] == (float("inf"), 1_100)


def test_the_latest_closed_window_with_values_is_shown() -> None:
    _, after, _ = two_scorer_snapshots()
    window = latest_window(after)
    assert window is not None
    # The later 1 m window has no quantiles; the 5 m one ties the other 1 m one and has more
    # events; the old model's window is older.
    assert (window.window, window.model_version, window.end) == ("5m", "v1", WINDOW_END)
    assert window.events == 3_000
    assert window.quantiles == {f"{q:g}": v for q, v in QUANTILES.items()}
    assert window.reference == {f"{q:g}": v for q, v in REFERENCE.items()}
    assert window.drifting_share == pytest.approx(2 / len(FEATURES))
    assert window.prediction_score == pytest.approx(0.1)
    # By drift score, not by PSI: year_built's PSI is higher than lot_area_sqft's, its score
    # (over its critical value 0.4) lower.
    worst = worst_features(window)
    assert [(f.feature, f.psi) for f in worst] == [
        ("zoning", 0.41),
        ("neighbourhood", 0.27),
        ("living_area_sqft", 0.12),
        ("lot_area_sqft", 0.08),
        ("year_built", 0.12),
    ]
    assert [f.score for f in worst] == pytest.approx([2.05, 1.35, 0.6, 0.4, 0.3])
    assert [f.drifting for f in worst_features(window)] == [True, True, False, False, False]
    assert window.causes == (("neighbourhood", 1.35), ("zoning", 2.05))  # by rank
