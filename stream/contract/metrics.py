"""The metric catalogue: every series the services export, named once.

The exporters build their metrics from these entries (``stream.service.metrics``), the live
view reads the pages by these names, and ``tests/prometheus/test_metrics_reference.py`` checks
that ``docs/metrics.md`` lists exactly these, with the same type and labels. Names follow
``docs/observability.md``: prefix ``appraise_``, base units in the name, counters end in
``_total`` (as exposed), an info's name ends in ``_info``.
"""

from __future__ import annotations

from typing import Final, Literal

from stream.contract import history_metrics as history
from stream.contract import http_metrics as http
from stream.contract.metric_name import MetricName
from stream.contract.metric_name import metric as _m

Service = Literal["scorer", "aggregate", "serve", "history"]

_V = "model_version"
_W = "window"

# --- both services ----------------------------------------------------------------------------

CONSUMER_LAG = _m(
    "appraise_consumer_lag_records",
    "gauge",
    "High watermark minus the next offset to process, per assigned partition.",
    "topic",
    "partition",
)

# --- the scorer -------------------------------------------------------------------------------

EVENTS_CONSUMED = _m(
    "appraise_events_consumed_total",
    "counter",
    "Records taken from the listings topic (valid or not).",
)
PREDICTIONS = _m(
    "appraise_predictions_total",
    "counter",
    "Predictions produced and acknowledged by the broker, by model version.",
    _V,
)
SCORING_ERRORS = _m(
    "appraise_scoring_errors_total",
    "counter",
    "Records dead-lettered (one dead letter each), by reason code.",
    "reason",
)
SCORING_LATENCY = _m(
    "appraise_scoring_latency_seconds",
    "histogram",
    "Time to score one batch: decode, predict, produce, broker acks and commit.",
)
BATCH_SIZE = _m("appraise_scoring_batch_size_events", "histogram", "Records per scored batch.")
EVENT_LAG = _m(
    "appraise_event_lag_seconds",
    "histogram",
    "scored_at - event_time of each prediction; replays of history land in the top bucket.",
)
PREDICTED_PRICE = _m(
    "appraise_predicted_price_dollars",
    "histogram",
    "Predicted prices in US dollars (edges are the scorer setting prediction_buckets_dollars).",
)
IN_FLIGHT = _m(
    "appraise_scorer_in_flight_events", "gauge", "Records taken from Kafka and not yet committed."
)
ASSIGNED_PARTITIONS = _m(
    "appraise_scorer_assigned_partitions",
    "gauge",
    "Partitions of the listings topic assigned to this scorer.",
)
PANES_PUBLISHED = _m(
    "appraise_panes_published_total",
    "counter",
    "Pane partials published to the prediction-panes topic.",
)
BROKER_RETRIES = _m(
    "appraise_scorer_broker_retries_total",
    "counter",
    "Retries of a produce or commit after a retriable broker error.",
)
LAST_COMMIT = _m(
    "appraise_scorer_last_commit_timestamp_seconds",
    "gauge",
    "Unix time of the last successful offset commit.",
)
MODEL_INFO = _m("appraise_model_info", "info", "The model this scorer uses.", "version")
HOLDOUT_MAPE = _m(
    "appraise_model_holdout_mape_ratio",
    "gauge",
    "The model card's hold-out MAPE: the yardstick realised error is compared against.",
    _V,
)

LAST_CONSUMED = _m(
    "appraise_scorer_last_consumed_timestamp_seconds",
    "gauge",
    "Unix time the scorer last took records from the listings topic (0 until the first).",
)

SCORER: Final = (
    EVENTS_CONSUMED,
    PREDICTIONS,
    SCORING_ERRORS,
    SCORING_LATENCY,
    BATCH_SIZE,
    EVENT_LAG,
    PREDICTED_PRICE,
    CONSUMER_LAG,
    IN_FLIGHT,
    ASSIGNED_PARTITIONS,
    PANES_PUBLISHED,
    BROKER_RETRIES,
    LAST_COMMIT,
    MODEL_INFO,
    HOLDOUT_MAPE,
    LAST_CONSUMED,
)

# --- the stream app ---------------------------------------------------------------------------

PANES = _m("appraise_panes_total", "counter", "Pane partials consumed.")
PANES_INVALID = _m(
    "appraise_panes_invalid_total", "counter", "Pane records that could not be used."
)
PANES_LATE = _m(
    "appraise_panes_late_total",
    "counter",
    "Pane partials counted in a window whose end had passed (within the lateness).",
    _W,
)
PANES_DROPPED = _m(
    "appraise_panes_dropped_total",
    "counter",
    "Pane partials not counted in a window because it had closed (beyond lateness).",
    _W,
)
WINDOWS_CLOSED = _m("appraise_windows_closed_total", "counter", "Windows closed and published.", _W)
SALES_JOINED = _m(
    "appraise_sales_joined_total", "counter", "Sale events joined to their prediction."
)
SALES_UNMATCHED = _m(
    "appraise_sales_unmatched_total",
    "counter",
    "Sale events that found no prediction (none yet, or older than the retention).",
)
JOIN_PREDICTIONS = _m(
    "appraise_join_predictions_total", "counter", "Predictions stored in the join table."
)
WATERMARK = _m(
    "appraise_window_watermark_timestamp_seconds",
    "gauge",
    "Event-time watermark (latest pane start seen) per model version.",
    _V,
)
WINDOW_EVENTS = _m("appraise_window_events", "gauge", "Events in the last closed window.", _W, _V)
WINDOW_END = _m(
    "appraise_window_end_timestamp_seconds",
    "gauge",
    "Event-time end of the last closed window.",
    _W,
    _V,
)
PREDICTION_QUANTILE = _m(
    "appraise_prediction_quantile_dollars",
    "gauge",
    "Quantile of the predicted prices in the last closed window (US dollars).",
    _W,
    "quantile",
    _V,
)
REFERENCE_QUANTILE = _m(
    "appraise_reference_prediction_quantile_dollars",
    "gauge",
    "The same quantile of the reference profile's predictions (US dollars).",
    "quantile",
    _V,
)
PREDICTION_PSI = _m(
    "appraise_prediction_psi", "gauge", "PSI of the predictions against the reference.", _W, _V
)
PREDICTION_KS = _m(
    "appraise_prediction_ks",
    "gauge",
    "Kolmogorov-Smirnov statistic of the predictions against the reference.",
    _W,
    _V,
)
FEATURE_PSI = _m(
    "appraise_feature_psi", "gauge", "PSI of a feature against the reference.", _W, "feature", _V
)
FEATURE_KS = _m(
    "appraise_feature_ks",
    "gauge",
    "Kolmogorov-Smirnov statistic of a numeric feature against the reference.",
    _W,
    "feature",
    _V,
)
FEATURE_MISSING = _m(
    "appraise_feature_missing_ratio",
    "gauge",
    "Share of events missing a feature.",
    _W,
    "feature",
    _V,
)
FEATURE_UNSEEN = _m(
    "appraise_feature_unseen_ratio",
    "gauge",
    "Share of a categorical feature's values the reference never saw.",
    _W,
    "feature",
    _V,
)
DRIFTING_SHARE = _m(
    "appraise_drifting_features_ratio",
    "gauge",
    "Share of features whose drift score is above 1.",
    _W,
    _V,
)
FEATURE_OUT_OF_RANGE = _m(
    "appraise_feature_out_of_range_ratio",
    "gauge",
    "Share of events whose numeric feature lies outside the model's training range.",
    _W,
    "feature",
    _V,
)
PREDICTION_SCORE = _m(
    "appraise_prediction_drift_score",
    "gauge",
    "PSI of the predictions over the larger of the material threshold and its critical value "
    "at the window's size: above 1 is drift.",
    _W,
    _V,
)
FEATURE_SCORE = _m(
    "appraise_feature_drift_score",
    "gauge",
    "PSI of a feature over the larger of the material threshold and its critical value at the "
    "window's size: above 1 is drift.",
    _W,
    "feature",
    _V,
)
CAUSE_SCORE = _m(
    "appraise_drift_cause_score",
    "gauge",
    "Drift score of the drifting features ranked 1-3 by score x importance (likely causes).",
    _W,
    "rank",
    "feature",
    _V,
)
FEATURE_IMPORTANCE = _m(
    "appraise_feature_importance",
    "gauge",
    "Permutation importance of a feature on the validation folds (drop in R² of log price).",
    "feature",
    _V,
)
REALISED_MAE = _m(
    "appraise_realised_error_mae_dollars",
    "gauge",
    "Mean absolute error of joined sales in the last closed window (US dollars).",
    _W,
    _V,
)
REALISED_MAPE = _m(
    "appraise_realised_error_mape_ratio",
    "gauge",
    "Mean absolute percentage error of joined sales in the last closed window.",
    _W,
    _V,
)
REALISED_SALES = _m(
    "appraise_realised_error_sales", "gauge", "Sales joined in the last closed window.", _W, _V
)
TARGET_PSI = _m(
    "appraise_target_psi",
    "gauge",
    "PSI of the sale prices joined in the last closed window against the training prices.",
    _W,
    _V,
)
TARGET_SCORE = _m(
    "appraise_target_drift_score",
    "gauge",
    "PSI of the sale prices over the larger of the material threshold and its critical value: "
    "above 1 is target drift.",
    _W,
    _V,
)

PANES_FUTURE = _m(
    "appraise_panes_future_total",
    "counter",
    "Pane partials (or stored panes of a restored clock) not used: they start more than "
    "event_time_skew_s ahead of the stream app's clock.",
)
SALES_FUTURE = _m(
    "appraise_sales_future_total",
    "counter",
    "Joined sales (or stored sale panes of a restored clock) not used for realised error: "
    "their sale time is more than event_time_skew_s ahead of the stream app's clock.",
)
WINDOW_SIZE = _m(
    "appraise_window_size_seconds",
    "gauge",
    "Size of each window kind, set at start-up; type is tumbling or hopping.",
    _W,
    "type",
)
WINDOW_LAST_CLOSED = _m(
    "appraise_window_last_closed_timestamp_seconds",
    "gauge",
    "Unix time (wall clock) this process last closed a window of this kind holding panes.",
    _W,
)

AGGREGATE: Final = (
    PANES,
    PANES_INVALID,
    PANES_LATE,
    PANES_DROPPED,
    WINDOWS_CLOSED,
    SALES_JOINED,
    SALES_UNMATCHED,
    JOIN_PREDICTIONS,
    CONSUMER_LAG,
    WATERMARK,
    WINDOW_EVENTS,
    WINDOW_END,
    PREDICTION_QUANTILE,
    REFERENCE_QUANTILE,
    PREDICTION_PSI,
    PREDICTION_KS,
    FEATURE_PSI,
    FEATURE_KS,
    FEATURE_MISSING,
    FEATURE_UNSEEN,
    DRIFTING_SHARE,
    FEATURE_OUT_OF_RANGE,
    PREDICTION_SCORE,
    FEATURE_SCORE,
    CAUSE_SCORE,
    FEATURE_IMPORTANCE,
    REALISED_MAE,
    REALISED_MAPE,
    REALISED_SALES,
    TARGET_PSI,
    TARGET_SCORE,
    PANES_FUTURE,
    SALES_FUTURE,
    WINDOW_SIZE,
    WINDOW_LAST_CLOSED,
)

SERVE_MODEL_INFO = _m("appraise_model_info", "info", "The model this service uses.", "version")

SERVE: Final = (
    http.HTTP_REQUESTS,
    http.HTTP_LATENCY,
    http.HTTP_IN_PROGRESS,
    http.HTTP_PREDICTIONS,
    http.HTTP_ERRORS,
    http.HTTP_PREDICTED_PRICE,
    http.HTTP_BATCH_SIZE,
    http.HTTP_PREDICT_DURATION,
    http.HTTP_PUBLISH_BUFFER,
    http.HTTP_PUBLISHED,
    http.HTTP_UNPUBLISHED,
    SERVE_MODEL_INFO,
    HOLDOUT_MAPE,
)

#: Every metric of each service, for the docs check and the exporters' own tests.
BY_SERVICE: Final[dict[Service, tuple[MetricName, ...]]] = {
    "scorer": SCORER,
    "aggregate": AGGREGATE,
    "serve": SERVE,
    "history": history.HISTORY,
}
