"""How the scorer runs a batch's predict: OpenMP threads by batch size, and a warm-up before the
first real batch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import orjson
from threadpoolctl import ThreadpoolController

from consumers.batch import Predictor, score_batch
from stream.contract.events import ListingEvent
from stream.contract.times import rfc3339
from stream.service.process import usable_cpus

#: The smallest batch predicted with ``predict_threads`` threads (see :class:`PredictThreads`).
PARALLEL_ROWS: Final = 1_000


def thread_limit(threads: int) -> int | None:
    """The OpenMP thread limit for setting ``predict_threads``: capped at the CPUs this process
    may use, or None (0) for the library's default."""
    return min(threads, usable_cpus()) if threads else None


class PredictThreads:
    """How many OpenMP threads the model's predict may use, batch by batch.

    A batch of at least :data:`PARALLEL_ROWS` rows gets ``threads``: the event loop waits while
    it is predicted, and a second thread shortens that wait (throughput). A smaller batch gets
    one: in ``appraise bench scorer`` on two cores, two threads raised the event lag at 5,000/s
    (p50 +4-6 ms, p99 +9-24 ms in three paired runs), as the second thread competes with the
    client and the broker, and on a small batch they save nothing. ``None``: the library's
    default, never changed.
    """

    def __init__(self, threads: int | None) -> None:
        self._threads = threads or 1
        self._controller = ThreadpoolController() if threads is not None else None
        # The first limiter remembers the limits from before, for :meth:`restore`.
        self._original = self._controller.limit(limits=1) if self._controller else None
        self._current = 1

    def for_rows(self, rows: int) -> None:
        """Set the limit for a batch of ``rows`` (a no-op unless it changes)."""
        if self._controller is None:
            return
        wanted = self._threads if rows >= PARALLEL_ROWS else 1
        if wanted != self._current:
            self._controller.limit(limits=wanted)
            self._current = wanted

    def restore(self) -> None:
        """Put back the limits from before."""
        if self._original is not None:
            self._original.restore_original_limits()
            self._original = self._controller = None


def warm_up(model: Predictor, max_bytes: int) -> None:
    """Score one made-up listing (every feature missing) before joining the group: the first
    predict call of a process pays for lazy set-up in pandas and scikit-learn (here ~100 ms),
    which would otherwise land on the first real events."""
    event = dict.fromkeys(ListingEvent.model_fields)
    event.update(listing_id="warm-up", event_time=rfc3339(datetime.now(UTC)))
    record = _WarmUpRecord(orjson.dumps(event))
    for _ in range(2):
        score_batch([record], model, max_bytes=max_bytes)


@dataclass(frozen=True, slots=True)
class _WarmUpRecord:
    value: bytes
    key: bytes | None = None
    topic: str = "warm-up"
    partition: int = 0
    offset: int = 0
    headers: tuple[tuple[str, bytes], ...] = ()
