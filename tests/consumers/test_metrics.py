"""The scorer's metrics: names, series that exist at start-up, lag series of revoked partitions."""

from __future__ import annotations

import time

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest

from consumers.metrics import ScorerMetrics
from stream.contract.reasons import REASONS
from stream.settings import ScorerSettings


def test_series_exist_at_zero_from_the_start() -> None:
    registry = CollectorRegistry()
    metrics = ScorerMetrics(registry, ScorerSettings())
    metrics.set_model("abc123")
    for reason in REASONS:
        assert registry.get_sample_value("appraise_scoring_errors_total", {"reason": reason}) == 0
    assert registry.get_sample_value("appraise_predictions_total", {"model_version": "abc123"}) == 0
    assert registry.get_sample_value("appraise_events_consumed_total") == 0
    assert registry.get_sample_value("appraise_model_info", {"version": "abc123"}) == 1
    assert registry.get_sample_value("process_resident_memory_bytes") is not None


def test_prediction_buckets_come_from_settings() -> None:
    registry = CollectorRegistry()
    settings = ScorerSettings(prediction_buckets_dollars=(1e5, 1e7, 2e7))
    metrics = ScorerMetrics(registry, settings, process_collectors=False)
    metrics.observe_prices(np.array([5e4, 2e5, 1.5e7, 3e7, 1e7]))
    bucket = "appraise_predicted_price_dollars_bucket"
    assert registry.get_sample_value(bucket, {"le": "100000.0"}) == 1
    # the same spelling of edges as prometheus_client's own histograms
    assert registry.get_sample_value(bucket, {"le": "1e+07"}) == 3
    assert registry.get_sample_value(bucket, {"le": "2e+07"}) == 4
    assert registry.get_sample_value(bucket, {"le": "+Inf"}) == 5
    assert registry.get_sample_value("appraise_predicted_price_dollars_count") == 5
    assert registry.get_sample_value("appraise_predicted_price_dollars_sum") == 5.525e7


def test_event_lag_histogram_counts_in_bulk() -> None:
    registry = CollectorRegistry()
    metrics = ScorerMetrics(registry, ScorerSettings(), process_collectors=False)
    metrics.observe_event_lags(np.array([0.004, 0.005, 0.02, 1e9]))
    bucket = "appraise_event_lag_seconds_bucket"
    assert registry.get_sample_value(bucket, {"le": "0.005"}) == 2
    assert registry.get_sample_value(bucket, {"le": "0.025"}) == 3
    assert registry.get_sample_value(bucket, {"le": "+Inf"}) == 4
    assert b"# TYPE appraise_event_lag_seconds histogram" in generate_latest(registry)


def test_revoked_partitions_lose_their_lag_series() -> None:
    registry = CollectorRegistry()
    metrics = ScorerMetrics(registry, ScorerSettings(), process_collectors=False)
    for partition in range(3):
        metrics.set_lag("listings", partition, 10 * partition)
    metrics.keep_only_partitions([("listings", 2)])
    lag = "appraise_consumer_lag_records"
    assert registry.get_sample_value(lag, {"topic": "listings", "partition": "2"}) == 20
    assert registry.get_sample_value(lag, {"topic": "listings", "partition": "0"}) is None
    assert registry.get_sample_value("appraise_scorer_assigned_partitions") == 1


def test_the_holdout_mape_is_exported_for_the_model_in_use_only() -> None:
    registry = CollectorRegistry()
    metrics = ScorerMetrics(registry, ScorerSettings(), process_collectors=False)
    metrics.set_holdout_mape("old", 0.2)
    metrics.set_holdout_mape("new", 0.106)
    name = "appraise_model_holdout_mape_ratio"
    assert registry.get_sample_value(name, {"model_version": "new"}) == 0.106
    assert registry.get_sample_value(name, {"model_version": "old"}) is None


def test_consumed_records_stamp_the_time_no_data_is_judged_by() -> None:
    registry = CollectorRegistry()
    metrics = ScorerMetrics(registry, ScorerSettings(), process_collectors=False)
    get = registry.get_sample_value
    assert get("appraise_scorer_last_consumed_timestamp_seconds") == 0  # nothing yet
    before = time.time()
    metrics.consumed(7)
    assert get("appraise_events_consumed_total") == 7
    assert before <= (get("appraise_scorer_last_consumed_timestamp_seconds") or 0) <= time.time()
