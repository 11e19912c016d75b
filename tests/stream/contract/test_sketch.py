"""Quantile sketches: merge within the rank error, NaN when empty, bytes with their state key."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from datasketches import kll_doubles_sketch

from stream.contract.sketch import DEFAULT_K, QuantileSketch, SketchError, state_key_for
from tests.stream.conftest import Sample


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
