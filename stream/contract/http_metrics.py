"""The HTTP price service's part of the metric catalogue (``appraise serve``, job
``appraise-api``); :mod:`stream.contract.metrics` gathers it with the rest.

The request counter and the latency histogram are prometheus-fastapi-instrumentator's own
metrics, named in our namespace; the in-progress gauge is the service's own
(:class:`consumers.http.app.InProgress`).
"""

from __future__ import annotations

from stream.contract.metric_name import metric as _m

_V = "model_version"


HTTP_REQUESTS = _m(
    "appraise_http_requests_total",
    "counter",
    "HTTP requests answered, by handler, method and status code.",
    "handler",
    "method",
    "status",
)
HTTP_LATENCY = _m(
    "appraise_http_request_duration_seconds",
    "histogram",
    "Time from a request's arrival to its response, by handler and method.",
    "handler",
    "method",
)
HTTP_IN_PROGRESS = _m(
    "appraise_http_requests_in_progress",
    "gauge",
    "HTTP requests being answered now, by handler and method.",
    "handler",
    "method",
)
HTTP_PREDICTIONS = _m(
    "appraise_http_predictions_total",
    "counter",
    "Listings priced over HTTP, by model version.",
    _V,
)
HTTP_ERRORS = _m(
    "appraise_http_prediction_errors_total",
    "counter",
    "Listings or request bodies refused over HTTP, by reason (the dead-letter reasons and "
    "not_an_array, too_many_items, not_ready).",
    "reason",
)
HTTP_PREDICTED_PRICE = _m(
    "appraise_http_predicted_price_dollars",
    "histogram",
    "Prices predicted over HTTP, US dollars (edges: setting serve.prediction_buckets_dollars).",
)
HTTP_BATCH_SIZE = _m(
    "appraise_http_batch_size_listings",
    "histogram",
    "Listings per coalesced predict call (concurrent requests batched together).",
)
HTTP_PREDICT_DURATION = _m(
    "appraise_http_predict_duration_seconds",
    "histogram",
    "Time of one coalesced predict call: decode, predict, build the answers.",
)
HTTP_PUBLISH_BUFFER = _m(
    "appraise_http_publish_buffer_records",
    "gauge",
    "Predictions and pane partials waiting to be published to Kafka.",
)
HTTP_PUBLISHED = _m(
    "appraise_http_published_total",
    "counter",
    "Records published to Kafka and acknowledged, by kind (prediction, pane).",
    "kind",
)
HTTP_UNPUBLISHED = _m(
    "appraise_http_unpublished_total",
    "counter",
    "Records that could not be published (buffer full, broker away past the retries), by kind: "
    "HTTP traffic the monitoring does not see.",
    "kind",
)
