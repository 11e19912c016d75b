"""The scorer's Prometheus metrics, registered on an injected ``CollectorRegistry``.

Names follow shared/OBSERVABILITY.md: prefix ``appraise_``, base units in the name, counters end
in ``_total``. Every label combination that can be known at start-up (each dead-letter reason,
the model version) is created then, so its series exists at 0 before the first event.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import cast

import numpy as np
import numpy.typing as npt
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
)
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.utils import floatToGoString

from consumers.settings import ScorerSettings
from stream.events import REASONS

FloatArray = npt.NDArray[np.float64]

#: prometheus_client's spelling of a bucket edge (``1e+07``), so ``le`` labels match its own.
_go_float = cast(Callable[[float], str], floatToGoString)

#: Edges of the batch-size histogram, in events per batch.
BATCH_SIZE_BUCKETS = (1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 2_000.0, 5_000.0, 10_000.0)
#: Edges of the batch duration histogram, in seconds: a 1,000-event batch takes tens of ms.
BATCH_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class ScorerMetrics:
    """Every metric the scorer exports.

    Args:
        registry: where to register; tests pass a fresh one, the process its default.
        settings: bucket edges of the prediction and event-lag histograms.
        process_collectors: also register the process, platform and GC collectors (memory, CPU,
            open fds), which answer "is it leaking". Leave off for prometheus_client's default
            ``REGISTRY``, which has them already.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        settings: ScorerSettings,
        *,
        process_collectors: bool = True,
    ) -> None:
        self.registry = registry
        self.events_consumed = Counter(
            "appraise_events_consumed",
            "Records taken from the listings topic (valid or not).",
            registry=registry,
        )
        self.predictions = Counter(
            "appraise_predictions",
            "Predictions produced and acknowledged by the broker, by model version.",
            ["model_version"],
            registry=registry,
        )
        self.scoring_errors = Counter(
            "appraise_scoring_errors",
            "Records dead-lettered (one dead letter each), by reason code.",
            ["reason"],
            registry=registry,
        )
        self.batch_duration = Histogram(
            "appraise_scoring_latency_seconds",
            "Time to score one batch: decode, predict, produce, broker acks and commit.",
            buckets=BATCH_DURATION_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "appraise_scoring_batch_size_events",
            "Records per scored batch.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self._event_lag = BulkHistogram(
            "appraise_event_lag_seconds",
            "scored_at - event_time of each prediction; replays of history land in the top bucket.",
            settings.event_lag_buckets_seconds,
        )
        self._predicted_price = BulkHistogram(
            "appraise_predicted_price_dollars",
            "Predicted prices in US dollars (edges are the scorer setting "
            "prediction_buckets_dollars).",
            settings.prediction_buckets_dollars,
        )
        registry.register(self._event_lag)
        registry.register(self._predicted_price)
        self.consumer_lag = Gauge(
            "appraise_consumer_lag_records",
            "High watermark minus position, per assigned partition of the listings topic.",
            ["topic", "partition"],
            registry=registry,
        )
        self.in_flight = Gauge(
            "appraise_scorer_in_flight_events",
            "Records taken from Kafka and not yet committed.",
            registry=registry,
        )
        self.assigned_partitions = Gauge(
            "appraise_scorer_assigned_partitions",
            "Partitions of the listings topic assigned to this scorer.",
            registry=registry,
        )
        self.panes_published = Counter(
            "appraise_panes_published",
            "Pane partials published to the prediction-panes topic.",
            registry=registry,
        )
        self.broker_retries = Counter(
            "appraise_scorer_broker_retries",
            "Retries of a produce or commit after a retriable broker error.",
            registry=registry,
        )
        self.last_commit = Gauge(
            "appraise_scorer_last_commit_timestamp_seconds",
            "Unix time of the last successful offset commit.",
            registry=registry,
        )
        self.model_info = Info("appraise_model", "The model this scorer uses.", registry=registry)
        self.holdout_mape = Gauge(
            "appraise_model_holdout_mape_ratio",
            "The model card's hold-out MAPE: the yardstick realised error is compared against.",
            ["model_version"],
            registry=registry,
        )
        for reason in REASONS:
            self.scoring_errors.labels(reason=reason)
        self._lag_series: set[tuple[str, str]] = set()
        if process_collectors:
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)

    def set_model(self, version: str, **info: str) -> None:
        """Announce the model in use; creates its predictions series at 0."""
        self.model_info.info({"version": version, **info})
        self.predictions.labels(model_version=version)

    def set_holdout_mape(self, version: str, mape: float) -> None:
        """Export the model card's hold-out MAPE (a fraction) for the model in use only."""
        self.holdout_mape.clear()
        self.holdout_mape.labels(model_version=version).set(mape)

    def observe_prices(self, prices: FloatArray) -> None:
        """Count a batch of predicted prices (US dollars)."""
        self._predicted_price.observe_many(prices)

    def observe_event_lags(self, lags: FloatArray) -> None:
        """Count a batch of event lags (scored_at - event_time, seconds)."""
        self._event_lag.observe_many(lags)

    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        """Set the consumer lag of one assigned partition."""
        key = (topic, str(partition))
        self._lag_series.add(key)
        self.consumer_lag.labels(*key).set(lag)

    def keep_only_partitions(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Remove the lag series of every partition not in ``partitions`` (revoked ones), so a
        partition that moved to another scorer is not reported twice."""
        keep = {(topic, str(partition)) for topic, partition in partitions}
        for key in self._lag_series - keep:
            self.consumer_lag.remove(*key)
        self._lag_series &= keep
        self.assigned_partitions.set(len(keep))


class BulkHistogram:
    """A histogram fed a whole batch at a time (one numpy pass), exported as a regular
    Prometheus histogram. ``Histogram.observe`` per value takes a lock and costs about a
    microsecond; at tens of thousands of predictions a second that is a real share of the CPU.
    """

    def __init__(self, name: str, documentation: str, edges: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self._edges = np.asarray(edges, dtype=np.float64)
        self._counts = np.zeros(len(edges) + 1, dtype=np.int64)
        self._sum = 0.0
        self._lock = threading.Lock()  # the sidecar may collect from another thread

    def observe_many(self, values: FloatArray) -> None:
        """Count ``values`` (NaN ignored)."""
        values = values[~np.isnan(values)]
        # side="left": a value equal to an edge belongs to that edge's bucket (le = "<=").
        slots = np.searchsorted(self._edges, values, side="left")
        counts = np.bincount(slots, minlength=len(self._counts))
        with self._lock:
            self._counts += counts
            self._sum += float(values.sum())

    def collect(self) -> Iterator[HistogramMetricFamily]:
        """The histogram with cumulative buckets, as prometheus_client expects."""
        with self._lock:
            cumulative = np.cumsum(self._counts).tolist()
            total = self._sum
        bounds = [*(_go_float(e) for e in self._edges.tolist()), "+Inf"]
        family = HistogramMetricFamily(self.name, self.documentation)
        family.add_metric([], list(zip(bounds, cumulative, strict=True)), total)
        yield family
