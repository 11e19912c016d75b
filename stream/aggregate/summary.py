"""The summary of a closed window: quantiles, drift against the reference profile, counts.

Pure: panes in, a :class:`WindowSummary` out, and its record for ``prediction-windows`` (the
contract's :class:`~stream.contract.windows.DriftRecord`); joined sales in, an
:class:`ErrorSummary` out (realised error and target drift). The drift itself is decided in
:mod:`stream.aggregate.drift`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from stream.aggregate.drift import Drift, Statistics, numeric_drift, window_drift
from stream.aggregate.policy import DriftPolicy
from stream.aggregate.state import ErrorPane
from stream.aggregate.windows import Window
from stream.contract.bundle import SketchBundle
from stream.contract.panes import Pane
from stream.contract.sketch import DEFAULT_K
from stream.contract.windows import (
    QUANTILES,
    Cause,
    Distributions,
    DriftRecord,
    ErrorRecord,
    FeatureStats,
    Kind,
    PredictionStats,
    quantile_key,
    record_key,
)
from stream.model.profile import ReferenceProfile


@dataclass(frozen=True)
class WindowSummary:
    """What a closed window exports. ``quantiles`` and ``drift`` are None under ``min_events``."""

    window: Window
    reference_version: str
    events: int
    panes: int
    quantiles: Mapping[float, float] | None
    reference_quantiles: Mapping[float, float]
    drift: Drift | None
    policy: DriftPolicy

    @property
    def min_events(self) -> int:
        """The fewest events a window needs for drift values (the policy's floor)."""
        return self.policy.min_events

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
            prediction=None if drift is None else _stats(drift.prediction),
            features=None
            if drift is None
            else {
                name: FeatureStats(
                    **_stats(value).model_dump(),
                    missing_rate=_num(value.missing_rate),
                    unseen_rate=_num(value.unseen_rate),
                    out_of_range_rate=_num(value.out_of_range_rate),
                )
                for name, value in drift.features.items()
            },
            drifting_features=None if drift is None else list(drift.drifting),
            drifting_share=None if drift is None else drift.drifting_share,
            likely_causes=None
            if drift is None
            else [
                Cause(feature=c.feature, score=c.score, importance=c.importance)
                for c in drift.causes
            ],
            psi_threshold=self.policy.psi_threshold,
            false_alarm_level=self.policy.alpha,
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
    """Realised error of the sales of a closed window of sale time, and the drift of their
    prices against the training prices (None under the policy's ``min_events`` sales)."""

    window: Window
    errors: ErrorPane
    target: Statistics | None = None

    def record(self) -> ErrorRecord:
        """The contract's record: sales joined, MAE in US dollars, MAPE as a fraction."""
        return ErrorRecord(
            **_window_fields(self.window),
            sales=self.errors.sales,
            mae_dollars=_num(self.errors.mae_dollars),
            mape=_num(self.errors.mape),
            target=None if self.target is None else _stats(self.target),
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
    policy: DriftPolicy,
) -> WindowSummary:
    """Quantiles and drift of a closed window against ``profile``.

    Under the policy's ``min_events`` the summary has counts only: below it not even the
    sample-size-aware decision is worth a number.
    """
    reference = profile.prediction.sketch
    reference_quantiles = dict(zip(QUANTILES, reference.quantiles(QUANTILES), strict=True))
    enough = aggregate.events >= policy.min_events
    sketches = aggregate.sketches
    return WindowSummary(
        window=window,
        reference_version=profile.model_version,
        events=aggregate.events,
        panes=aggregate.panes,
        quantiles={
            q: float(v)
            for q, v in zip(QUANTILES, sketches.prediction.quantiles(QUANTILES), strict=True)
        }
        if enough
        else None,
        reference_quantiles={q: float(v) for q, v in reference_quantiles.items()},
        drift=window_drift(sketches, profile, policy) if enough else None,
        policy=policy,
    )


def summarise_errors(
    window: Window, errors: ErrorPane, profile: ReferenceProfile, policy: DriftPolicy
) -> ErrorSummary:
    """Realised error of a closed window of sales and, from ``min_events`` sales on, the drift of
    their prices against the training sale prices."""
    target = None
    if errors.sales >= policy.min_events and errors.prices.n:
        target, _ = numeric_drift(profile.target, errors.prices, 0, errors.sales, policy)
    return ErrorSummary(window, errors, target)


def _stats(value: Statistics) -> PredictionStats:
    return PredictionStats(
        psi=_num(value.psi.statistic),
        ks=_num(value.ks),
        psi_critical=_num(value.psi.critical),
        ks_critical=_num(value.ks_critical),
        noise=_num(value.psi.beyond_noise),
        score=_num(value.score),
        drifting=value.drifting,
    )


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
