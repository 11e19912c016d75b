"""Pages and payloads the live view's tests share: real scorer and stream app (aggregate)
metric pages built with their exporters, two snapshots of them 2 s apart, and Prometheus's
alerts answer."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from consumers.metrics import ScorerMetrics
from stream.aggregate.drift import Cause, Drift, Statistics
from stream.aggregate.metrics import AggregateMetrics
from stream.aggregate.policy import DriftPolicy
from stream.aggregate.summary import WindowSummary
from stream.aggregate.windows import Window
from stream.contract.features import CATEGORICAL_FEATURES, FEATURES
from stream.contract.windows import Distribution
from stream.live.snapshot import Snapshot
from stream.settings import AggregateSettings, ScorerSettings
from stream.stats.decision import Verdict

#: End of the last closed 5 m window of the aggregate page (Unix seconds).
WINDOW_END = 1_700_000_100.0
#: The PSI of the worst features; every other feature has 0.01. Drift scores are PSI over 0.2
#: (the material PSI), except year_built's: its critical value is 0.4, so it ranks below
#: lot_area_sqft by score (0.3 against 0.4) though above it by PSI.
WORST_PSI = {
    "zoning": 0.41,
    "neighbourhood": 0.27,
    "living_area_sqft": 0.12,
    "year_built": 0.12,
    "lot_area_sqft": 0.08,
    "garage_cars": 0.05,  # sixth by score (0.25): not shown
}
CRITICAL = {"year_built": 0.4}
QUANTILES = {0.1: 120_000.0, 0.5: 172_000.0, 0.9: 260_000.0, 0.99: 410_000.0}
REFERENCE = {0.1: 118_000.0, 0.5: 165_000.0, 0.9: 250_000.0, 0.99: 400_000.0}


def families(registry: CollectorRegistry) -> list[Metric]:
    """The page of ``registry`` as the live view parses it."""
    return list(text_string_to_metric_families(generate_latest(registry).decode()))


def scorer_metrics() -> ScorerMetrics:
    """A fresh scorer's metrics, serving model v1."""
    metrics = ScorerMetrics(CollectorRegistry(), ScorerSettings(), process_collectors=False)
    metrics.set_model("v1")
    return metrics


def _summary(
    name: str, end: float, version: str, events: int, *, drift: bool = True
) -> WindowSummary:
    size = 300.0 if name == "5m" else 60.0
    nan = float("nan")
    features = {
        feature: Statistics(
            psi=Verdict(
                WORST_PSI.get(feature, 0.01), critical=CRITICAL.get(feature, 0.05), threshold=0.2
            ),
            ks=nan if feature in CATEGORICAL_FEATURES else 0.05,
            ks_critical=nan if feature in CATEGORICAL_FEATURES else 0.06,
            missing_rate=0.0,
            unseen_rate=0.0 if feature in CATEGORICAL_FEATURES else nan,
        )
        for feature in FEATURES
    }
    prediction = Statistics(Verdict(0.02, 0.04, 0.2), 0.03, 0.05, 0.0, nan)
    return WindowSummary(
        window=Window(end, name, end - size, version),
        reference_version=version,
        events=events,
        panes=events // 10,
        quantiles=QUANTILES if drift else None,
        reference_quantiles=REFERENCE,
        drift=Drift(
            prediction=prediction,
            features=features,
            drifting=("zoning", "neighbourhood"),
            causes=(Cause("neighbourhood", 1.35, 0.13), Cause("zoning", 2.05, 0.001)),
            prediction_distribution=Distribution(reference=[0.5, 0.5], current=[0.5, 0.5]),
            distributions={},
        )
        if drift
        else None,
        policy=DriftPolicy.of(AggregateSettings(min_events=200)),
    )


def aggregate_metrics() -> AggregateMetrics:
    """The stream app (aggregate) after: an old model's window, the 5 m window that is the latest
    with values, and a later 1 m window with too few events (counts, no quantiles)."""
    metrics = AggregateMetrics(CollectorRegistry(), ["1m", "5m"], process_collectors=False)
    metrics.window_closed(_summary("1m", WINDOW_END - 600, "v0", 900))
    metrics.window_closed(_summary("1m", WINDOW_END, "v1", 600))
    metrics.window_closed(_summary("5m", WINDOW_END, "v1", 3_000))
    metrics.window_closed(_summary("1m", WINDOW_END + 60, "v1", 12, drift=False))
    metrics.set_lag({("prediction-panes", 0): 4, ("sales", 0): 0})
    return metrics


def two_scorer_snapshots() -> tuple[Snapshot, Snapshot, Snapshot]:
    """Before, after (2 s later) and an aggregate-only snapshot's worth of pages."""
    scorer, aggregate = scorer_metrics(), aggregate_metrics()
    scorer.events_consumed.inc(1_000)
    scorer.predictions.labels("v1").inc(980)
    scorer.scoring_errors.labels("invalid_json").inc(15)
    scorer.scoring_errors.labels("missing_field").inc(5)
    scorer.observe_event_lags(np.full(1_000, 5.0))  # old: must not weigh on the recent quantiles
    scorer.set_lag("listings", 0, 7)
    scorer.set_lag("listings", 1, 5)
    aggregate_families = families(aggregate.registry)
    before = Snapshot.from_families(families(scorer.registry), aggregate_families)
    scorer.events_consumed.inc(100)
    scorer.predictions.labels("v1").inc(96)
    scorer.scoring_errors.labels("invalid_json").inc(3)
    scorer.scoring_errors.labels("out_of_range").inc(1)
    scorer.observe_event_lags(np.array([0.03] * 60 + [0.2] * 40))
    scorer.set_lag("listings", 0, 3)
    after = Snapshot.from_families(families(scorer.registry), aggregate_families)
    aggregate_only = Snapshot.from_families(None, aggregate_families)
    return before, after, aggregate_only


#: Prometheus's ``/api/v1/alerts`` answer: two firing, one pending, one inactive.
PROMETHEUS_ALERTS = {
    "status": "success",
    "data": {
        "alerts": [
            {
                "labels": {"alertname": "AppraisePredictionDrift", "severity": "warning"},
                "annotations": {"summary": "s"},
                "state": "pending",
                "activeAt": "2024-01-01T12:00:00Z",
                "value": "3e-01",
            },
            *(
                {
                    "labels": {
                        "alertname": "AppraiseFeatureDrift",
                        "severity": "warning",
                        "feature": feature,
                        "window": "5m",
                        "job": "appraise-aggregate",
                    },
                    "annotations": {},
                    "state": "firing",
                    "activeAt": "2024-01-01T11:58:00Z",
                    "value": "4.1e-01",
                }
                for feature in ("zoning", "neighbourhood")
            ),
            {
                "labels": {"alertname": "AppraiseScorerDown", "severity": "critical"},
                "state": "inactive",
            },
        ]
    },
}
