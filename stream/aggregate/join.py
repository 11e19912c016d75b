"""The label join's pure parts: what the table of recent predictions holds, and its retention.

``predictions`` and ``sales`` are both keyed by listing_id and have the same partition count, so
a sale is processed by the worker that holds its listing's prediction. The table keeps a
prediction for ``prediction_retention_seconds`` of event time (newest prediction of the same
partition minus the prediction's own time); a sale that comes later counts as unmatched.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

from stream.contract.events import PredictionEvent
from stream.errors import DataError


@dataclass(frozen=True)
class StoredPrediction:
    """One listing's latest prediction as the join table keeps it."""

    price: float
    """Predicted price, US dollars."""
    model_version: str
    event_time: float
    """The listing's event time, Unix seconds."""
    partition: int
    """Partition of the prediction: the changelog partition its table entry lives in."""

    @classmethod
    def of(cls, event: PredictionEvent, partition: int) -> StoredPrediction:
        """The entry for a decoded prediction read from ``partition``."""
        return cls(
            event.predicted_price, event.model_version, event.event_time.timestamp(), partition
        )

    def to_list(self) -> list[float | str | int]:
        """The table value: a compact JSON list."""
        return [self.price, self.model_version, self.event_time, self.partition]

    @classmethod
    def from_list(cls, value: object) -> StoredPrediction:
        """Rebuild :meth:`to_list` output; :class:`DataError` for anything else."""
        if not isinstance(value, list) or len(value) != 4:
            raise DataError(f"not a stored prediction: {value!r:.80}")
        price, version, event_time, partition = value
        return cls(float(price), str(version), float(event_time), int(partition))


class Retention:
    """Which table keys have outlived the retention, per partition, by event time.

    Remembers, per partition, each stored key with its event time, and the newest event time
    seen. A key is due once newest - its time > ``seconds``. Keys overwritten since are skipped
    by the caller (the table holds a newer time than the one noted here). As for the windows,
    nothing from the future moves this clock: the newest time counts at most the wall clock
    plus ``skew_s`` (one prediction stamped in 2999 would otherwise expire every other one).

    In memory only: after a restart :meth:`rebuild` reads the recovered table once.
    """

    def __init__(self, seconds: float, skew_s: float = math.inf) -> None:
        self.seconds = seconds
        self.skew_s = skew_s
        self._heaps: dict[int, list[tuple[float, str]]] = {}
        self._newest: dict[int, float] = {}

    def note(self, partition: int, key: str, event_time: float, now: float | None = None) -> None:
        """Record that ``key`` was stored in ``partition`` with ``event_time``, at wall time
        ``now`` (default: the clock)."""
        heapq.heappush(self._heaps.setdefault(partition, []), (event_time, key))
        latest = (time.time() if now is None else now) + self.skew_s
        newest = min(event_time, latest)
        self._newest[partition] = max(self._newest.get(partition, newest), newest)

    def due(self, partition: int) -> list[tuple[str, float]]:
        """Pop the keys of ``partition`` older than the retention: (key, noted event time)."""
        heap = self._heaps.get(partition)
        if not heap:
            return []
        horizon = self._newest[partition] - self.seconds
        out = []
        while heap and heap[0][0] < horizon:
            event_time, key = heapq.heappop(heap)
            out.append((key, event_time))
        return out

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop what is known of revoked ``partitions``."""
        for partition in partitions:
            self._heaps.pop(partition, None)
            self._newest.pop(partition, None)

    def rebuild(self, entries: Iterable[tuple[str, StoredPrediction]]) -> None:
        """Start over from the table's entries (after recovery)."""
        self._heaps.clear()
        self._newest.clear()
        for key, stored in entries:
            self.note(stored.partition, key, stored.event_time)

    def __len__(self) -> int:
        return sum(len(heap) for heap in self._heaps.values())
