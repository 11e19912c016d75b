"""A window's drift against the reference profile, decided as :mod:`stream.stats.decision` says.

Every feature and the predictions get PSI over the reference's frozen bins, with a bin for
missing values (a feature that stops arriving has drifted) and, for a categorical feature, one
for categories training never saw; numeric ones and the predictions also get KS. Each PSI is
compared with the larger of the material threshold and its critical value at the window's size
and the policy's level (its :class:`~stream.stats.decision.Verdict`): a feature drifts when its
score is above 1. Drifting features are ranked as likely causes by score x importance.

Pure: a sketch bundle and a profile in, a :class:`Drift` out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final

import numpy as np

from stream.aggregate.policy import DriftPolicy
from stream.contract.bundle import SketchBundle
from stream.contract.features import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from stream.contract.sketch import QuantileSketch
from stream.contract.windows import Distribution
from stream.model.profile import NumericReference, ReferenceProfile
from stream.stats.decision import (
    Verdict,
    chi2_quantile,
    ks_critical,
    pearson_statistic,
    psi_critical,
)
from stream.stats.drift import UNSEEN, FloatArray, bin_fractions, ks_from_sketches, psi

#: How many drifting features a window names as likely causes.
CAUSES: Final = 3
#: Importance given to a feature the model does not use (importance 0 or below), so that a
#: feature drifting alone is still named, after every feature that matters.
IMPORTANCE_FLOOR: Final = 1e-4
#: Most category bins a record's distribution lists; the rest are summed into :data:`OTHER`.
MAX_CATEGORIES: Final = 12
#: The bin that sums the categories past :data:`MAX_CATEGORIES`.
OTHER: Final = "<other>"
# Shares in a record are rounded to 6 decimals: plots need far less.
_SHARE_DIGITS: Final = 6


@dataclass(frozen=True, slots=True)
class Statistics:
    """The drift of one quantity (a feature, or the predictions) in one window.

    ``ks``, ``ks_critical`` are NaN for a categorical feature, ``unseen_rate`` for a numeric one,
    ``out_of_range_rate`` (the share of events outside the training range) for a categorical one
    and the predictions; ``psi`` carries the statistic, its critical value and the material
    threshold.
    """

    psi: Verdict
    ks: float
    ks_critical: float
    missing_rate: float
    unseen_rate: float
    out_of_range_rate: float = math.nan

    @property
    def score(self) -> float:
        """PSI over the threshold in force: above 1 is drift."""
        return self.psi.score

    @property
    def drifting(self) -> bool:
        """Whether this quantity drifted in the window."""
        return self.psi.drifting


@dataclass(frozen=True, slots=True)
class Cause:
    """A drifting feature named as a likely cause: its score and the model's importance."""

    feature: str
    score: float
    importance: float


@dataclass(frozen=True)
class Drift:
    """The drift values of a window with enough events."""

    prediction: Statistics
    features: Mapping[str, Statistics]
    drifting: tuple[str, ...]
    """Features whose score is above 1, in feature order."""
    causes: tuple[Cause, ...]
    """At most :data:`CAUSES` drifting features, by score x importance, largest first."""
    prediction_distribution: Distribution
    distributions: Mapping[str, Distribution]
    """Per feature, the shares its PSI was computed from."""

    @property
    def drifting_share(self) -> float:
        """Share of the features that drift (0..1)."""
        return len(self.drifting) / len(self.features)


def window_drift(sketches: SketchBundle, profile: ReferenceProfile, policy: DriftPolicy) -> Drift:
    """The drift of a window's ``sketches`` (at least one event) against ``profile``."""
    events = sketches.events
    features: dict[str, Statistics] = {}
    distributions: dict[str, Distribution] = {}
    for name in NUMERIC_FEATURES:
        stats, distributions[name] = numeric_drift(
            profile.numeric[name], sketches.features[name], sketches.missing[name], events, policy
        )
        features[name] = replace(stats, out_of_range_rate=sketches.out_of_range[name] / events)
    for name in CATEGORICAL_FEATURES:
        ref = profile.categorical[name]
        features[name], distributions[name] = _categorical_drift(
            ref.frequencies,
            ref.missing_rate,
            ref.rows,
            sketches.categories[name],
            sketches.missing[name],
            events,
            policy,
        )
    prediction, prediction_distribution = numeric_drift(
        profile.prediction, sketches.prediction, 0, events, policy
    )
    drifting = tuple(name for name, stats in features.items() if stats.drifting)
    return Drift(
        prediction=prediction,
        features=features,
        drifting=drifting,
        causes=likely_causes({n: features[n].score for n in drifting}, profile.importance),
        prediction_distribution=prediction_distribution,
        distributions=distributions,
    )


def likely_causes(
    scores: Mapping[str, float], importance: Mapping[str, float]
) -> tuple[Cause, ...]:
    """The :data:`CAUSES` features of ``scores`` with the largest score x importance."""
    weighed = [Cause(name, score, importance.get(name, 0.0)) for name, score in scores.items()]
    weighed.sort(key=lambda c: (-c.score * max(c.importance, IMPORTANCE_FLOOR), c.feature))
    return tuple(weighed[:CAUSES])


def numeric_drift(
    reference: NumericReference,
    current: QuantileSketch,
    missing: int,
    events: int,
    policy: DriftPolicy,
) -> tuple[Statistics, Distribution]:
    """PSI over the reference's bins and a missing bin, KS over the values, with their critical
    values; and the shares the PSI was computed from."""
    missing_rate = missing / events
    values = bin_fractions(current, reference.bin_edges) if not current.is_empty else None
    shares = (1 - missing_rate) * (values if values is not None else 0.0)
    actual = np.append(np.broadcast_to(shares, len(reference.fractions)), missing_rate)
    expected = np.append(
        (1 - reference.missing_rate) * np.asarray(reference.fractions), reference.missing_rate
    )
    ks = ks_from_sketches(reference.sketch, current)
    both = reference.sketch.n and current.n
    verdict = _psi_verdict(expected, actual, reference.rows, events, current.error, policy)
    stats = Statistics(
        psi=verdict,
        ks=ks,
        ks_critical=ks_critical(
            alpha=policy.alpha,
            values=current.n,
            reference_values=reference.sketch.n,
            rank_errors=current.error + reference.sketch.error,
        )
        if both
        else math.nan,
        missing_rate=missing_rate,
        unseen_rate=math.nan,
    )
    distribution = Distribution(
        edges=list(reference.bin_edges),
        reference=_rounded(expected[:-1]),
        current=None if values is None else _rounded(actual[:-1]),
        reference_missing=round(reference.missing_rate, _SHARE_DIGITS),
        current_missing=round(missing_rate, _SHARE_DIGITS),
    )
    return stats, distribution


def _categorical_drift(
    frequencies: Mapping[str, float],
    reference_missing: float,
    reference_rows: int,
    counts: Mapping[str, int],
    missing: int,
    events: int,
    policy: DriftPolicy,
) -> tuple[Statistics, Distribution]:
    """PSI over the reference categories, an unseen bin and a missing bin; the shares of the
    :data:`MAX_CATEGORIES` most frequent bins of either side."""
    categories = sorted(frequencies)
    seen = [counts.get(c, 0) for c in categories]
    valued = events - missing
    unseen = valued - sum(seen)
    actual = np.array([*seen, unseen, missing], dtype=np.float64) / events
    expected = np.array(
        [*((1 - reference_missing) * frequencies[c] for c in categories), 0.0, reference_missing]
    )
    verdict = _psi_verdict(expected, actual, reference_rows, events, 0.0, policy)
    stats = Statistics(
        psi=verdict,
        ks=math.nan,
        ks_critical=math.nan,
        missing_rate=missing / events,
        unseen_rate=unseen / valued if valued else math.nan,
    )
    bins = (*categories, UNSEEN)
    value_e, value_a = expected[:-1], actual[:-1]
    weight = value_e + value_a
    # Most frequent first (ties in bin order); a bin empty on both sides adds nothing to PSI.
    order = [i for i in np.argsort(-weight, kind="stable") if weight[i] > 0]
    keep, rest = order, []
    if len(order) > MAX_CATEGORIES + 1:  # one category is never replaced by an "other" of one
        keep, rest = order[:MAX_CATEGORIES], order[MAX_CATEGORIES:]

    def shares(values: FloatArray) -> list[float]:
        kept = [float(values[i]) for i in keep]
        return _rounded([*kept, float(values[rest].sum())] if rest else kept)

    distribution = Distribution(
        categories=[*(bins[i] for i in keep), *([OTHER] if rest else [])],
        reference=shares(value_e),
        current=shares(value_a) if valued else None,
        reference_missing=round(reference_missing, _SHARE_DIGITS),
        current_missing=round(missing / events, _SHARE_DIGITS),
    )
    return stats, distribution


def _psi_verdict(
    expected: FloatArray,
    actual: FloatArray,
    reference_rows: int,
    events: int,
    rank_error: float,
    policy: DriftPolicy,
) -> Verdict:
    """PSI of ``actual`` against ``expected`` with its critical value (degrees of freedom: the
    bins either side fills, less one), how far beyond noise the window is (Pearson's statistic
    over its quantile, its sparse bins merged) and the material threshold."""
    df = max(1, int(np.count_nonzero((expected > 0) | (actual > 0))) - 1)
    sizes = {"events": events, "reference_rows": reference_rows}
    pearson, groups_df = pearson_statistic(expected, actual, rank_error=rank_error, **sizes)
    return Verdict(
        statistic=psi(expected, actual, **sizes),
        critical=psi_critical(df=df, alpha=policy.alpha, rank_error=rank_error, **sizes),
        threshold=policy.psi_threshold,
        noise=pearson / chi2_quantile(groups_df, policy.alpha),
    )


def _rounded(values: FloatArray | list[float]) -> list[float]:
    return [round(float(v), _SHARE_DIGITS) for v in values]
