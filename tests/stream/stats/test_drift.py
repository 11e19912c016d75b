"""Drift statistics on sketches: PSI over the reference's bins, KS within the sketches' rank
error of the exact statistic, category PSI and the unseen rate."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import ks_2samp

from stream.contract.sketch import QuantileSketch
from stream.model.profile import decile_edges
from stream.stats.drift import bin_fractions, ks_from_sketches, psi
from tests.stream.conftest import Sample


def test_psi_of_shares() -> None:
    sizes = {"reference_rows": 1_000, "events": 100}
    assert psi([0.5, 0.5], [0.5, 0.5], **sizes) == 0.0
    expected = (0.7 - 0.5) * math.log(0.7 / 0.5) + (0.3 - 0.5) * math.log(0.3 / 0.5)
    assert psi([0.5, 0.5], [0.7, 0.3], **sizes) == pytest.approx(expected)
    # An empty bin counts as half an event of its window (0.005 of 100), not as infinity.
    half = (0.995 - 0.5) * math.log(0.995 / 0.5) + (0.005 - 0.5) * math.log(0.005 / 0.5)
    assert psi([0.5, 0.5], [1.0, 0.0], **sizes) == pytest.approx(half, rel=0.01)
    # A bin no side fills carries nothing; one the reference never filled is half a row of it.
    assert psi([0.5, 0.5, 0.0], [0.5, 0.5, 0.0], **sizes) == 0.0
    assert psi([0.5, 0.5, 0.0], [0.45, 0.45, 0.1], **sizes) > 0.25
    assert math.isnan(psi([0.5, 0.5], [math.nan, math.nan], **sizes))
    with pytest.raises(ValueError, match="same 1-d shape"):
        psi([0.5, 0.5], [1.0], **sizes)


def test_bin_fractions_sum_to_one(prices: Sample) -> None:
    values = prices(5_000)
    fractions = bin_fractions(QuantileSketch.of(values), decile_edges(values))
    assert len(fractions) == 10
    assert fractions.sum() == pytest.approx(1.0)
    assert np.all(np.abs(fractions - 0.1) <= 0.03)


def _sketch_psi(
    reference: QuantileSketch, current: QuantileSketch, edges: tuple[float, ...]
) -> float:
    return psi(
        bin_fractions(reference, edges),
        bin_fractions(current, edges),
        reference_rows=reference.n,
        events=current.n,
    )


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift(prices: Sample) -> None:
    reference_values = prices(5_000)
    reference = QuantileSketch.of(reference_values)
    edges = decile_edges(reference_values)
    assert _sketch_psi(reference, QuantileSketch.of(reference_values), edges) < 0.02
    # An independent sample of the same distribution: sampling noise (about 9/1,400 = 0.006 on
    # average for 10 bins) plus each sketch's rank error in every bin fraction; 0.05 holds
    # with a wide margin, and a 25 % shift is far above it either way.
    assert _sketch_psi(reference, QuantileSketch.of(prices(2_000)), edges) < 0.05
    shifted = QuantileSketch.of(reference_values * 1.25)
    assert _sketch_psi(reference, shifted, edges) > 0.25


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


def test_an_empty_window_has_no_drift_value() -> None:
    empty = QuantileSketch.empty()
    assert math.isnan(ks_from_sketches(empty, QuantileSketch.of([1.0])))
    assert math.isnan(_sketch_psi(QuantileSketch.of([1.0]), empty, (0.5,)))
