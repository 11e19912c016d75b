"""The stream app's Prometheus metrics, on an injected ``CollectorRegistry``.

Names follow shared/OBSERVABILITY.md: prefix ``appraise_``, units in the name, counters end in
``_total``. Labels are bounded: ``window`` (two values), ``quantile`` (four), ``feature`` (the
model's 20), ``model_version`` (at most ``max_model_versions``; the series of older versions are
removed), ``topic``/``partition`` (the app's assigned partitions; revoked ones removed).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from stream.aggregate.summary import QUANTILES, ErrorSummary, WindowSummary
from stream.features import CATEGORICAL_FEATURES, FEATURES

_V = "model_version"


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
        w = ["window"]
        self.panes = Counter("appraise_panes", "Pane partials consumed.", registry=r)
        self.panes_invalid = Counter(
            "appraise_panes_invalid", "Pane records that could not be used.", registry=r
        )
        self.panes_late = Counter(
            "appraise_panes_late",
            "Pane partials counted in a window whose end had passed (within the lateness).",
            w,
            registry=r,
        )
        self.panes_dropped = Counter(
            "appraise_panes_dropped",
            "Pane partials not counted in a window because it had closed (beyond lateness).",
            w,
            registry=r,
        )
        self.windows_closed = Counter(
            "appraise_windows_closed", "Windows closed and published.", w, registry=r
        )
        self.sales_joined = Counter(
            "appraise_sales_joined", "Sale events joined to their prediction.", registry=r
        )
        self.sales_unmatched = Counter(
            "appraise_sales_unmatched",
            "Sale events that found no prediction (none yet, or older than the retention).",
            registry=r,
        )
        self.predictions_stored = Counter(
            "appraise_join_predictions",
            "Predictions stored in the join table.",
            registry=r,
        )
        self.consumer_lag = Gauge(
            "appraise_consumer_lag_records",
            "High watermark minus the next offset to process, per assigned partition.",
            ["topic", "partition"],
            registry=r,
        )
        self.watermark = Gauge(
            "appraise_window_watermark_timestamp_seconds",
            "Event-time watermark (latest pane start seen) per model version.",
            [_V],
            registry=r,
        )
        vw = ["window", _V]
        self.window_events = Gauge(
            "appraise_window_events", "Events in the last closed window.", vw, registry=r
        )
        self.window_end = Gauge(
            "appraise_window_end_timestamp_seconds",
            "Event-time end of the last closed window.",
            vw,
            registry=r,
        )
        self.quantile = Gauge(
            "appraise_prediction_quantile_dollars",
            "Quantile of the predicted prices in the last closed window (US dollars).",
            ["window", "quantile", _V],
            registry=r,
        )
        self.reference_quantile = Gauge(
            "appraise_reference_prediction_quantile_dollars",
            "The same quantile of the reference profile's predictions (US dollars).",
            ["quantile", _V],
            registry=r,
        )
        self.prediction_psi = Gauge(
            "appraise_prediction_psi",
            "PSI of the predictions against the reference.",
            vw,
            registry=r,
        )
        self.prediction_ks = Gauge(
            "appraise_prediction_ks",
            "Kolmogorov-Smirnov statistic of the predictions against the reference.",
            vw,
            registry=r,
        )
        fvw = ["window", "feature", _V]
        self.feature_psi = Gauge(
            "appraise_feature_psi", "PSI of a feature against the reference.", fvw, registry=r
        )
        self.feature_ks = Gauge(
            "appraise_feature_ks",
            "Kolmogorov-Smirnov statistic of a numeric feature against the reference.",
            fvw,
            registry=r,
        )
        self.feature_missing = Gauge(
            "appraise_feature_missing_ratio", "Share of events missing a feature.", fvw, registry=r
        )
        self.feature_unseen = Gauge(
            "appraise_feature_unseen_ratio",
            "Share of a categorical feature's values the reference never saw.",
            fvw,
            registry=r,
        )
        self.drifting_share = Gauge(
            "appraise_drifting_features_ratio",
            "Share of features whose PSI is above the threshold.",
            vw,
            registry=r,
        )
        self.realised_mae = Gauge(
            "appraise_realised_error_mae_dollars",
            "Mean absolute error of joined sales in the last closed window (US dollars).",
            vw,
            registry=r,
        )
        self.realised_mape = Gauge(
            "appraise_realised_error_mape_ratio",
            "Mean absolute percentage error of joined sales in the last closed window.",
            vw,
            registry=r,
        )
        self.realised_sales = Gauge(
            "appraise_realised_error_sales",
            "Sales joined in the last closed window.",
            vw,
            registry=r,
        )
        for window in windows:
            for counter in (self.panes_late, self.panes_dropped, self.windows_closed):
                counter.labels(window)
        if process_collectors:
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)

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
            self.realised_mae,
            self.realised_mape,
            self.realised_sales,
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

    # -- results -------------------------------------------------------------------------------

    def window_closed(self, summary: WindowSummary) -> None:
        """Export a closed window's summary (drift gauges only when it has drift values)."""
        window, version = summary.window.name, summary.window.model_version
        self.use_version(version)
        self.windows_closed.labels(window).inc()
        self.window_events.labels(window, version).set(summary.events)
        self.window_end.labels(window, version).set(summary.window.end)
        for q, reference in summary.reference_quantiles.items():
            self.reference_quantile.labels(f"{q:g}", version).set(reference)
        drift = summary.drift
        if drift is None or summary.quantiles is None:
            # Too few events: take the previous window's drift values away rather than let them
            # stand for this one.
            self._clear_drift(window, version)
            return
        for q, quantile in summary.quantiles.items():
            self.quantile.labels(window, f"{q:g}", version).set(quantile)
        self.prediction_psi.labels(window, version).set(drift.prediction_psi)
        self.prediction_ks.labels(window, version).set(drift.prediction_ks)
        self.drifting_share.labels(window, version).set(drift.drifting_share)
        for name, value in drift.features.items():
            self.feature_psi.labels(window, name, version).set(value.psi)
            self.feature_missing.labels(window, name, version).set(value.missing_rate)
            if not math.isnan(value.ks):
                self.feature_ks.labels(window, name, version).set(value.ks)
            if not math.isnan(value.unseen_rate):
                self.feature_unseen.labels(window, name, version).set(value.unseen_rate)

    def _clear_drift(self, window: str, version: str) -> None:
        for q in QUANTILES:
            _remove(self.quantile, window, f"{q:g}", version)
        for gauge in (self.prediction_psi, self.prediction_ks, self.drifting_share):
            _remove(gauge, window, version)
        for name in FEATURES:
            for gauge in (self.feature_psi, self.feature_missing, self.feature_ks):
                _remove(gauge, window, name, version)
        for name in CATEGORICAL_FEATURES:
            _remove(self.feature_unseen, window, name, version)

    def errors_closed(self, summary: ErrorSummary) -> None:
        """Export a closed window's realised error."""
        window, version = summary.window.name, summary.window.model_version
        self.use_version(version)
        self.realised_sales.labels(window, version).set(summary.errors.sales)
        self.realised_mae.labels(window, version).set(summary.errors.mae_dollars)
        self.realised_mape.labels(window, version).set(summary.errors.mape)

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
