"""Rates between two snapshots: :func:`compute_rates` turns two :class:`Snapshot` and the time
between them into per-second throughput, dead letters and event-lag quantiles (from the
histogram's bucket increases, with Prometheus's :func:`histogram_quantile`); :class:`History`
keeps the snapshots of the last ``RECENT_S`` seconds, for rates over the last refresh and over
that span. Pure but for the history's own memory.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from stream.live.snapshot import Snapshot

#: "Recent" dead letters are those of the last minute: long enough to see a burst at a 2 s refresh.
RECENT_S = 60.0


@dataclass(frozen=True, slots=True)
class Rates:
    """What changed between two snapshots (``None`` where the scorer was down in either)."""

    elapsed_s: float
    events_in: float | None = None  # consumed per second
    predictions_out: float | None = None  # per second
    dead_letters: float | None = None  # per second
    dead_letters_by_reason: Mapping[str, float] = field(default_factory=dict)  # counts in span
    lag_p50_s: float | None = None  # event lag of the predictions made in the span
    lag_p99_s: float | None = None


def compute_rates(before: Snapshot, after: Snapshot, elapsed_s: float) -> Rates:
    """Rates over ``elapsed_s`` seconds, and event-lag quantiles from the bucket increases.

    A counter that went down was reset (the scorer restarted): its new value is the increase,
    as Prometheus's ``rate`` does.
    """
    if not elapsed_s > 0:
        raise ValueError(f"elapsed_s must be positive seconds, got {elapsed_s!r}")
    if not (before.scorer_up and after.scorer_up):
        return Rates(elapsed_s)
    by_reason = {
        reason: _increase(before.dead_letters.get(reason, 0.0), total)
        for reason, total in after.dead_letters.items()
    }
    lag = _bucket_increase(before.event_lag_buckets, after.event_lag_buckets)
    return Rates(
        elapsed_s,
        events_in=_per_s(before.events_consumed, after.events_consumed, elapsed_s),
        predictions_out=_per_s(before.predictions, after.predictions, elapsed_s),
        dead_letters=sum(by_reason.values()) / elapsed_s if by_reason else None,
        dead_letters_by_reason=by_reason,
        lag_p50_s=None if lag is None else histogram_quantile(0.5, lag),
        lag_p99_s=None if lag is None else histogram_quantile(0.99, lag),
    )


def _increase(before: float, after: float) -> float:
    return after - before if after >= before else after


def _per_s(before: float | None, after: float | None, elapsed_s: float) -> float | None:
    if before is None or after is None:
        return None
    return _increase(before, after) / elapsed_s


def _bucket_increase(
    before: Sequence[tuple[float, float]], after: Sequence[tuple[float, float]]
) -> list[tuple[float, float]] | None:
    if not after or [b for b, _ in before] != [b for b, _ in after]:
        return None  # no histogram, or its edges changed with a restart
    if any(a < b for (_, b), (_, a) in zip(before, after, strict=True)):
        return list(after)  # reset
    return [(bound, a - b) for (bound, b), (_, a) in zip(before, after, strict=True)]


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus's ``histogram_quantile`` of cumulative ``(upper bound, count)`` buckets sorted
    by bound (the last ``+Inf``): linear inside the bucket; in the ``+Inf`` bucket the highest
    finite bound. ``None`` when there are no observations."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower if len(buckets) > 1 else None
            if count <= below:
                return lower
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


class History:
    """Snapshots of the last ``span_s`` seconds: rates over the last refresh and the span."""

    def __init__(self, span_s: float = RECENT_S) -> None:
        self._span_s = span_s
        self._items: deque[tuple[float, Snapshot]] = deque()

    def add(self, now: float, snapshot: Snapshot) -> tuple[Rates | None, Rates | None]:
        """Keep ``snapshot`` taken at ``now`` (monotonic seconds); the rates since the previous
        snapshot and since the oldest one within the span (both ``None`` on the first, or if
        the clock did not advance)."""
        last = self._items[-1] if self._items else None
        while self._items and now - self._items[0][0] > self._span_s:
            self._items.popleft()
        first = self._items[0] if self._items else last
        self._items.append((now, snapshot))
        if last is None or first is None or now <= last[0]:
            return None, None
        return (
            compute_rates(last[1], snapshot, now - last[0]),
            compute_rates(first[1], snapshot, now - first[0]),
        )
