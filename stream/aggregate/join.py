"""The label join's parts below faust: what the table of predictions holds, its event-time clock,
and its expiry by a scan of the on-disk store.

``predictions`` and ``sales`` are both keyed by listing_id and have the same partition count, so
a sale is processed by the worker that holds its listing's prediction. The table (faust's RocksDB
store, one database per partition, on disk) keeps a prediction for
``prediction_retention_days`` of event time: the newest prediction of the same partition minus
the prediction's own time. A sale that comes later counts as unmatched.

Expiry scans the store rather than indexing it. Every value already carries its event time, so
a periodic pass over each partition's database, a chunk of keys at a time, finds what is past
the horizon without any index: memory stays flat whatever the table holds (an in-memory heap of
every key, as before, costs about 100 bytes a key: 100+ MB at a million), and nothing extra is
written (an on-disk per-day index would be a second table with its own changelog, kept in step
with the first). The price is CPU: a pass reads every entry (about 3 s per million here, in
steps of a few ms), once every ``stream.aggregate.app.SWEEP_S`` (10 minutes). Between passes a
sale is still checked against the horizon, so expiry is exact to the join, and the sweep only
frees the space.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from stream.contract.events import PredictionEvent
from stream.errors import DataError

#: Keys read per step of a sweep; the event loop runs between steps (about 15 ms each here).
SWEEP_CHUNK: Final = 5_000


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


def stored_event_time(raw: bytes) -> float | None:
    """The event time in a stored value (the store's bytes: faust's JSON of the table's text);
    None if it is not a stored prediction."""
    try:
        text = orjson.loads(raw)
        return StoredPrediction.from_list(orjson.loads(text)).event_time
    except (orjson.JSONDecodeError, DataError, TypeError, ValueError):
        return None


class EventClock:
    """The newest event time seen per partition, and the retention's horizon from it.

    As for the windows, nothing from the future moves this clock: the newest time counts at
    most the wall clock plus ``skew_s`` (one prediction stamped in 2999 would otherwise expire
    every other one). In memory (a float per partition); after a restart the first sweep reads
    it back from the stored predictions.
    """

    def __init__(self, seconds: float, skew_s: float = math.inf) -> None:
        self.seconds = seconds
        self.skew_s = skew_s
        self._newest: dict[int, float] = {}

    def note(self, partition: int, event_time: float, now: float | None = None) -> None:
        """A prediction of ``partition`` with ``event_time`` was seen at wall time ``now``
        (default: the clock)."""
        latest = (time.time() if now is None else now) + self.skew_s
        newest = min(event_time, latest)
        self._newest[partition] = max(self._newest.get(partition, newest), newest)

    def horizon(self, partition: int) -> float:
        """Predictions of ``partition`` older than this (event time) have expired."""
        newest = self._newest.get(partition)
        return -math.inf if newest is None else newest - self.seconds

    def expired(self, partition: int, event_time: float) -> bool:
        """Whether a prediction of ``partition`` with ``event_time`` is past the retention."""
        return event_time < self.horizon(partition)


@dataclass
class SweepStep:
    """What one chunk of a sweep found."""

    expired: list[bytes] = field(default_factory=list)
    """Store keys past the horizon."""
    scanned: int = 0
    next_key: bytes | None = None
    """Where the next chunk starts; None at the end of the database."""


def sweep_step(
    db: Any,
    start: bytes | None,
    horizon: float,
    clock: EventClock,
    partition: int,
    *,
    chunk: int = SWEEP_CHUNK,
    skip: bytes = b"",
) -> SweepStep:
    """Scan up to ``chunk`` entries of ``db`` (a ``rocksdict.Rdict`` in raw mode) from
    ``start`` (None: the first key): the keys whose prediction is older than ``horizon``, each
    entry's event time noted in ``clock``. ``skip`` is faust's own key (its offset). No await:
    the caller deletes what is returned before the agents run again, so nothing scanned can be
    overwritten in between; the iterator lives for this step only (an open one would pin the
    memtables and files it reads)."""
    step = SweepStep()
    it = db.iter()
    if start is None:
        it.seek_to_first()
    else:
        it.seek(start)
    while it.valid():
        if step.scanned == chunk:
            step.next_key = it.key()
            break
        key, step.scanned = it.key(), step.scanned + 1
        event_time = None if key == skip else stored_event_time(it.value())
        if event_time is not None:
            clock.note(partition, event_time)
            if event_time < horizon:
                step.expired.append(key)
        it.next()
    del it
    return step


async def sweep(
    databases: Iterable[tuple[int, Any]],
    clock: EventClock,
    tombstone: Callable[[int, bytes], None],
    *,
    skip: bytes = b"",
    chunk: int = SWEEP_CHUNK,
) -> int:
    """Delete the expired predictions of ``databases`` ((partition, rocksdict database) pairs),
    each from its database and with ``tombstone(partition, key)`` (its changelog's): every
    database is scanned from its first key, ``chunk`` keys a step (:func:`sweep_step`), the
    event loop running between steps. Returns how many were deleted."""
    deleted = 0
    for partition, db in databases:
        start: bytes | None = None
        while True:
            # The horizon of each step: the clock moves with the predictions meanwhile.
            step = sweep_step(
                db, start, clock.horizon(partition), clock, partition, chunk=chunk, skip=skip
            )
            for key in step.expired:
                db.delete(key)
                tombstone(partition, key)
            deleted += len(step.expired)
            if step.next_key is None:
                break
            start = step.next_key
            await asyncio.sleep(0)
    return deleted
