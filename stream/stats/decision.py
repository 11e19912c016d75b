"""Drift decisions that account for sample size: is a statistic material, and beyond noise?

A window of ``M`` events compared with a reference of ``N`` rows never gives PSI 0 or KS 0,
even when nothing changed: both samples are finite. A fixed threshold is therefore too eager on
small windows and blind on large ones. Here each statistic gets the value it would reach by
sampling noise alone at a false-alarm level ``alpha`` (its *critical value*), and counts as
drift only when it is above both that and the effect size a user calls material:

* PSI over ``B`` bins is, to second order, ``sum((a - e)**2 / e)``, and ``M N / (M + N)`` times
  that is Pearson's two-sample chi-square statistic with ``B - 1`` degrees of freedom. So under
  "no drift" ``PSI <= chi2_{1-alpha, B-1} * (1/M + 1/N)`` with probability ``1 - alpha``.
* KS: the two-sample critical value ``c(alpha) * sqrt(1/M + 1/N)`` with
  ``c(alpha) = sqrt(-ln(alpha / 2) / 2)``, the tail of the Kolmogorov distribution.
* A KLL sketch answers every rank within its ``rank_error`` ``eps`` (99 % confidence) once it
  has compacted; an exact sketch (fewer values than its ``k``) has none. The
  Dvoretzky-Kiefer-Wolfowitz inequality gives a sample of ``n_eps = ln(2 / 0.01) / (2 eps**2)``
  values the same bound on its CDF (about 15,000 values at ``k = 200``), so a sketched side
  counts for PSI as one more sampling step of ``n_eps`` values (``1/M + 1/n_eps``), and for KS,
  whose bound is on the same sup distance, ``eps`` is added per sketched side.

The score is the statistic over the larger of the two thresholds, so one rule (``score > 1``)
is right at 5 events a second and at 5,000. For PSI that is ``min(PSI / threshold, noise)``,
where ``noise`` is how far beyond sampling noise the window is, measured with Pearson's statistic
itself (:func:`pearson_statistic` over its chi-square quantile) rather than with PSI's second-order
equal: on small windows PSI's tail is heavier than the chi-square's (an empty 10 % bin adds
``0.1 * ln(0.1 / (0.5 / M))``, 0.29 at M = 100, three times its Pearson term), so PSI over
``psi_critical`` passed 7-21 times as many windows of pure noise as the default level (5.3e-7)
promised at 100 events, while Pearson's statistic, its sparse bins merged (Cochran's rule),
keeps it. Where the approximation holds the two agree: ``noise`` is then PSI over
``psi_critical``, and the score PSI over the larger threshold.
Pure functions; scipy's ``chdtri`` gives the chi-square quantile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy.special import chdtri

#: The confidence of a sketch's ``rank_error`` (DataSketches quotes 99 %).
RANK_ERROR_CONFIDENCE: Final = 0.99
#: Fewest events a bin of Pearson's statistic should expect (Cochran's rule); smaller bins are
#: merged before the statistic is compared with the chi-square distribution.
MIN_EXPECTED: Final = 5.0


def sketch_equivalent_sample(rank_error: float) -> float:
    """How many sampled values have, by the DKW inequality, the CDF error bound of a sketch
    with ``rank_error`` (at :data:`RANK_ERROR_CONFIDENCE`); infinite for an exact sketch."""
    if rank_error <= 0:
        return math.inf
    return math.log(2 / (1 - RANK_ERROR_CONFIDENCE)) / (2 * rank_error**2)


def chi2_quantile(df: int, alpha: float) -> float:
    """The chi-square value exceeded with probability ``alpha`` at ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {df}")
    return float(chdtri(df, alpha))


def psi_critical(
    *, df: int, alpha: float, events: float, reference_rows: float, rank_error: float = 0.0
) -> float:
    """The PSI that sampling noise alone exceeds with probability ``alpha``: a window of
    ``events`` (whose bins came from a sketch with ``rank_error``, 0 if exact) against a
    reference of ``reference_rows``, over bins with ``df + 1`` reference shares above 0."""
    spread = 1 / events + 1 / reference_rows + 1 / sketch_equivalent_sample(rank_error)
    return chi2_quantile(df, alpha) * spread


def pearson_statistic(
    expected: npt.NDArray[np.float64],
    actual: npt.NDArray[np.float64],
    *,
    events: float,
    reference_rows: float,
    rank_error: float = 0.0,
) -> tuple[float, int]:
    """Pearson's two-sample chi-square statistic (homogeneity of the two samples' bins) from
    their shares, and its degrees of freedom.

    ``sum((a - e)**2 / p) / (1/M + 1/N)`` with ``p`` the pooled share, the window's sketch
    counted as in :func:`psi_critical`. Bins the window would expect fewer than
    :data:`MIN_EXPECTED` events in are first merged, smallest first, into groups that reach it
    (Cochran's rule): a category seen once in training and once in a window of 100 would
    otherwise weigh like a strong drift, and the chi-square distribution would not hold. Under
    no drift the statistic then follows it with one degree less than the groups.
    """
    used = (expected > 0) | (actual > 0)
    e, a = expected[used], actual[used]
    pooled = (events * a + reference_rows * e) / (events + reference_rows)
    groups = _groups(pooled * events)
    e = np.array([e[g].sum() for g in groups])
    a = np.array([a[g].sum() for g in groups])
    pooled = np.array([pooled[g].sum() for g in groups])
    spread = 1 / events + 1 / reference_rows + 1 / sketch_equivalent_sample(rank_error)
    return float(np.sum((a - e) ** 2 / pooled) / spread), max(1, len(groups) - 1)


def _groups(counts: npt.NDArray[np.float64]) -> list[list[int]]:
    """Indices of ``counts`` (expected counts per bin) in groups of at least
    :data:`MIN_EXPECTED`: bins that have it alone, the others merged smallest first."""
    groups: list[list[int]] = []
    small: list[int] = []
    held = 0.0
    for i in np.argsort(counts, kind="stable").tolist():
        if not small and counts[i] >= MIN_EXPECTED:
            groups.append([i])
            continue
        small.append(i)
        held += counts[i]
        if held >= MIN_EXPECTED:
            groups.append(small)
            small, held = [], 0.0
    if small:  # what is left under the minimum joins the smallest group that reached it
        if groups:
            groups[0] += small
        else:
            groups.append(small)
    return groups


def ks_coefficient(alpha: float) -> float:
    """``c(alpha)`` of the two-sample KS critical value ``c(alpha) * sqrt(1/M + 1/N)``."""
    return math.sqrt(-math.log(alpha / 2) / 2)


def ks_critical(
    *, alpha: float, values: float, reference_values: float, rank_errors: float = 0.0
) -> float:
    """The KS statistic sampling noise alone exceeds with probability ``alpha`` between
    ``values`` and ``reference_values`` values, plus the sketches' ``rank_errors`` (the sum of
    each sketched side's rank error)."""
    return ks_coefficient(alpha) * math.sqrt(1 / values + 1 / reference_values) + rank_errors


@dataclass(frozen=True, slots=True)
class Verdict:
    """One statistic of one window against its two thresholds.

    ``threshold`` is the effect size a user calls material; ``critical`` what sampling noise
    reaches at the window's false-alarm level. ``noise`` says how far beyond sampling noise the
    window is (above 1: beyond it); for PSI it is Pearson's statistic over its chi-square
    quantile (see the module), by default the statistic over ``critical``. ``score`` is the
    smaller of ``statistic / threshold`` and ``noise``, which is the statistic over the larger of
    the two thresholds: above 1 is drift. A NaN statistic (nothing to compare) has a NaN score
    and no drift.
    """

    statistic: float
    critical: float
    threshold: float
    noise: float | None = None

    @property
    def beyond_noise(self) -> float:
        """How far beyond sampling noise: above 1 is more than noise would reach at the level."""
        return self.statistic / self.critical if self.noise is None else self.noise

    @property
    def bar(self) -> float:
        """The threshold in force: the larger of the material threshold and the statistic this
        window would need to pass the noise bar (the statistic over :attr:`beyond_noise`)."""
        noise = self.beyond_noise
        return max(self.threshold, self.statistic / noise if noise > 0 else math.inf)

    @property
    def score(self) -> float:
        """``min(statistic / threshold, beyond_noise)``: above 1 is drift."""
        if math.isnan(self.statistic):
            return math.nan
        return min(self.statistic / self.threshold, self.beyond_noise)

    @property
    def drifting(self) -> bool:
        """Material and beyond sampling noise (False for a NaN statistic)."""
        return self.score > 1


def per_test_level(days: float, tests_per_day: float) -> float:
    """The false-alarm level of each test so that all tests together raise one false alarm per
    ``days`` on average (Bonferroni: the expected number of false alarms is at most the sum of
    the tests' levels, whatever their dependence)."""
    if days <= 0 or tests_per_day <= 0:
        raise ValueError(f"days and tests per day must be positive, got {days}, {tests_per_day}")
    return 1 / (days * tests_per_day)
