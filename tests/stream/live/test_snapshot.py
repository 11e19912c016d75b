"""Snapshots of the real metric pages: what each says, two scorers' pages summed, and the window
the view shows."""

from __future__ import annotations

import numpy as np
import pytest

from stream.contract.features import FEATURES
from stream.live.snapshot import Snapshot, latest_window, worst_features
from stream.live.view import scorer_lags
from tests.stream.live.helpers import (
    QUANTILES,
    REFERENCE,
    WINDOW_END,
    families,
    scorer_metrics,
    two_scorer_snapshots,
)


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


def test_two_scorer_pages_are_summed_and_each_lag_is_kept() -> None:
    busy, idle = scorer_metrics(), scorer_metrics()
    busy.events_consumed.inc(600)
    idle.events_consumed.inc(400)  # scored before the rebalance that left it idle
    busy.predictions.labels("v1").inc(590)
    idle.predictions.labels("v1").inc(395)
    busy.scoring_errors.labels("invalid_json").inc(2)
    idle.scoring_errors.labels("invalid_json").inc(3)
    busy.observe_event_lags(np.full(10, 0.2))
    idle.observe_event_lags(np.full(30, 0.2))
    busy.keep_only_partitions([("listings", 0), ("listings", 1)])
    busy.set_lag("listings", 0, 7)
    busy.set_lag("listings", 1, 5)
    idle.keep_only_partitions([])
    pages = {"scorer": families(busy.registry), "scorer-2": families(idle.registry)}
    snap = Snapshot.from_pages(pages, None)
    assert snap.scorer_up
    assert snap.events_consumed == 1_000
    assert snap.predictions == 985
    assert snap.dead_letters["invalid_json"] == 5
    assert snap.event_lag_buckets[-1] == (float("inf"), 40)
    assert snap.consumer_lag == {("scorer", "listings"): 12}
    assert snap.scorer_lag == {"scorer": 12, "scorer-2": 0}
    assert snap.scorer_partitions == {"scorer": 2, "scorer-2": 0}
    assert scorer_lags(snap) == "scorer 12, scorer-2 0 (idle)"
    # One page down: the sums are not shown (they would read as a reset), each lag still is.
    down = Snapshot.from_pages({"scorer": pages["scorer"], "scorer-2": None}, None)
    assert not down.scorer_up
    assert down.events_consumed is None
    assert scorer_lags(down) == "scorer 12, scorer-2 down"
    # One scorer: no per-scorer list, the page as it is.
    alone = Snapshot.from_pages({"scorer": pages["scorer"]}, None)
    assert alone.events_consumed == 600
    assert scorer_lags(alone) is None
