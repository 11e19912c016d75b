"""Quantile sketches and the drift statistics computed from them."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
from datasketches import kll_doubles_sketch
from scipy.stats import ks_2samp

from stream.drift import (
    bin_fractions,
    category_psi,
    ks_from_sketches,
    psi,
    psi_from_sketches,
    unseen_rate,
)
from stream.profile import decile_edges
from stream.sketches import DEFAULT_K, QuantileSketch, SketchError, state_key_for

Sample = Callable[[int], npt.NDArray[np.float64]]


@pytest.fixture
def prices() -> Sample:
    """A factory of price-like samples (log-normal, median ~$160k), fresh generator per test."""
    rng = np.random.default_rng(42)

    def sample(n: int) -> npt.NDArray[np.float64]:
        return rng.lognormal(mean=12.0, sigma=0.4, size=n)

    return sample


def _true_cdf(
    values: npt.NDArray[np.float64], points: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    ordered = np.sort(values)
    return np.searchsorted(ordered, points, side="left") / len(values)


def test_merged_partials_match_the_union_within_rank_error(prices: Sample) -> None:
    values = prices(100_000)
    partials = [QuantileSketch.of(part) for part in np.array_split(values, 20)]
    merged = QuantileSketch.merged(partials)
    whole = QuantileSketch.of(values)
    assert merged.n == whole.n == len(values)

    points = np.quantile(values, np.linspace(0.01, 0.99, 50))
    exact = _true_cdf(values, points)
    assert np.max(np.abs(merged.cdf(points)[:-1] - exact)) <= merged.rank_error
    assert np.max(np.abs(whole.cdf(points)[:-1] - exact)) <= whole.rank_error
    # Quantiles: the rank of each answer in the real data is within the rank error of the ask.
    ranks = np.array([0.1, 0.5, 0.9, 0.99])
    answered = _true_cdf(values, merged.quantiles(ranks))
    assert np.max(np.abs(answered - ranks)) <= merged.rank_error


def test_merge_refuses_another_state_key() -> None:
    small = QuantileSketch.of([1.0, 2.0], k=100)
    with pytest.raises(SketchError, match=r"kll_doubles:k=100.*kll_doubles:k=200"):
        QuantileSketch.empty().merge(small)


def test_nan_and_infinity_are_skipped() -> None:
    sketch = QuantileSketch.of([1.0, math.nan, 2.0, math.inf, -math.inf, 3.0])
    assert sketch.n == 3
    assert sketch.quantiles([0.0, 1.0]).tolist() == [1.0, 3.0]


def test_empty_sketch_answers_nan() -> None:
    sketch = QuantileSketch.empty()
    assert sketch.is_empty
    assert sketch.n == 0
    assert np.isnan(sketch.quantiles([0.5])).all()
    assert np.isnan(sketch.cdf([1.0])).all()
    assert math.isnan(ks_from_sketches(sketch, QuantileSketch.of([1.0])))
    assert math.isnan(psi_from_sketches(QuantileSketch.of([1.0]), sketch, [0.5]))


def test_serialisation_roundtrip(prices: Sample) -> None:
    sketch = QuantileSketch.of(prices(10_000))
    data = sketch.to_bytes()
    assert data.startswith(b"kll_doubles:k=200\n")
    # Compare bytes before querying: a query sorts the sketch's buffer, which flips a flag byte.
    assert QuantileSketch.from_bytes(data).to_bytes() == data
    copy = QuantileSketch.from_bytes(data)
    assert copy.state_key == sketch.state_key == state_key_for(DEFAULT_K)
    assert copy.n == sketch.n
    ranks = [0.1, 0.5, 0.9]
    assert copy.quantiles(ranks).tolist() == sketch.quantiles(ranks).tolist()
    assert QuantileSketch.from_bytes(QuantileSketch.empty().to_bytes()).is_empty


def test_copy_is_independent() -> None:
    original = QuantileSketch.of([1.0, 2.0])
    copy = original.copy()
    copy.update([3.0])
    assert (original.n, copy.n) == (2, 3)


def test_bytes_of_another_state_key_are_refused() -> None:
    data = QuantileSketch.of([1.0, 2.0, 3.0], k=100).to_bytes()
    with pytest.raises(SketchError, match=r"expected sketch state 'kll_doubles:k=200'.*k=100"):
        QuantileSketch.from_bytes(data)
    assert QuantileSketch.from_bytes(data, k=100).n == 3


def test_bytes_without_a_state_key_are_refused() -> None:
    raw = kll_doubles_sketch(200)
    raw.update(1.0)
    with pytest.raises(SketchError, match="expected sketch state"):
        QuantileSketch.from_bytes(bytes(raw.serialize()))


def test_corrupt_sketch_bytes_are_refused() -> None:
    data = QuantileSketch.of(np.arange(1000.0)).to_bytes()
    with pytest.raises(SketchError, match="corrupt"):
        QuantileSketch.from_bytes(data[:30])


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
