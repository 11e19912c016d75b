"""The stream app's side of ``appraise bench history``: how many windows it closes per second.

``events`` hold-out listings (cycled, fresh ids) with event times ``60 / window_events`` seconds
apart, ending an hour ago (a backlog, as a replay or a restart after an outage would send), are
published and scored by :class:`consumers.scorer.Scorer` (its batch path, in process, as in
``appraise bench aggregate``); a pane partial at the time of the run follows the scorer's, so
every window closes. A fresh stream app (started after scoring, its start-up not counted) then
works through the pane stream flat out: windows closed per second from the first partial
reaching the app to the last window record published. Each 1-minute window holds about
``window_events`` events, each 5-minute one five times that: the fewer events per window, the
more windows per second, so the default (the floor at which a window gets drift values,
``min_events``) is the stream app's highest rate of full drift records.

Every topic has one partition: the stream app routes all panes of a model version through one
partition of its own anyway, and one partition keeps the backlog in event-time order, so no
pane arrives late (the scorer reads its partitions side by side, which would shuffle a backlog
by more than the allowed lateness).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import numpy as np
import orjson
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from consumers.panes import PaneBook
from stream.aggregate.app import Activity, AggregateApp
from stream.aggregate.service import new_metrics
from stream.bench.common import CHUNK, holdout_listings, publish_chunks, score, until
from stream.contract.features import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from stream.contract.panes import encode_pane
from stream.contract.times import rfc3339
from stream.kafka.ranges import end_offsets_via_highwater, read_range
from stream.model.predict import LoadedModel
from stream.settings import ScorerSettings, Settings

#: Longest wait for the scorer or the app to work through their input, in seconds.
DRAIN_TIMEOUT_S: Final = 600.0
#: The newest listing is this many seconds old: the closing pane (now) passes every window's
#: end plus the allowed lateness, and is not from the future.
_AGE_S: Final = 3_600.0
#: The app is done once no window record was published for this long after the closing pane.
_QUIET_S: Final = 2.0


@dataclass(frozen=True)
class Closed:
    """What the stream app did: its window records (key, value, as published), the seconds
    they took, the pane partials it merged, and the scorer's rate that made them."""

    records: list[tuple[bytes, bytes]]
    seconds: float
    partials: int
    scorer_eps: float

    @property
    def per_second(self) -> float:
        """Windows closed per second."""
        return len(self.records) / self.seconds


def spread_chunks(
    n: int, window_events: int, prefix: str = "bench-history"
) -> Iterator[list[tuple[bytes, bytes]]]:
    """Chunks of (key, value): hold-out listings with fresh ids, ``60 / window_events`` seconds
    of event time apart, the last one :data:`_AGE_S` old."""
    base = holdout_listings()
    step = 60.0 / window_events
    first = time.time() - _AGE_S - (n - 1) * step
    for start in range(0, n, CHUNK):
        chunk = []
        for i in range(start, min(n, start + CHUNK)):
            listing_id = f"{prefix}-{i:08d}"
            moment = rfc3339(datetime.fromtimestamp(first + i * step, UTC))
            event = {**base[i % len(base)], "listing_id": listing_id, "event_time": moment}
            chunk.append((listing_id.encode(), orjson.dumps(event)))
        yield chunk


def closing_pane(model: LoadedModel, scorer: ScorerSettings) -> tuple[bytes, bytes]:
    """One pane partial of one listing at the time of the run: it closes every window of the
    backlog (as the closing pane of ``appraise bench aggregate``)."""
    book = PaneBook(scorer.pane_seconds, model.version, model.profile.sketch_k)
    book.fold(
        np.array([time.time()]),
        np.array([200_000.0]),
        {name: np.array([np.nan]) for name in NUMERIC_FEATURES},
        {name: [None] for name in CATEGORICAL_FEATURES},
    )
    (pane,) = book.drain()
    return pane.key, encode_pane(pane)


async def close_windows(
    settings: Settings,
    scorer: ScorerSettings,
    model: LoadedModel,
    *,
    app_id: str,
    events: int,
    window_events: int,
) -> Closed:
    """Publish and score the backlog, then time a fresh stream app closing its windows.

    ``settings.topics`` names this run's topics (one partition each, created by the caller)."""
    topics = settings.topics
    await publish_chunks(settings, topics.listings, spread_chunks(events, window_events))
    scored = await score(settings, scorer, model, max_events=events, timeout_s=DRAIN_TIMEOUT_S)
    # After the scorer's last partial in the same partition: the app takes it last.
    await publish_chunks(settings, topics.panes, [[closing_pane(model, scorer)]])
    ends = await end_offsets_via_highwater(settings.kafka, [TopicPartition(topics.panes, 0)])
    partials = sum(ends.values())
    # The windows alone, as they run beside a scorer faster than the join (see join_enabled).
    aggregate = settings.aggregate.model_copy(update={"app_id": app_id, "join_enabled": False})
    bench = settings.model_copy(update={"aggregate": aggregate})
    app = AggregateApp(bench, model.profile, new_metrics(bench, CollectorRegistry()))
    by_model = app.panes_by_model.get_topic_name()
    last_change = [0, time.monotonic()]

    def settled() -> bool:
        if app.published != last_change[0]:
            last_change[:] = [app.published, time.monotonic()]
        merged = app.activity.get(by_model, Activity(0, 0, 0)).records
        return merged >= partials and time.monotonic() - last_change[1] > _QUIET_S

    async with app:
        await until(settled, "the stream app closing the windows of its panes", DRAIN_TIMEOUT_S)
        first = app.activity[topics.panes].first
    records = [
        (r.key or b"", r.value or b"")
        async for batch in read_range(settings.kafka, [TopicPartition(topics.windows, 0)])
        for r in batch
    ]
    return Closed(
        records=records,
        seconds=max(last_change[1] - first, 1e-6),
        partials=partials,
        scorer_eps=scored.events_per_second,
    )
