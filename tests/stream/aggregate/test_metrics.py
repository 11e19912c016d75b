"""The stream app's gauges: values of a closed window, bounded model versions, lag series."""

from __future__ import annotations

import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry

from consumers.panes import PaneBook
from stream.aggregate.metrics import AggregateMetrics
from stream.aggregate.policy import DriftPolicy
from stream.aggregate.state import ErrorPane
from stream.aggregate.summary import ErrorSummary, WindowAggregate, WindowSummary, summarise
from stream.aggregate.windows import Window
from stream.model.profile import ReferenceProfile
from stream.settings import AggregateSettings
from tests.stream.aggregate.conftest import IMPORTANCE, fold_rows

POLICY = DriftPolicy.of(AggregateSettings(min_events=200))


def _summary(profile: ReferenceProfile, rows: pd.DataFrame, version: str) -> WindowSummary:
    book = PaneBook(60.0, version)
    fold_rows(book, rows, np.zeros(len(rows)))
    aggregate = WindowAggregate.of(book.drain(), 200)
    window = Window(60.0, "1m", 0.0, version)
    return summarise(window, aggregate, profile, POLICY)


def test_a_closed_window_sets_its_gauges(profile: ReferenceProfile, training: pd.DataFrame) -> None:
    registry = CollectorRegistry()
    metrics = AggregateMetrics(registry, ["1m", "5m"], process_collectors=False)
    assert registry.get_sample_value("appraise_panes_dropped_total", {"window": "5m"}) == 0
    metrics.window_closed(_summary(profile, training, "v1"))
    get = registry.get_sample_value
    labels = {"window": "1m", "model_version": "v1"}
    assert get("appraise_window_events", labels) == len(training)
    assert (get("appraise_prediction_psi", labels) or 1.0) < 0.02
    assert (get("appraise_prediction_drift_score", labels) or 1.0) < 0.1
    assert get("appraise_drifting_features_ratio", labels) == 0.0
    p50 = get("appraise_prediction_quantile_dollars", {**labels, "quantile": "0.5"})
    ref = get(
        "appraise_reference_prediction_quantile_dollars", {"quantile": "0.5", "model_version": "v1"}
    )
    assert p50 is not None
    assert ref is not None
    assert abs(p50 / ref - 1) < 0.03
    feature = {**labels, "feature": "living_area_sqft"}
    assert get("appraise_feature_ks", feature) is not None
    assert (get("appraise_feature_drift_score", feature) or 1.0) < 0.25
    assert get("appraise_feature_unseen_ratio", feature) is None  # numeric: no categories
    assert get("appraise_feature_unseen_ratio", {**labels, "feature": "zoning"}) == 0.0
    # A window with too few events takes the drift values away, keeps the counts.
    metrics.window_closed(_summary(profile, training.iloc[:10], "v1"))
    assert get("appraise_window_events", labels) == 10
    assert get("appraise_prediction_psi", labels) is None
    assert get("appraise_feature_psi", feature) is None
    assert get("appraise_feature_drift_score", feature) is None
    assert get("appraise_windows_closed_total", {"window": "1m"}) == 2


def test_likely_causes_are_ranked_and_replaced_by_the_next_window(
    profile: ReferenceProfile, training: pd.DataFrame
) -> None:
    registry = CollectorRegistry()
    metrics = AggregateMetrics(registry, ["1m"], process_collectors=False)
    metrics.set_importance(profile)
    get = registry.get_sample_value
    assert (
        get(
            "appraise_feature_importance",
            {"feature": "living_area_sqft", "model_version": profile.model_version},
        )
        == IMPORTANCE["living_area_sqft"]
    )
    moved = training.copy()
    moved["living_area_sqft"] *= 1.8
    moved["bedrooms"] += 3
    metrics.window_closed(_summary(profile, moved, "v1"))
    causes = {
        (s.labels["rank"], s.labels["feature"]): s.value
        for family in registry.collect()
        if family.name == "appraise_drift_cause_score"
        for s in family.samples
    }
    labels = {"window": "1m", "model_version": "v1"}
    living = get("appraise_feature_drift_score", {**labels, "feature": "living_area_sqft"})
    bedrooms = get("appraise_feature_drift_score", {**labels, "feature": "bedrooms"})
    assert living is not None
    assert bedrooms is not None
    assert bedrooms > living > 1  # bedrooms moved further, but matter less to the model
    assert causes[("1", "living_area_sqft")] == living
    assert causes[("2", "bedrooms")] == bedrooms
    # A window like the reference names no cause: the previous ones are gone.
    metrics.window_closed(_summary(profile, training, "v1"))
    (family,) = [f for f in registry.collect() if f.name == "appraise_drift_cause_score"]
    assert family.samples == []


def test_series_of_old_model_versions_are_removed(
    profile: ReferenceProfile, training: pd.DataFrame
) -> None:
    registry = CollectorRegistry()
    metrics = AggregateMetrics(registry, ["1m"], max_model_versions=2, process_collectors=False)
    for version in ("v1", "v2", "v3"):
        metrics.window_closed(_summary(profile, training, version))
        metrics.errors_closed(
            ErrorSummary(Window(60.0, "1m", 0.0, version), ErrorPane(1, 5.0, 0.1), None)
        )
    get = registry.get_sample_value
    assert metrics.model_versions == ("v2", "v3")
    assert get("appraise_prediction_psi", {"window": "1m", "model_version": "v1"}) is None
    assert (
        get("appraise_realised_error_mae_dollars", {"window": "1m", "model_version": "v1"}) is None
    )
    assert (
        get("appraise_realised_error_mae_dollars", {"window": "1m", "model_version": "v3"}) == 5.0
    )
    assert get("appraise_prediction_psi", {"window": "1m", "model_version": "v2"}) is not None


def test_lag_series_follow_the_assignment() -> None:
    registry = CollectorRegistry()
    metrics = AggregateMetrics(registry, ["1m"], process_collectors=False)
    metrics.set_lag({("sales", 0): 5, ("sales", 1): 0})
    assert (
        registry.get_sample_value(
            "appraise_consumer_lag_records", {"topic": "sales", "partition": "0"}
        )
        == 5
    )
    metrics.set_lag({("sales", 1): 2})
    assert (
        registry.get_sample_value(
            "appraise_consumer_lag_records", {"topic": "sales", "partition": "0"}
        )
        is None
    )
    assert (
        registry.get_sample_value(
            "appraise_consumer_lag_records", {"topic": "sales", "partition": "1"}
        )
        == 2
    )


def test_an_empty_window_says_no_data_and_sizes_are_exported(
    profile: ReferenceProfile, training: pd.DataFrame
) -> None:
    registry = CollectorRegistry()
    metrics = AggregateMetrics(registry, ["1m", "5m"], process_collectors=False)
    metrics.set_window_size("1m", "tumbling", 60.0)
    get = registry.get_sample_value
    assert get("appraise_window_size_seconds", {"window": "1m", "type": "tumbling"}) == 60.0
    metrics.window_closed(_summary(profile, training, "v1"))
    metrics.errors_closed(ErrorSummary(Window(60.0, "1m", 0.0, "v1"), ErrorPane(3, 5.0, 0.1)))
    metrics.windows_closed_at(["1m"], 1_700_000_000.0)
    labels = {"window": "1m", "model_version": "v1"}
    assert get("appraise_window_last_closed_timestamp_seconds", {"window": "1m"}) == 1.7e9
    # A version whose series are not kept is left alone (no series are created for it).
    metrics.window_empty(Window(120.0, "1m", 60.0, "v0"))
    assert get("appraise_window_events", {"window": "1m", "model_version": "v0"}) is None
    metrics.window_empty(Window(120.0, "1m", 60.0, "v1"))
    metrics.errors_empty(Window(120.0, "1m", 60.0, "v1"))
    assert get("appraise_window_events", labels) == 0
    assert get("appraise_window_end_timestamp_seconds", labels) == 120.0
    assert get("appraise_prediction_psi", labels) is None
    assert get("appraise_prediction_quantile_dollars", {**labels, "quantile": "0.5"}) is None
    assert get("appraise_feature_psi", {**labels, "feature": "living_area_sqft"}) is None
    assert get("appraise_realised_error_sales", labels) == 0
    assert get("appraise_realised_error_mae_dollars", labels) is None
    assert get("appraise_realised_error_mape_ratio", labels) is None
    # An empty window closes no window: the counter and the wall-clock time stay.
    assert get("appraise_windows_closed_total", {"window": "1m"}) == 1
    assert get("appraise_window_last_closed_timestamp_seconds", {"window": "1m"}) == 1.7e9
