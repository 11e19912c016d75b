"""The summary of a closed window: quantiles, drift against the reference profile, counts.

Pure: panes in, a :class:`WindowSummary` out, and its record for ``prediction-windows``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import orjson

from consumers.panes import Pane
from stream.aggregate.state import ErrorPane
from stream.aggregate.windows import Window
from stream.drift import (
    FloatArray,
    bin_fractions,
    category_fractions,
    ks_from_sketches,
    psi,
    unseen_rate,
)
from stream.events import unix_rfc3339
from stream.features import CATEGORICAL_FEATURES, FEATURES, NUMERIC_FEATURES
from stream.profile import NumericReference, ReferenceProfile
from stream.sketches import QuantileSketch

#: Format of every record on ``prediction-windows``.
RECORD_FORMAT: Final = "appraise.window/1"
#: Prediction quantiles a summary reports (p10, p50, p90, p99).
QUANTILES: Final = (0.1, 0.5, 0.9, 0.99)
#: Most category bins a record's distribution lists; the rest are summed into :data:`OTHER`.
MAX_CATEGORIES: Final = 12
#: The bin that sums the categories past :data:`MAX_CATEGORIES` (angle brackets: never a
#: category of the data, like ``stream.drift.UNSEEN``).
OTHER: Final = "<other>"
# Shares in a record are rounded to 6 decimals: plots need far less, and PSI recomputed from the
# rounded shares moves by about 1e-5 (bins floored at 1e-4 before the logarithm).
_SHARE_DIGITS: Final = 6


@dataclass(frozen=True)
class Distribution:
    """The reference's and the window's shares over the bins PSI compared (for plots).

    Numeric: ``edges`` are the reference's bin edges, bins ``(-inf, e0), [e0, e1), ...,
    [e_last, +inf)``. Categorical: ``categories`` name the bins, most frequent first, with
    ``stream.drift.UNSEEN`` for categories the reference never saw and :data:`OTHER` last for
    those past :data:`MAX_CATEGORIES`. ``current`` is None if the window had no value.
    """

    reference: tuple[float, ...]
    current: tuple[float, ...] | None
    edges: tuple[float, ...] | None = None
    categories: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        """``edges`` or ``categories``, then ``reference`` and ``current`` (rounded shares)."""
        bins: dict[str, Any] = (
            {"edges": list(self.edges)}
            if self.edges is not None
            else {"categories": list(self.categories or ())}
        )
        return {
            **bins,
            "reference": _shares(self.reference),
            "current": None if self.current is None else _shares(self.current),
        }


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
        return f"drift/{self.window.key}".encode()

    def to_record(self) -> bytes:
        """The JSON record (NaN becomes null)."""
        drift = self.drift
        return orjson.dumps(
            {
                "format": RECORD_FORMAT,
                "kind": "drift",
                **_window_fields(self.window),
                "reference_model_version": self.reference_version,
                "events": self.events,
                "panes": self.panes,
                "min_events": self.min_events,
                "quantiles": _quantile_map(self.quantiles),
                "reference_quantiles": _quantile_map(self.reference_quantiles),
                "prediction": None
                if drift is None
                else {"psi": drift.prediction_psi, "ks": drift.prediction_ks},
                "features": None
                if drift is None
                else {name: vars(value) for name, value in drift.features.items()},
                "drifting_features": None if drift is None else list(drift.drifting),
                "drifting_share": None if drift is None else drift.drifting_share,
                "distributions": None
                if drift is None
                else {
                    "prediction": drift.prediction_distribution.to_json(),
                    "features": {
                        name: value.to_json() for name, value in drift.distributions.items()
                    },
                },
            }
        )


@dataclass(frozen=True)
class ErrorSummary:
    """Realised error of the sales of a closed window of sale time."""

    window: Window
    errors: ErrorPane

    @property
    def key(self) -> bytes:
        """Record key on ``prediction-windows``."""
        return f"realised_error/{self.window.key}".encode()

    def to_record(self) -> bytes:
        """The JSON record: sales joined, MAE in US dollars, MAPE as a fraction."""
        return orjson.dumps(
            {
                "format": RECORD_FORMAT,
                "kind": "realised_error",
                **_window_fields(self.window),
                "sales": self.errors.sales,
                "mae_dollars": self.errors.mae_dollars,
                "mape": self.errors.mape,
            }
        )


class WindowAggregate:
    """The union of a window's panes: sketches, counts; empty until panes are folded in."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.events = 0
        self.panes = 0
        self.prediction = QuantileSketch.empty(k)
        self.features = {name: QuantileSketch.empty(k) for name in NUMERIC_FEATURES}
        self.missing = dict.fromkeys(FEATURES, 0)
        self.categories: dict[str, Counter[str]] = {n: Counter() for n in CATEGORICAL_FEATURES}

    @classmethod
    def of(cls, panes: Iterable[Pane], k: int) -> WindowAggregate:
        """The aggregate of ``panes`` (each pane's partials already merged)."""
        aggregate = cls(k)
        for pane in panes:
            aggregate.fold(pane)
        return aggregate

    def fold(self, pane: Pane) -> None:
        """Merge one pane in."""
        self.events += pane.events
        self.panes += 1
        self.prediction.merge(pane.prediction)
        for name in NUMERIC_FEATURES:
            self.features[name].merge(pane.features[name])
        for name in FEATURES:
            self.missing[name] += pane.missing.get(name, 0)
        for name in CATEGORICAL_FEATURES:
            self.categories[name].update(pane.categories[name])


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
    base: dict[str, Any] = {
        "window": window,
        "reference_version": profile.model_version,
        "events": aggregate.events,
        "panes": aggregate.panes,
        "min_events": min_events,
        "reference_quantiles": {q: float(v) for q, v in reference_quantiles.items()},
    }
    if aggregate.events < min_events:
        return WindowSummary(**base, quantiles=None, drift=None)
    quantiles = aggregate.prediction.quantiles(QUANTILES)
    features: dict[str, FeatureDrift] = {}
    distributions: dict[str, Distribution] = {}
    for name in NUMERIC_FEATURES:
        ref = profile.numeric[name]
        sketch = aggregate.features[name]
        value, distributions[name] = _numeric_drift(ref, sketch)
        features[name] = FeatureDrift(
            psi=value,
            ks=ks_from_sketches(ref.sketch, sketch),
            missing_rate=aggregate.missing[name] / aggregate.events,
            unseen_rate=math.nan,
        )
    for name in CATEGORICAL_FEATURES:
        frequencies = profile.categorical[name].frequencies
        counts = aggregate.categories[name]
        value, distributions[name] = _category_drift(frequencies, counts)
        features[name] = FeatureDrift(
            psi=value,
            ks=math.nan,
            missing_rate=aggregate.missing[name] / aggregate.events,
            unseen_rate=unseen_rate(frequencies, counts),
        )
    # NaN (a feature missing in every row) compares False: not counted as drifting.
    drifting = tuple(name for name, f in features.items() if f.psi > psi_threshold)
    prediction_psi, prediction_distribution = _numeric_drift(
        profile.prediction, aggregate.prediction
    )
    drift = Drift(
        prediction_psi=prediction_psi,
        prediction_ks=ks_from_sketches(reference, aggregate.prediction),
        features=features,
        drifting=drifting,
        prediction_distribution=prediction_distribution,
        distributions=distributions,
    )
    return WindowSummary(
        **base,
        quantiles={q: float(v) for q, v in zip(QUANTILES, quantiles, strict=True)},
        drift=drift,
    )


def _numeric_drift(
    reference: NumericReference, current: QuantileSketch
) -> tuple[float, Distribution]:
    """PSI over the reference's bins (as ``stream.drift.psi_from_sketches``), and the shares it
    was computed from: the exported number and the exported bars are the same numbers."""
    expected = bin_fractions(reference.sketch, reference.bin_edges)
    actual = bin_fractions(current, reference.bin_edges)
    distribution = Distribution(
        reference=_finite(expected) or (),
        current=_finite(actual),
        edges=reference.bin_edges,
    )
    return psi(expected, actual), distribution


def _category_drift(
    frequencies: Mapping[str, float], counts: Mapping[str, int]
) -> tuple[float, Distribution]:
    """PSI over the reference categories and the unseen bin (as ``stream.drift.category_psi``),
    and the shares of the :data:`MAX_CATEGORIES` most frequent bins of either side."""
    bins, expected, actual = category_fractions(frequencies, counts)
    present = np.isfinite(actual).all()
    weight = expected + (actual if present else 0.0)
    # Most frequent first (ties in bin order); a bin empty on both sides adds nothing to PSI.
    order = [i for i in np.argsort(-weight, kind="stable") if weight[i] > 0]
    keep, rest = order, []
    if len(order) > MAX_CATEGORIES + 1:  # one category is never replaced by an "other" of one
        keep, rest = order[:MAX_CATEGORIES], order[MAX_CATEGORIES:]

    def shares(values: FloatArray) -> tuple[float, ...]:
        kept = [float(values[i]) for i in keep]
        return (*kept, float(values[rest].sum())) if rest else tuple(kept)

    distribution = Distribution(
        reference=shares(expected),
        current=shares(actual) if present else None,
        categories=(*(bins[i] for i in keep), *([OTHER] if rest else [])),
    )
    return psi(expected, actual), distribution


def _finite(values: FloatArray) -> tuple[float, ...] | None:
    return tuple(float(v) for v in values) if np.isfinite(values).all() else None


def _shares(values: tuple[float, ...]) -> list[float]:
    return [round(v, _SHARE_DIGITS) for v in values]


def _window_fields(window: Window) -> dict[str, Any]:
    return {
        "window": window.name,
        "start": unix_rfc3339(window.start),
        "end": unix_rfc3339(window.end),
        "model_version": window.model_version,
    }


def _quantile_map(values: Mapping[float, float] | None) -> dict[str, float] | None:
    return None if values is None else {f"{q:g}": v for q, v in values.items()}
