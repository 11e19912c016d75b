"""Merging pane partials, drift statistics on sketches, and the summary of a closed window."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from scipy import stats

from consumers.panes import PaneBook
from stream.aggregate.drift import MAX_CATEGORIES, OTHER
from stream.aggregate.policy import DriftPolicy
from stream.aggregate.summary import WindowAggregate, summarise
from stream.aggregate.windows import Window
from stream.contract.features import FEATURES, NUMERIC_FEATURES
from stream.contract.panes import decode_pane
from stream.contract.sketch import QuantileSketch
from stream.contract.windows import QUANTILES
from stream.model.profile import ReferenceProfile, decile_edges
from stream.stats.drift import UNSEEN, bin_fractions, ks_from_sketches, psi
from tests.stream.aggregate.conftest import VERSION, PaneMaker, fold_rows

WINDOW = Window(60.0, "1m", 0.0, VERSION)


def test_merged_panes_equal_a_sketch_of_the_union_within_rank_error() -> None:
    rng = np.random.default_rng(1)
    parts = [rng.lognormal(12, 0.4 + 0.05 * i, size=5_000) for i in range(12)]
    merged = QuantileSketch.merged(QuantileSketch.of(p) for p in parts)
    union = np.sort(np.concatenate(parts))
    assert merged.n == union.size
    ranks = np.linspace(0.01, 0.99, 99)
    for rank, value in zip(ranks, merged.quantiles(ranks), strict=True):
        true_rank = np.searchsorted(union, value, side="right") / union.size
        assert abs(true_rank - rank) <= merged.rank_error, (rank, true_rank)


def test_window_aggregate_merges_every_pane(holdout: pd.DataFrame, make_panes: PaneMaker) -> None:
    rows = holdout.iloc[:600]
    seconds = np.arange(len(rows), dtype=np.float64) * 0.1  # 60 s of event time
    panes = [decode_pane(raw) for raw in make_panes(rows, seconds)]
    assert len(panes) == 6
    aggregate = WindowAggregate.of(panes, k=200)
    assert aggregate.events == 600
    assert aggregate.panes == 6
    assert aggregate.sketches.prediction.n == 600
    for name in FEATURES:
        assert aggregate.sketches.missing[name] == int(rows[name].isna().sum()), name
    assert (
        sum(aggregate.sketches.categories["neighbourhood"].values())
        == rows["neighbourhood"].count()
    )
    whole = QuantileSketch.of(rows["sale_price"].to_numpy(dtype=np.float64))
    error = whole.rank_error + aggregate.sketches.prediction.rank_error
    for rank, value in zip(
        QUANTILES, aggregate.sketches.prediction.quantiles(QUANTILES), strict=True
    ):
        true_rank = whole.cdf([value], inclusive=True)[0]
        assert abs(true_rank - rank) <= error


def test_psi_of_a_sample_against_itself_is_small_and_against_a_shifted_copy_large() -> None:
    values = np.random.default_rng(2).lognormal(12, 0.4, size=20_000)
    reference = QuantileSketch.of(values)
    edges = decile_edges(values)

    def sketch_psi(current: QuantileSketch) -> float:
        ref, cur = bin_fractions(reference, edges), bin_fractions(current, edges)
        return psi(ref, cur, reference_rows=reference.n, events=current.n)

    assert sketch_psi(QuantileSketch.of(values)) < 0.02
    assert sketch_psi(QuantileSketch.of(values * 1.3)) > 0.25


@pytest.mark.parametrize("shift", [0.0, 0.1, 0.5])
def test_ks_matches_scipy_within_the_sketch_error(shift: float) -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(0, 1, size=30_000)
    b = rng.normal(shift, 1, size=20_000)
    sa, sb = QuantileSketch.of(a), QuantileSketch.of(b)
    exact = stats.ks_2samp(a, b).statistic
    assert abs(ks_from_sketches(sa, sb) - exact) <= sa.rank_error + sb.rank_error


def _aggregate(rows: pd.DataFrame) -> WindowAggregate:
    book = PaneBook(60.0, VERSION)
    fold_rows(book, rows, np.zeros(len(rows)))
    return WindowAggregate.of(book.drain(), k=200)


def test_summary_of_a_window_like_the_reference(
    profile: ReferenceProfile, training: pd.DataFrame, policy: DriftPolicy
) -> None:
    summary = summarise(WINDOW, _aggregate(training), profile, policy)
    drift = summary.drift
    assert drift is not None
    assert summary.quantiles is not None
    assert drift.prediction.psi.statistic < 0.02
    assert drift.prediction.ks < 0.03
    assert drift.prediction.score < 0.1
    assert drift.drifting == ()
    assert drift.causes == ()
    assert drift.drifting_share == 0.0
    reference = profile.prediction.sketch
    for q in QUANTILES:  # each window quantile sits at the same rank of the reference
        rank = reference.cdf([summary.quantiles[q]], inclusive=True)[0]
        assert abs(rank - q) <= 2 * reference.rank_error, q
    for name in NUMERIC_FEATURES:
        # 0.05, not 0.02: full_baths has a 0.45 % bin (6 rows below 1) that the randomised KLL
        # compaction can empty in the window's sketch, which alone adds ~0.02.
        assert drift.features[name].psi.statistic < 0.05, name
        assert drift.features[name].ks <= drift.features[name].ks_critical, name
        assert drift.features[name].score < 0.25, name
    assert drift.features["neighbourhood"].unseen_rate == 0.0
    assert math.isnan(drift.features["living_area_sqft"].unseen_rate)


def test_summary_flags_what_moved(
    profile: ReferenceProfile, training: pd.DataFrame, policy: DriftPolicy
) -> None:
    expensive = training[training["sale_price"] > training["sale_price"].quantile(0.75)].copy()
    expensive["neighbourhood"] = ["Atlantis"] * 50 + list(expensive["neighbourhood"][50:])
    summary = summarise(WINDOW, _aggregate(expensive), profile, policy)
    drift = summary.drift
    assert drift is not None
    assert drift.prediction.psi.statistic > 0.25
    assert drift.prediction.drifting
    assert "living_area_sqft" in drift.drifting
    assert 0 < drift.drifting_share <= 1
    assert drift.features["neighbourhood"].unseen_rate == pytest.approx(50 / len(expensive))
    # Living area has the largest score x importance of the drifting features: named first.
    assert drift.causes[0].feature == "living_area_sqft"
    assert 1 <= len(drift.causes) <= 3
    assert all(drift.features[c.feature].drifting for c in drift.causes)
    record = orjson.loads(summary.to_record())
    assert record["kind"] == "drift"
    assert record["window"] == "1m"
    assert record["start"] == "1970-01-01T00:00:00Z"
    assert record["model_version"] == VERSION
    assert record["prediction"]["psi"] == pytest.approx(drift.prediction.psi.statistic)
    assert record["prediction"]["score"] == pytest.approx(drift.prediction.score)
    assert record["prediction"]["drifting"] is True
    living = record["features"]["living_area_sqft"]
    assert living["ks"] > living["ks_critical"] > 0
    assert living["score"] == pytest.approx(min(living["psi"] / 0.2, living["noise"]))
    assert living["noise"] > 1
    assert record["features"]["neighbourhood"]["ks"] is None  # NaN: not a numeric feature
    assert record["likely_causes"][0]["feature"] == "living_area_sqft"
    # No counts folded (the test's pane book was given no flags): 0 out of range, per feature.
    assert living["out_of_range_rate"] == 0.0
    assert record["features"]["neighbourhood"]["out_of_range_rate"] is None
    assert record["false_alarm_level"] == pytest.approx(policy.alpha)
    assert record["psi_threshold"] == 0.2
    assert summary.key == f"drift/1m/1970-01-01T00:00:00Z/{VERSION}".encode()


def test_exported_shares_are_the_ones_psi_was_computed_from(
    profile: ReferenceProfile, training: pd.DataFrame, policy: DriftPolicy
) -> None:
    expensive = training[training["sale_price"] > training["sale_price"].quantile(0.75)].copy()
    expensive["neighbourhood"] = ["Atlantis"] * 50 + list(expensive["neighbourhood"][50:])
    summary = summarise(WINDOW, _aggregate(expensive), profile, policy)
    record = orjson.loads(summary.to_record())
    exported = record["distributions"]
    assert set(exported["features"]) == set(FEATURES)
    pairs: list[tuple[Any, Any, tuple[float, ...] | None]] = [
        (exported["prediction"], record["prediction"]["psi"], profile.prediction.bin_edges)
    ]
    pairs += [
        (
            exported["features"][name],
            record["features"][name]["psi"],
            profile.numeric[name].bin_edges if name in NUMERIC_FEATURES else None,
        )
        for name in FEATURES
    ]
    capped = 0
    events, rows = len(expensive), len(training)
    for shares, value, edges in pairs:
        # Shares of every row: the values' bins and the missing ones add up to 1.
        assert sum(shares["reference"]) + shares["reference_missing"] == pytest.approx(1, abs=1e-5)
        assert sum(shares["current"]) + shares["current_missing"] == pytest.approx(1, abs=1e-5)
        assert len(shares["current"]) == len(shares["reference"])
        recomputed = psi(
            [*shares["reference"], shares["reference_missing"]],
            [*shares["current"], shares["current_missing"]],
            reference_rows=rows,
            events=events,
        )
        if edges is not None:  # numeric: the profile's bins, every one of them
            assert shares["edges"] == list(edges)
            assert len(shares["reference"]) == len(edges) + 1
            assert recomputed == pytest.approx(value, abs=1e-3)
        elif shares["categories"][-1] == OTHER:  # merging bins can only lower PSI
            capped += 1
            assert len(shares["categories"]) == MAX_CATEGORIES + 1
            assert recomputed <= value + 1e-4
        else:
            assert recomputed == pytest.approx(value, abs=1e-3)
    assert capped >= 1  # neighbourhood has ~28 categories
    neighbourhood = exported["features"]["neighbourhood"]
    unseen = neighbourhood["categories"].index(UNSEEN)
    assert neighbourhood["reference"][unseen] == 0.0
    assert neighbourhood["current"][unseen] == pytest.approx(50 / len(expensive), abs=1e-6)
    # The drift shows in the bars: the top decile of living area holds far more than 10 %.
    living = exported["features"]["living_area_sqft"]
    assert living["current"][-1] > 2 * living["reference"][-1]


def test_a_window_under_min_events_has_counts_only(
    profile: ReferenceProfile, training: pd.DataFrame, policy: DriftPolicy
) -> None:
    summary = summarise(WINDOW, _aggregate(training.iloc[:199]), profile, policy)
    assert summary.events == 199
    assert summary.panes == 1
    assert summary.drift is None
    assert summary.quantiles is None
    record = orjson.loads(summary.to_record())
    assert record["events"] == 199
    assert record["prediction"] is None
    assert record["features"] is None
    assert record["distributions"] is None
    assert record["reference_quantiles"]["0.5"] > 0
