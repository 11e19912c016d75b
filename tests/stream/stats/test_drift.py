"""Drift statistics on sketches: PSI over the reference's bins, KS within the sketches' rank
error of the exact statistic, category PSI and the unseen rate."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import ks_2samp

from stream.contract.sketch import QuantileSketch
from stream.model.profile import decile_edges
from stream.stats.drift import (
    bin_fractions,
    category_psi,
    ks_from_sketches,
    psi,
    psi_from_sketches,
    unseen_rate,
)
from tests.stream.conftest import Sample


def test_psi_of_fractions() -> None:
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    expected = (0.7 - 0.5) * math.log(0.7 / 0.5) + (0.3 - 0.5) * math.log(0.3 / 0.5)
    assert psi([0.5, 0.5], [0.7, 0.3]) == pytest.approx(expected)
    # An empty bin is floored to eps instead of making the index infinite.
    assert math.isfinite(psi([0.5, 0.5], [1.0, 0.0]))
    with pytest.raises(ValueError, match="same 1-d shape"):
        psi([0.5, 0.5], [1.0])


def test_bin_fractions_sum_to_one(prices: Sample) -> None:
    values = prices(5_000)
    fractions = bin_fractions(QuantileSketch.of(values), decile_edges(values))
    assert len(fractions) == 10
    assert fractions.sum() == pytest.approx(1.0)
    assert np.all(np.abs(fractions - 0.1) <= 0.03)


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift(prices: Sample) -> None:
    reference_values = prices(5_000)
    reference = QuantileSketch.of(reference_values)
    edges = decile_edges(reference_values)
    assert psi_from_sketches(reference, QuantileSketch.of(reference_values), edges) < 0.02
    # An independent sample of the same distribution: sampling noise (about 9/1,400 = 0.006 on
    # average for 10 bins) plus each sketch's rank error in every bin fraction; 0.05 holds
    # with a wide margin, and a 25 % shift is far above it either way.
    assert psi_from_sketches(reference, QuantileSketch.of(prices(2_000)), edges) < 0.05
    shifted = QuantileSketch.of(reference_values * 1.25)
    assert psi_from_sketches(reference, shifted, edges) > 0.25


@pytest.mark.parametrize(("scale", "n_current"), [(1.0, 2_000), (1.05, 3_000), (1.3, 500)])
def test_ks_is_within_sketch_error_of_scipy(prices: Sample, scale: float, n_current: int) -> None:
    reference_values = prices(20_000)
    current_values = prices(n_current) * scale
    reference = QuantileSketch.of(reference_values)
    current = QuantileSketch.of(current_values)
    exact = float(ks_2samp(reference_values, current_values).statistic)
    bound = reference.rank_error + current.rank_error
    assert abs(ks_from_sketches(reference, current) - exact) <= bound


def test_ks_is_exact_before_the_sketches_compact() -> None:
    a = np.array([1.0, 2.0, 3.0, 4.0])
    b = np.array([3.0, 4.0, 5.0, 6.0])
    assert ks_from_sketches(QuantileSketch.of(a), QuantileSketch.of(b)) == pytest.approx(0.5)


def test_category_psi_and_unseen_rate() -> None:
    reference = {"a": 0.5, "b": 0.3, "c": 0.2}
    assert category_psi(reference, {"a": 50, "b": 30, "c": 20}) == pytest.approx(0.0)
    assert category_psi(reference, {"a": 20, "b": 30, "c": 50}) > 0.25
    # A category the reference never saw is its own bin with an expected share of ~0.
    assert category_psi(reference, {"a": 45, "b": 27, "c": 18, "zzz": 10}) > 0.25
    assert unseen_rate(reference, {"a": 45, "b": 27, "c": 18, "zzz": 10}) == pytest.approx(0.1)
    assert math.isnan(category_psi(reference, {}))
    assert math.isnan(unseen_rate(reference, {"a": 0}))


def test_an_empty_window_has_no_drift_value() -> None:
    empty = QuantileSketch.empty()
    assert math.isnan(ks_from_sketches(empty, QuantileSketch.of([1.0])))
    assert math.isnan(psi_from_sketches(QuantileSketch.of([1.0]), empty, [0.5]))
