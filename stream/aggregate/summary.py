"""The summary of a closed window: quantiles, drift against the reference profile, counts.

Pure: panes in, a :class:`WindowSummary` out, and its record for ``prediction-windows`` (the
contract's :class:`~stream.contract.windows.DriftRecord`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

import numpy as np

from stream.aggregate.state import ErrorPane
from stream.aggregate.windows import Window
from stream.contract.bundle import SketchBundle
from stream.contract.features import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from stream.contract.panes import Pane
from stream.contract.sketch import DEFAULT_K, QuantileSketch
from stream.contract.windows import (
    QUANTILES,
    Distribution,
    Distributions,
    DriftRecord,
    ErrorRecord,
    FeatureStats,
    Kind,
    PredictionStats,
    quantile_key,
    record_key,
)
from stream.model.profile import NumericReference, ReferenceProfile
from stream.stats.drift import (
    FloatArray,
    bin_fractions,
    category_fractions,
    ks_from_sketches,
    psi,
    unseen_rate,
)

#: Most category bins a record's distribution lists; the rest are summed into :data:`OTHER`.
MAX_CATEGORIES: Final = 12
#: The bin that sums the categories past :data:`MAX_CATEGORIES` (angle brackets: never a
#: category of the data, like ``stream.stats.drift.UNSEEN``).
OTHER: Final = "<other>"
# Shares in a record are rounded to 6 decimals: plots need far less, and PSI recomputed from the
# rounded shares moves by about 1e-5 (bins floored at 1e-4 before the logarithm).
_SHARE_DIGITS: Final = 6


@dataclass(frozen=True)
class FeatureDrift:
    """Drift of one feature in one window (NaN where a statistic does not apply)."""

    psi: float
    ks: float
    missing_rate: float
    unseen_rate: float


@dataclass(frozen=True)
class Drift:
    """The drift values of a window with enough events."""

    prediction_psi: float
    prediction_ks: float
    features: Mapping[str, FeatureDrift]
    drifting: tuple[str, ...]
    """Features whose PSI is above the threshold, in feature order."""
    prediction_distribution: Distribution
    distributions: Mapping[str, Distribution]
    """Per feature, the shares its PSI was computed from."""

    @property
    def drifting_share(self) -> float:
        """Share of the features that drift (0..1)."""
        return len(self.drifting) / len(self.features)


@dataclass(frozen=True)
class WindowSummary:
    """What a closed window exports. ``quantiles`` and ``drift`` are None under ``min_events``."""

    window: Window
    reference_version: str
    events: int
    panes: int
    min_events: int
    quantiles: Mapping[float, float] | None
    reference_quantiles: Mapping[float, float]
    drift: Drift | None

    @property
    def key(self) -> bytes:
        """Record key on ``prediction-windows``."""
        return _key("drift", self.window)

    def record(self) -> DriftRecord:
        """The contract's record of this window (NaN becomes null)."""
        drift = self.drift
        return DriftRecord(
            **_window_fields(self.window),
            reference_model_version=self.reference_version,
            events=self.events,
            panes=self.panes,
            min_events=self.min_events,
            quantiles=_quantile_map(self.quantiles),
            reference_quantiles=_quantile_map(self.reference_quantiles) or {},
            prediction=None
            if drift is None
            else PredictionStats(psi=_num(drift.prediction_psi), ks=_num(drift.prediction_ks)),
            features=None
            if drift is None
            else {
                name: FeatureStats(
                    psi=_num(value.psi),
                    ks=_num(value.ks),
                    missing_rate=_num(value.missing_rate),
                    unseen_rate=_num(value.unseen_rate),
                )
                for name, value in drift.features.items()
            },
            drifting_features=None if drift is None else list(drift.drifting),
            drifting_share=None if drift is None else drift.drifting_share,
            distributions=None
            if drift is None
            else Distributions(
                prediction=drift.prediction_distribution, features=dict(drift.distributions)
            ),
        )

    def to_record(self) -> bytes:
        """The record value for ``prediction-windows``."""
        return self.record().to_bytes()


@dataclass(frozen=True)
class ErrorSummary:
    """Realised error of the sales of a closed window of sale time."""

    window: Window
    errors: ErrorPane

    def record(self) -> ErrorRecord:
        """The contract's record: sales joined, MAE in US dollars, MAPE as a fraction."""
        return ErrorRecord(
            **_window_fields(self.window),
            sales=self.errors.sales,
            mae_dollars=_num(self.errors.mae_dollars),
            mape=_num(self.errors.mape),
        )

    @property
    def key(self) -> bytes:
        """Record key on ``prediction-windows``."""
        return _key("realised_error", self.window)

    def to_record(self) -> bytes:
        """The record value for ``prediction-windows``."""
        return self.record().to_bytes()


@dataclass
class WindowAggregate:
    """The union of a window's panes: their sketch bundle, and how many panes went in."""

    sketches: SketchBundle = field(default_factory=SketchBundle)
    panes: int = 0

    @classmethod
    def of(cls, panes: Iterable[Pane], k: int = DEFAULT_K) -> WindowAggregate:
        """The aggregate of ``panes`` (each pane's partials already merged)."""
        aggregate = cls(SketchBundle(k))
        for pane in panes:
            aggregate.sketches.merge(pane.sketches)
            aggregate.panes += 1
        return aggregate

    @property
    def events(self) -> int:
        """Events in the window."""
        return self.sketches.events


def summarise(
    window: Window,
    aggregate: WindowAggregate,
    profile: ReferenceProfile,
    *,
    min_events: int,
    psi_threshold: float,
) -> WindowSummary:
    """Quantiles and drift of a closed window against ``profile``.

    Under ``min_events`` events the summary has counts only: drift from a handful of values is
    noise, and exporting none is better than a false alarm.
    """
    reference = profile.prediction.sketch
    reference_quantiles = dict(zip(QUANTILES, reference.quantiles(QUANTILES), strict=True))
    summary = WindowSummary(
        window=window,
        reference_version=profile.model_version,
        events=aggregate.events,
        panes=aggregate.panes,
        min_events=min_events,
        quantiles=None,
        reference_quantiles={q: float(v) for q, v in reference_quantiles.items()},
        drift=None,
    )
    if aggregate.events < min_events:
        return summary
    sketches = aggregate.sketches
    quantiles = sketches.prediction.quantiles(QUANTILES)
    features: dict[str, FeatureDrift] = {}
    distributions: dict[str, Distribution] = {}
    for name in NUMERIC_FEATURES:
        ref = profile.numeric[name]
        sketch = sketches.features[name]
        value, distributions[name] = _numeric_drift(ref, sketch)
        features[name] = FeatureDrift(
            psi=value,
            ks=ks_from_sketches(ref.sketch, sketch),
            missing_rate=sketches.missing[name] / sketches.events,
            unseen_rate=math.nan,
        )
    for name in CATEGORICAL_FEATURES:
        frequencies = profile.categorical[name].frequencies
        counts = sketches.categories[name]
        value, distributions[name] = _category_drift(frequencies, counts)
        features[name] = FeatureDrift(
            psi=value,
            ks=math.nan,
            missing_rate=sketches.missing[name] / sketches.events,
            unseen_rate=unseen_rate(frequencies, counts),
        )
    # NaN (a feature missing in every row) compares False: not counted as drifting.
    drifting = tuple(name for name, f in features.items() if f.psi > psi_threshold)
    prediction_psi, prediction_distribution = _numeric_drift(
        profile.prediction, sketches.prediction
    )
    drift = Drift(
        prediction_psi=prediction_psi,
        prediction_ks=ks_from_sketches(reference, sketches.prediction),
        features=features,
        drifting=drifting,
        prediction_distribution=prediction_distribution,
        distributions=distributions,
    )
    return WindowSummary(
        window=window,
        reference_version=summary.reference_version,
        events=summary.events,
        panes=summary.panes,
        min_events=min_events,
        quantiles={q: float(v) for q, v in zip(QUANTILES, quantiles, strict=True)},
        reference_quantiles=summary.reference_quantiles,
        drift=drift,
    )


def _numeric_drift(
    reference: NumericReference, current: QuantileSketch
) -> tuple[float, Distribution]:
    """PSI over the reference's bins (as ``stream.stats.drift.psi_from_sketches``), and the
    shares it was computed from: the exported number and the exported bars are the same."""
    expected = bin_fractions(reference.sketch, reference.bin_edges)
    actual = bin_fractions(current, reference.bin_edges)
    distribution = Distribution(
        edges=list(reference.bin_edges),
        reference=_shares(expected) or [],
        current=_shares(actual),
    )
    return psi(expected, actual), distribution


def _category_drift(
    frequencies: Mapping[str, float], counts: Mapping[str, int]
) -> tuple[float, Distribution]:
    """PSI over the reference categories and the unseen bin (as
    ``stream.stats.drift.category_psi``), and the shares of the :data:`MAX_CATEGORIES` most
    frequent bins of either side."""
    bins, expected, actual = category_fractions(frequencies, counts)
    present = np.isfinite(actual).all()
    weight = expected + (actual if present else 0.0)
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
        reference=shares(expected),
        current=shares(actual) if present else None,
    )
    return psi(expected, actual), distribution


def _shares(values: FloatArray) -> list[float] | None:
    """Rounded shares, or None when the window had no value (NaN shares)."""
    return _rounded([float(v) for v in values]) if np.isfinite(values).all() else None


def _rounded(values: list[float]) -> list[float]:
    return [round(v, _SHARE_DIGITS) for v in values]


def _num(value: float) -> float | None:
    return None if math.isnan(value) else value


def _window_fields(window: Window) -> dict[str, object]:
    return {
        "window": window.name,
        "start": datetime.fromtimestamp(window.start, UTC),
        "end": datetime.fromtimestamp(window.end, UTC),
        "model_version": window.model_version,
    }


def _key(kind: Kind, window: Window) -> bytes:
    start = datetime.fromtimestamp(window.start, UTC)
    return record_key(kind, window.name, start, window.model_version)


def _quantile_map(values: Mapping[float, float] | None) -> dict[str, float] | None:
    return None if values is None else {quantile_key(q): v for q, v in values.items()}
