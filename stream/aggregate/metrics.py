"""The stream app's Prometheus metrics, on an injected ``CollectorRegistry``.

Every name, type, label set and help text comes from the catalogue
(:mod:`stream.contract.metrics`). Labels are bounded: ``window`` (two values), ``quantile``
(four), ``feature`` (the model's 20), ``rank`` (1-3), ``model_version`` (at most
``max_model_versions``; the series of older versions are removed), ``topic``/``partition`` (the
app's assigned partitions; revoked ones removed).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from prometheus_client import CollectorRegistry, Gauge

from stream.aggregate.summary import ErrorSummary, WindowSummary
from stream.aggregate.windows import Window
from stream.contract import metrics as names
from stream.contract.features import CATEGORICAL_FEATURES, FEATURES
from stream.contract.windows import QUANTILES, quantile_key
from stream.model.profile import ReferenceProfile
from stream.service import metrics as build


class AggregateMetrics:
    """Every metric of the stream app.

    Args:
        registry: where to register (tests pass a fresh one).
        windows: the window labels (e.g. ``("1m", "5m")``), created at start-up.
        max_model_versions: how many model versions keep their series (newest by first close).
        process_collectors: also register process/platform/GC collectors (memory, CPU, fds).
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        windows: Sequence[str],
        *,
        max_model_versions: int = 2,
        process_collectors: bool = True,
    ) -> None:
        self.registry = registry
        self._max_versions = max_model_versions
        self._versions: list[str] = []  # newest last
        r = registry
        self.panes = build.counter(names.PANES, r)
        self.panes_invalid = build.counter(names.PANES_INVALID, r)
        self.panes_late = build.counter(names.PANES_LATE, r)
        self.panes_dropped = build.counter(names.PANES_DROPPED, r)
        self.windows_closed = build.counter(names.WINDOWS_CLOSED, r)
        self.sales_joined = build.counter(names.SALES_JOINED, r)
        self.sales_unmatched = build.counter(names.SALES_UNMATCHED, r)
        self.predictions_stored = build.counter(names.JOIN_PREDICTIONS, r)
        self.consumer_lag = build.gauge(names.CONSUMER_LAG, r)
        self.watermark = build.gauge(names.WATERMARK, r)
        self.window_events = build.gauge(names.WINDOW_EVENTS, r)
        self.window_end = build.gauge(names.WINDOW_END, r)
        self.quantile = build.gauge(names.PREDICTION_QUANTILE, r)
        self.reference_quantile = build.gauge(names.REFERENCE_QUANTILE, r)
        self.prediction_psi = build.gauge(names.PREDICTION_PSI, r)
        self.prediction_ks = build.gauge(names.PREDICTION_KS, r)
        self.feature_psi = build.gauge(names.FEATURE_PSI, r)
        self.feature_ks = build.gauge(names.FEATURE_KS, r)
        self.feature_missing = build.gauge(names.FEATURE_MISSING, r)
        self.feature_unseen = build.gauge(names.FEATURE_UNSEEN, r)
        self.drifting_share = build.gauge(names.DRIFTING_SHARE, r)
        self.feature_out_of_range = build.gauge(names.FEATURE_OUT_OF_RANGE, r)
        self.prediction_score = build.gauge(names.PREDICTION_SCORE, r)
        self.feature_score = build.gauge(names.FEATURE_SCORE, r)
        self.cause_score = build.gauge(names.CAUSE_SCORE, r)
        self.feature_importance = build.gauge(names.FEATURE_IMPORTANCE, r)
        self.realised_mae = build.gauge(names.REALISED_MAE, r)
        self.realised_mape = build.gauge(names.REALISED_MAPE, r)
        self.realised_sales = build.gauge(names.REALISED_SALES, r)
        self.target_psi = build.gauge(names.TARGET_PSI, r)
        self.target_score = build.gauge(names.TARGET_SCORE, r)
        for window in windows:
            for counter in (self.panes_late, self.panes_dropped, self.windows_closed):
                counter.labels(window)
        self.panes_future = build.counter(names.PANES_FUTURE, r)
        self.sales_future = build.counter(names.SALES_FUTURE, r)
        self.window_size = build.gauge(names.WINDOW_SIZE, r)
        self.window_last_closed = build.gauge(names.WINDOW_LAST_CLOSED, r)
        if process_collectors:
            build.process_collectors(r)

    # -- per model version ---------------------------------------------------------------------

    @property
    def model_versions(self) -> tuple[str, ...]:
        """Versions whose series are kept, oldest first."""
        return tuple(self._versions)

    def _per_version(self) -> list[Gauge]:
        return [
            self.watermark,
            self.window_events,
            self.window_end,
            self.quantile,
            self.reference_quantile,
            self.prediction_psi,
            self.prediction_ks,
            self.feature_psi,
            self.feature_ks,
            self.feature_missing,
            self.feature_unseen,
            self.drifting_share,
            self.feature_out_of_range,
            self.prediction_score,
            self.feature_score,
            self.cause_score,
            self.feature_importance,
            self.realised_mae,
            self.realised_mape,
            self.realised_sales,
            self.target_psi,
            self.target_score,
        ]

    def use_version(self, version: str) -> None:
        """Note that ``version`` is current; remove the series of versions beyond the limit."""
        if version in self._versions:
            return
        self._versions.append(version)
        while len(self._versions) > self._max_versions:
            self._remove_version(self._versions.pop(0))

    def _remove_version(self, version: str) -> None:
        for gauge in self._per_version():
            # Label values in declaration order; model_version is always last.
            for labels in [key for key in _label_sets(gauge) if key[-1] == version]:
                gauge.remove(*labels)

    def set_importance(self, profile: ReferenceProfile) -> None:
        """Export the reference profile's feature importances (beside the drift scores)."""
        self.use_version(profile.model_version)
        for name, value in profile.importance.items():
            self.feature_importance.labels(name, profile.model_version).set(value)

    # -- results -------------------------------------------------------------------------------

    def window_closed(self, summary: WindowSummary) -> None:
        """Export a closed window's summary (drift gauges only when it has drift values)."""
        window, version = summary.window.name, summary.window.model_version
        self.use_version(version)
        self.windows_closed.labels(window).inc()
        self.window_events.labels(window, version).set(summary.events)
        self.window_end.labels(window, version).set(summary.window.end)
        for q, reference in summary.reference_quantiles.items():
            self.reference_quantile.labels(quantile_key(q), version).set(reference)
        drift = summary.drift
        if drift is None or summary.quantiles is None:
            # Too few events: take the previous window's drift values away rather than let them
            # stand for this one.
            self._clear_drift(window, version)
            return
        for q, quantile in summary.quantiles.items():
            self.quantile.labels(window, quantile_key(q), version).set(quantile)
        prediction = drift.prediction
        _set(self.prediction_psi, prediction.psi.statistic, window, version)
        _set(self.prediction_score, prediction.score, window, version)
        _set(self.prediction_ks, prediction.ks, window, version)
        self.drifting_share.labels(window, version).set(drift.drifting_share)
        for name, value in drift.features.items():
            _set(self.feature_psi, value.psi.statistic, window, name, version)
            _set(self.feature_score, value.score, window, name, version)
            self.feature_missing.labels(window, name, version).set(value.missing_rate)
            _set(self.feature_ks, value.ks, window, name, version)
            _set(self.feature_unseen, value.unseen_rate, window, name, version)
            _set(self.feature_out_of_range, value.out_of_range_rate, window, name, version)
        self._clear_causes(window, version)
        for rank, cause in enumerate(drift.causes, start=1):
            self.cause_score.labels(window, str(rank), cause.feature, version).set(cause.score)

    def _clear_drift(self, window: str, version: str) -> None:
        for q in QUANTILES:
            _remove(self.quantile, window, quantile_key(q), version)
        for gauge in (
            self.prediction_psi,
            self.prediction_score,
            self.prediction_ks,
            self.drifting_share,
        ):
            _remove(gauge, window, version)
        for name in FEATURES:
            for gauge in (
                self.feature_psi,
                self.feature_score,
                self.feature_missing,
                self.feature_ks,
                self.feature_out_of_range,
            ):
                _remove(gauge, window, name, version)
        for name in CATEGORICAL_FEATURES:
            _remove(self.feature_unseen, window, name, version)
        self._clear_causes(window, version)

    def _clear_causes(self, window: str, version: str) -> None:
        for labels in _label_sets(self.cause_score):
            if labels[0] == window and labels[-1] == version:
                self.cause_score.remove(*labels)

    def errors_closed(self, summary: ErrorSummary) -> None:
        """Export a closed window's realised error."""
        window, version = summary.window.name, summary.window.model_version
        self.use_version(version)
        self.realised_sales.labels(window, version).set(summary.errors.sales)
        self.realised_mae.labels(window, version).set(summary.errors.mae_dollars)
        self.realised_mape.labels(window, version).set(summary.errors.mape)
        target = summary.target
        _set(self.target_psi, math.nan if target is None else target.psi.statistic, window, version)
        _set(self.target_score, math.nan if target is None else target.score, window, version)

    # -- time: window sizes, silence ------------------------------------------------------------

    def set_window_size(self, window: str, kind: str, seconds: float) -> None:
        """Export the size of a window kind (``kind``: tumbling or hopping), for the rules."""
        self.window_size.labels(window, kind).set(seconds)

    def windows_closed_at(self, windows: Iterable[str], at: float) -> None:
        """Windows of these kinds holding panes closed at wall time ``at`` (Unix seconds)."""
        for window in windows:
            self.window_last_closed.labels(window).set(at)

    def window_empty(self, window: Window) -> None:
        """A window of this kind closed holding no pane: its gauges say "no data" (events 0,
        the drift and quantile series removed) until a window with panes closes. Versions
        whose series are not kept are left alone."""
        name, version = window.name, window.model_version
        if version not in self._versions:
            return
        self.window_events.labels(name, version).set(0)
        self.window_end.labels(name, version).set(window.end)
        self._clear_drift(name, version)

    def errors_empty(self, window: Window) -> None:
        """A window of sale time closed with no sale: sales 0, MAE and MAPE removed."""
        name, version = window.name, window.model_version
        if version not in self._versions:
            return
        self.realised_sales.labels(name, version).set(0)
        _remove(self.realised_mae, name, version)
        _remove(self.realised_mape, name, version)

    def set_lag(self, lags: Mapping[tuple[str, int], int]) -> None:
        """Set the lag of every assigned partition; remove the series of the others."""
        for topic, label in list(_label_sets(self.consumer_lag)):
            if (topic, int(label)) not in lags:
                self.consumer_lag.remove(topic, label)
        for (topic, partition), lag in lags.items():
            self.consumer_lag.labels(topic, str(partition)).set(lag)


def _label_sets(gauge: Gauge) -> Iterable[tuple[str, ...]]:
    # prometheus_client keeps children in a dict keyed by label values; copy before removing.
    return [tuple(labels) for labels in gauge._metrics]


def _remove(gauge: Gauge, *labels: str) -> None:
    if tuple(labels) in gauge._metrics:
        gauge.remove(*labels)


def _set(gauge: Gauge, value: float, *labels: str) -> None:
    """Set the series, or remove it when there is no value (NaN): absent, not NaN or stale."""
    if math.isnan(value):
        _remove(gauge, *labels)
    else:
        gauge.labels(*labels).set(value)
