"""The HTTP price service's own metrics, from the catalogue (:mod:`stream.contract.http_metrics`).

The request counter and latency histogram are prometheus-fastapi-instrumentator's, the
in-progress gauge a middleware's (see :func:`consumers.http.app.instrument`); the ones here are
what only this service knows: listings priced and refused, the predicted prices, the coalesced
batches and the Kafka buffer.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

from prometheus_client import CollectorRegistry

from consumers.metrics import BATCH_DURATION_BUCKETS, BulkHistogram
from stream.contract import http_metrics as names
from stream.contract import metrics as catalogue
from stream.contract.reasons import REASONS
from stream.service.metrics import counter, gauge, histogram, info, process_collectors
from stream.settings import ServeSettings

#: Why a request is refused before any listing in it is judged (beside the contract's reasons).
HttpReason = Literal["not_an_array", "too_many_items", "not_ready"]
HTTP_REASONS: Final[tuple[HttpReason, ...]] = get_args(HttpReason)

#: What the service publishes to Kafka.
Kind = Literal["prediction", "pane"]
KINDS: Final[tuple[Kind, ...]] = get_args(Kind)

#: Edges of the coalesced batch sizes, in listings.
BATCH_LISTINGS_BUCKETS: Final = (
    1.0,
    2.0,
    4.0,
    8.0,
    16.0,
    32.0,
    64.0,
    128.0,
    256.0,
    1_000.0,
    10_000.0,
)


class ServeMetrics:
    """Every metric of ``appraise serve`` but the instrumentator's.

    Args:
        registry: where to register (the instrumentator registers there too).
        settings: the price bands (``prediction_buckets_dollars``).
        process_collectors: also register the process, platform and GC collectors.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        settings: ServeSettings,
        *,
        with_process_collectors: bool = True,
    ) -> None:
        r = registry
        self.registry = registry
        self.predictions = counter(names.HTTP_PREDICTIONS, r)
        self.errors = counter(names.HTTP_ERRORS, r)
        self.prices = BulkHistogram(names.HTTP_PREDICTED_PRICE, settings.prediction_buckets_dollars)
        registry.register(self.prices)
        self.batch_size = histogram(names.HTTP_BATCH_SIZE, r, BATCH_LISTINGS_BUCKETS)
        self.predict_duration = histogram(names.HTTP_PREDICT_DURATION, r, BATCH_DURATION_BUCKETS)
        self.buffer = gauge(names.HTTP_PUBLISH_BUFFER, r)
        self.published = counter(names.HTTP_PUBLISHED, r)
        self.unpublished = counter(names.HTTP_UNPUBLISHED, r)
        self.model_info = info(catalogue.SERVE_MODEL_INFO, r)
        self.holdout_mape = gauge(catalogue.HOLDOUT_MAPE, r)
        for reason in (*REASONS, *HTTP_REASONS):
            self.errors.labels(reason=reason)
        for kind in KINDS:
            self.published.labels(kind=kind)
            self.unpublished.labels(kind=kind)
        if with_process_collectors:
            process_collectors(registry)

    def set_model(self, version: str, holdout_mape: float) -> None:
        """Announce the model in use; creates its predictions series at 0."""
        self.model_info.info({"version": version})
        self.predictions.labels(model_version=version)
        self.holdout_mape.clear()
        self.holdout_mape.labels(model_version=version).set(holdout_mape)
