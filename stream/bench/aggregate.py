"""``appraise bench aggregate``: does the stream app keep up with the scorer?

One run on the broker in use, fresh topics, deleted afterwards:

1. Publish ``events`` listings (the bundled hold-out sales, cycled, ``event_time`` an hour
   before publication, as live traffic an hour late) and score them with
   :class:`consumers.scorer.Scorer` (its batch path, in process): the scorer's events/s, and the
   pane stream those events produce.
2. A fresh stream app on that pane stream (started after scoring, so its start-up is not
   counted): pane partials per second from the first partial reaching the app to the last one
   merged, and the equivalent events/s (events scored / that time). Then a final pane an hour
   ahead of the listings (at the time of the run: a pane from the future would be dropped, see
   ``event_time_skew_s``) closes every window; its time from reaching the app to the first
   window published is added, so closing and summarising are counted too.
3. The label join on its own app: ``join_events`` predictions, then a sale for each; events/s
   through the join (predictions stored + sales joined, per second).

``ratio_to_scorer`` = aggregate events/s / scorer events/s: at 1 or more the aggregation never
limits throughput. The join runs at faust's per-event pace, behind the scorer by design; its lag
is exported as ``appraise_consumer_lag_records``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import numpy as np
import orjson
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from consumers.panes import PaneBook
from stream.aggregate.app import Activity, AggregateApp
from stream.aggregate.service import new_metrics
from stream.bench.common import figures_json, listing_chunks, publish_chunks, run_tag, score, until
from stream.contract.features import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from stream.contract.panes import encode_pane
from stream.kafka.clients import make_admin, wait_until_reachable
from stream.kafka.ranges import end_offsets_via_highwater
from stream.kafka.topics import TopicSpec, delete_topics, ensure_topics
from stream.model.load import load_model
from stream.model.profile import ReferenceProfile
from stream.settings import ScorerSettings, Settings, TopicSettings

#: Longest wait for the app to work through its input, in seconds.
_DRAIN_TIMEOUT_S: Final = 600.0
#: How far the closing pane is ahead of the listings' event time, in seconds (it must pass
#: every window's end plus the lateness).
_AHEAD_S: Final = 3_600.0


@dataclass(frozen=True)
class AggregateBenchResult:
    """The figures of one run; ``--json`` prints the first four keys (and the rest)."""

    aggregate_eps: float
    scorer_eps: float
    ratio_to_scorer: float
    join_eps: float
    panes: int
    panes_per_second: float
    events: int
    ready_s: float

    def to_json(self) -> bytes:
        """One JSON object with the keys above."""
        return figures_json(self)


def format_result(r: AggregateBenchResult) -> str:
    """The figures for a person, with the issue's target beside them."""
    return "\n".join(
        [
            f"scorer            {r.scorer_eps:>12,.0f} events/s ({r.events:,} events)",
            f"aggregation       {r.aggregate_eps:>12,.0f} events/s equivalent "
            f"({r.panes:,} pane partials at {r.panes_per_second:,.0f}/s)",
            f"ratio to scorer   {r.ratio_to_scorer:>12.1f}   (target >= 1.0)",
            f"label join        {r.join_eps:>12,.0f} events/s (predictions stored + sales joined)",
            f"app ready in      {r.ready_s:>12.1f} s   (target < 10 on the embedded broker)",
        ]
    )


async def bench_aggregate(
    settings: Settings,
    scorer: ScorerSettings,
    *,
    events: int = 200_000,
    join_events: int = 5_000,
    progress: Callable[[str], None] = lambda _: None,
) -> AggregateBenchResult:
    """Run the bench on ``settings.kafka`` with the model in ``settings.model_dir``.

    Args:
        settings: broker, model directory, partitions, aggregate settings (window sizes); the
            topic names and app id are replaced by fresh ones.
        scorer: the scorer's settings (batch size, pane width) as it will run.
        events: listings scored to make the pane stream (default 200,000).
        join_events: predictions, and as many sales, sent through the label join.
        progress: called with a line per step.
    """
    await wait_until_reachable(settings.kafka, settings.service.broker_wait_s)
    model = load_model(settings.model_dir)
    tag = run_tag()
    kinds = ("listings", "predictions", "dlq", "sales", "panes", "windows", "jpred", "jsales")
    names = {k: f"bench-agg-{k}-{tag}" for k in kinds}
    parts = settings.topics.partitions
    await ensure_topics(settings.kafka, [TopicSpec(n, parts) for n in names.values()])
    try:
        bench = settings.model_copy(update={"topics": _topics(settings, names)})
        progress(f"publishing {events:,} listings and scoring them")
        listings = listing_chunks(events, age_s=_AHEAD_S)
        await publish_chunks(bench, names["listings"], listings)
        scored = await score(bench, scorer, model, max_events=events, timeout_s=_DRAIN_TIMEOUT_S)
        scorer_eps = scored.events_per_second
        progress(f"scorer: {scorer_eps:,.0f} events/s")
        ends = await end_offsets_via_highwater(
            settings.kafka, [TopicPartition(names["panes"], p) for p in range(parts)]
        )
        panes = sum(ends.values())
        progress(f"aggregating the {panes:,} pane partials (and a closing one)")
        app_id = f"bench-aggregate-{tag}"
        tick = _tick(model.profile, model.version, scorer)
        seconds, ready_s = await _aggregate(bench, model.profile, app_id, panes, tick)
        progress(f"aggregation: {panes + 1:,} partials in {seconds * 1e3:,.0f} ms")
        join_topics = names | {"predictions": names["jpred"], "sales": names["jsales"]}
        join = settings.model_copy(update={"topics": _topics(settings, join_topics)})
        join_id = f"bench-join-{tag}"
        join_eps = await _join(join, model.profile, model.version, join_id, join_events)
        progress(f"label join: {join_eps:,.0f} events/s")
    finally:
        await _delete(settings, tag)
    aggregate_eps = events / seconds
    return AggregateBenchResult(
        aggregate_eps=aggregate_eps,
        scorer_eps=scorer_eps,
        ratio_to_scorer=aggregate_eps / scorer_eps,
        join_eps=join_eps,
        panes=panes + 1,
        panes_per_second=(panes + 1) / seconds,
        events=events,
        ready_s=ready_s,
    )


def _topics(settings: Settings, names: dict[str, str]) -> TopicSettings:
    return TopicSettings(
        listings=names["listings"],
        predictions=names["predictions"],
        dlq=names["dlq"],
        sales=names["sales"],
        panes=names["panes"],
        windows=names["windows"],
        partitions=settings.topics.partitions,
        replication_factor=settings.topics.replication_factor,
    )


def _tick(profile: ReferenceProfile, version: str, scorer: ScorerSettings) -> tuple[bytes, bytes]:
    """One pane partial an hour ahead of the scored listings (now): it closes all their
    windows."""
    book = PaneBook(scorer.pane_seconds, version, profile.sketch_k)
    ahead = time.time()
    book.fold(
        np.array([ahead]),
        np.array([200_000.0]),
        {name: np.array([np.nan]) for name in NUMERIC_FEATURES},
        {name: [None] for name in CATEGORICAL_FEATURES},
    )
    (pane,) = book.drain()
    return pane.key, encode_pane(pane)


async def _aggregate(
    settings: Settings,
    profile: ReferenceProfile,
    app_id: str,
    partials: int,
    tick: tuple[bytes, bytes],
) -> tuple[float, float]:
    """Seconds from the first partial reaching the app to the last merged, plus the closing
    pane's seconds from reaching the app to its first window published; and start-up.

    The closing pane goes out once the others are merged: sent before, it could reach the app
    first (the route agent reads four partitions), and then every other pane would be late."""
    # The windows alone, as they run beside a scorer faster than the join (see join_enabled).
    aggregate = settings.aggregate.model_copy(update={"app_id": app_id, "join_enabled": False})
    bench = settings.model_copy(update={"aggregate": aggregate})
    app = AggregateApp(bench, profile, new_metrics(bench, CollectorRegistry()))
    by_model = app.panes_by_model.get_topic_name()

    def merged() -> int:
        return app.activity.get(by_model, Activity(0, 0, 0)).records

    async with app:
        await until(
            lambda: merged() >= partials,
            "the stream app getting through its panes",
            _DRAIN_TIMEOUT_S,
        )
        first = app.activity[settings.topics.panes].first
        last = app.activity[by_model].last
        await publish_chunks(bench, settings.topics.panes, [[tick]])
        await until(lambda: app.published > 0, "the closing pane closing windows", 60.0)
        closing = time.monotonic() - app.activity[by_model].last
    return max(last - first, 1e-6) + closing, app.ready_after_s or 0.0


async def _join(
    settings: Settings, profile: ReferenceProfile, version: str, app_id: str, n: int
) -> float:
    aggregate = settings.aggregate.model_copy(update={"app_id": app_id, "windows_enabled": False})
    bench = settings.model_copy(update={"aggregate": aggregate})
    now = datetime.now(UTC)
    predictions, sales = [], []
    for i in range(n):
        key = f"join-{i:08d}"
        predictions.append(
            (
                key.encode(),
                orjson.dumps(
                    {
                        "listing_id": key,
                        "event_time": now,
                        "predicted_price": 200_000.0,
                        "model_version": version,
                        "scored_at": now,
                        "source_topic": "bench",
                        "source_partition": 0,
                        "source_offset": i,
                    },
                    option=orjson.OPT_UTC_Z,
                ),
            )
        )
        sale = {"listing_id": key, "event_time": now + timedelta(seconds=30), "sale_price": 1e5}
        sales.append((key.encode(), orjson.dumps(sale, option=orjson.OPT_UTC_Z)))
    # Both topics filled before the app starts: the join runs flat out, and a sale can be
    # processed before its prediction, so sales are published only after the predictions are
    # stored (a live join sees them 30 s apart, as the producer sends them).
    await publish_chunks(bench, settings.topics.predictions, [predictions])
    app = AggregateApp(bench, profile, new_metrics(bench, CollectorRegistry()))
    async with app:
        topic_p, topic_s = settings.topics.predictions, settings.topics.sales
        await until(
            lambda: app.activity.get(topic_p, (0, 0, 0))[2] >= n,
            "the join storing its predictions",
            _DRAIN_TIMEOUT_S,
        )
        await publish_chunks(bench, topic_s, [sales])
        await until(
            lambda: app.activity.get(topic_s, (0, 0, 0))[2] >= n,
            "the join joining its sales",
            _DRAIN_TIMEOUT_S,
        )
        stored = app.activity[topic_p]
        joined = app.activity[topic_s]
    return 2 * n / ((stored.last - stored.first) + (joined.last - joined.first))


async def _delete(settings: Settings, tag: str) -> None:
    """Delete every topic of this run: its own and the apps' internal ones (all carry ``tag``)."""
    admin = make_admin(settings.kafka)
    try:
        await admin.start()
        topics = [t for t in await admin.list_topics() if tag in t]
    finally:
        await admin.close()
    await delete_topics(settings.kafka, topics)
