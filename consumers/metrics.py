"""The scorer's Prometheus metrics, registered on an injected ``CollectorRegistry``.

Every name, type, label set and help text comes from the catalogue
(:mod:`stream.contract.metrics`). Every label combination that can be known at start-up (each
dead-letter reason, the model version) is created then, so its series exists at 0 before the
first event.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from stream.contract import metrics as names
from stream.contract.metric_name import MetricName
from stream.contract.reasons import REASONS
from stream.service.metrics import counter, expect_kind, gauge, histogram, info
from stream.service.metrics import process_collectors as process_collectors_of
from stream.settings import ScorerSettings

FloatArray = npt.NDArray[np.float64]

#: prometheus_client's spelling of a bucket edge (``1e+07``), so ``le`` labels match its own.
_go_float = cast(Callable[[float], str], floatToGoString)

#: Edges of the batch-size histogram, in events per batch.
BATCH_SIZE_BUCKETS = (1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 2_000.0, 5_000.0, 10_000.0)
#: Edges of the batch duration histogram, in seconds: a 1,000-event batch takes tens of ms.
BATCH_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


@dataclass(slots=True)
class RunStats:
    """What a :meth:`Scorer.run` did."""

    events: int = 0
    predictions: int = 0
    dead_letters: int = 0
    batches: int = 0
    seconds: float = 0.0
    """From the start of the run to its end (group join and idle time included)."""
    busy_seconds: float = 0.0
    """From the first records fetched to the last batch committed."""

    @property
    def events_per_second(self) -> float:
        """Throughput while there was work: ``events / busy_seconds``."""
        return self.events / self.busy_seconds if self.busy_seconds > 0 else 0.0


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
        r = registry
        self.events_consumed = counter(names.EVENTS_CONSUMED, r)
        self.predictions = counter(names.PREDICTIONS, r)
        self.scoring_errors = counter(names.SCORING_ERRORS, r)
        self.batch_duration = histogram(names.SCORING_LATENCY, r, BATCH_DURATION_BUCKETS)
        self.batch_size = histogram(names.BATCH_SIZE, r, BATCH_SIZE_BUCKETS)
        self._event_lag = BulkHistogram(names.EVENT_LAG, settings.event_lag_buckets_seconds)
        self._predicted_price = BulkHistogram(
            names.PREDICTED_PRICE, settings.prediction_buckets_dollars
        )
        registry.register(self._event_lag)
        registry.register(self._predicted_price)
        self.consumer_lag = gauge(names.CONSUMER_LAG, r)
        self.in_flight = gauge(names.IN_FLIGHT, r)
        self.assigned_partitions = gauge(names.ASSIGNED_PARTITIONS, r)
        self.panes_published = counter(names.PANES_PUBLISHED, r)
        self.broker_retries = counter(names.BROKER_RETRIES, r)
        self.last_commit = gauge(names.LAST_COMMIT, r)
        self.model_info = info(names.MODEL_INFO, r)
        self.holdout_mape = gauge(names.HOLDOUT_MAPE, r)
        for reason in REASONS:
            self.scoring_errors.labels(reason=reason)
        self.last_consumed = gauge(names.LAST_CONSUMED, r)
        self._lag_series: set[tuple[str, str]] = set()
        if process_collectors:
            process_collectors_of(registry)

    def set_model(self, version: str, **info: str) -> None:
        """Announce the model in use; creates its predictions series at 0."""
        self.model_info.info({"version": version, **info})
        self.predictions.labels(model_version=version)

    def consumed(self, records: int) -> None:
        """Count ``records`` taken from the listings topic, now (``AppraiseNoData`` reads the
        time)."""
        self.events_consumed.inc(records)
        self.last_consumed.set(time.time())

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

    def __init__(self, spec: MetricName, edges: Sequence[float]) -> None:
        expect_kind(spec, "histogram")
        self.name = spec.name
        self.documentation = spec.help
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
