"""Drift statistics between a reference (training) distribution and a current window.

* PSI (population stability index): ``sum((a - e) * ln(a / e))`` over bins, with fractions
  clipped to ``eps`` so an empty bin does not make it infinite. Common reading: < 0.1 stable,
  0.1-0.25 moderate shift, > 0.25 a real shift.
* KS: the largest distance between two CDFs, read from the two quantile sketches.

Every function here is pure. An empty input gives NaN: a window with nothing in it has no drift
value, and the caller decides how many events a value needs before it is exported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from stream.contract.sketch import QuantileSketch

#: Floor for a bin's fraction in PSI: 1e-4 keeps one empty bin's term to a few units, not inf.
DEFAULT_EPS: Final = 1e-4
#: The bucket that collects categories the reference never saw, in :func:`category_psi`.
UNSEEN: Final = "<unseen>"

FloatArray = npt.NDArray[np.float64]


def psi(
    expected: Sequence[float] | FloatArray,
    actual: Sequence[float] | FloatArray,
    eps: float = DEFAULT_EPS,
) -> float:
    """PSI between two vectors of bin fractions (each summing to ~1), bins in the same order.

    ``eps`` (default 1e-4) floors every fraction before the logarithm.
    """
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape or e.ndim != 1:
        raise ValueError(f"expected and actual need the same 1-d shape, got {e.shape}, {a.shape}")
    if e.size == 0 or not (np.isfinite(e).all() and np.isfinite(a).all()):
        return math.nan
    e = np.clip(e, eps, None)
    a = np.clip(a, eps, None)
    return float(np.sum((a - e) * np.log(a / e)))


def sample_psi(
    expected: Sequence[float] | FloatArray,
    actual: Sequence[float] | FloatArray,
    *,
    reference_rows: float,
    events: float,
) -> float:
    """PSI between the shares of a reference of ``reference_rows`` and a window of ``events``.

    An empty bin counts as half an observation of its own sample (``0.5 / n``), not as a fixed
    ``eps``: a fixed floor makes one empty bin of a small window worth ``e * ln(e / eps)`` (0.69
    for a 10 % bin), far more than its sampling noise, while half a count keeps small windows
    within the chi-square bound :mod:`stream.stats.decision` compares them with. A bin empty on
    both sides carries no information and is left out. NaN if a share is NaN.
    """
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape or e.ndim != 1:
        raise ValueError(f"expected and actual need the same 1-d shape, got {e.shape}, {a.shape}")
    if e.size == 0 or not (np.isfinite(e).all() and np.isfinite(a).all()):
        return math.nan
    used = (e > 0) | (a > 0)
    e = np.maximum(e[used], 0.5 / reference_rows)
    a = np.maximum(a[used], 0.5 / events)
    return float(np.sum((a - e) * np.log(a / e)))


def bin_fractions(sketch: QuantileSketch, bin_edges: Sequence[float] | FloatArray) -> FloatArray:
    """Share of the sketch's values in each of the ``len(bin_edges) + 1`` bins.

    Bins are ``(-inf, e0), [e0, e1), ..., [e_last, +inf)``: left-closed, so a discrete value that
    is an edge falls in the bin it opens. All NaN if the sketch is empty.
    """
    cumulative = sketch.cdf(bin_edges)
    return np.diff(cumulative, prepend=0.0)


def psi_from_sketches(
    reference: QuantileSketch,
    current: QuantileSketch,
    bin_edges: Sequence[float] | FloatArray,
    eps: float = DEFAULT_EPS,
) -> float:
    """PSI of ``current`` against ``reference`` over the reference's bin edges (its deciles).

    Each bin fraction carries the sketches' rank error (~1.3 % each at k=200): small next to the
    10 % bins, so a PSI well under 0.1 is not made to look like drift by the sketch.
    """
    return psi(bin_fractions(reference, bin_edges), bin_fractions(current, bin_edges), eps)


def ks_from_sketches(reference: QuantileSketch, current: QuantileSketch) -> float:
    """Two-sample Kolmogorov-Smirnov statistic ``max |F_ref(x) - F_cur(x)|`` from two sketches.

    Both sketched CDFs are step functions that only step at retained values, so their largest
    difference is found exactly by evaluating at the union of both sketches' retained values.
    Each sketched CDF is within its ``rank_error`` of the true one (with 99 % confidence), so the
    result is within ``reference.rank_error + current.rank_error`` (~0.027 at k=200) of the exact
    statistic on the raw values; exact while neither sketch has compacted (small n).
    NaN if either sketch is empty.
    """
    if reference.is_empty or current.is_empty:
        return math.nan
    points = np.union1d(reference.retained_values(), current.retained_values())
    # inclusive=True: F(x) = share of values <= x, the textbook empirical CDF; drop the final 1.0.
    ref_cdf = reference.cdf(points, inclusive=True)[:-1]
    cur_cdf = current.cdf(points, inclusive=True)[:-1]
    return float(np.max(np.abs(ref_cdf - cur_cdf)))


def category_psi(
    reference_frequencies: Mapping[str, float],
    current_counts: Mapping[str, int],
    eps: float = DEFAULT_EPS,
) -> float:
    """PSI of a window's category counts against the reference's category frequencies.

    Bins are the reference categories plus one :data:`UNSEEN` bin for every category the
    reference never saw (its expected share is 0, floored to ``eps``). Missing values are not a
    category: count them apart (the missing rate). NaN if ``current_counts`` sums to 0.
    """
    _, expected, actual = category_fractions(reference_frequencies, current_counts)
    return psi(expected, actual, eps)


def category_fractions(
    reference_frequencies: Mapping[str, float], current_counts: Mapping[str, int]
) -> tuple[tuple[str, ...], FloatArray, FloatArray]:
    """The bins :func:`category_psi` compares: the reference categories (sorted) and
    :data:`UNSEEN` last, with the reference's and the window's share in each.

    The reference's share of :data:`UNSEEN` is 0; the window's shares are all NaN if
    ``current_counts`` sums to 0.
    """
    categories = sorted(reference_frequencies)
    expected = np.array([*(reference_frequencies[c] for c in categories), 0.0], dtype=np.float64)
    total = sum(current_counts.values())
    if total <= 0:
        return (*categories, UNSEEN), expected, np.full(expected.size, np.nan)
    seen = [current_counts.get(c, 0) for c in categories]
    actual = np.array([*seen, total - sum(seen)], dtype=np.float64) / total
    return (*categories, UNSEEN), expected, actual


def unseen_rate(
    reference_frequencies: Mapping[str, float], current_counts: Mapping[str, int]
) -> float:
    """Share of the window's (non-missing) values whose category the reference never saw."""
    total = sum(current_counts.values())
    if total <= 0:
        return math.nan
    unseen = sum(n for c, n in current_counts.items() if c not in reference_frequencies)
    return unseen / total
