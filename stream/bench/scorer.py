"""``appraise bench scorer``: the scorer against the ceiling of the broker and client, and against
a per-event price service, measured in one run on the broker in use.

1. Publish ``events`` listings (the bundled hold-out sales, cycled; default 200,000) to a fresh
   topic.
2. The pipe: consume them, send a record of the same size and key per record with the scorer's
   producer calls (``send``, then gather the futures), commit per batch; no decoding, no model.
   The ceiling of any scorer on this broker and client.
3. The scorer, end to end (:class:`consumers.scorer.Scorer`), on the same records.
4. Per event, as a request/response price service works: decode one record, predict one row
   with scikit-learn, encode and send one prediction; commit per fetched batch. Run for
   ``per_event_seconds``. (The scorer's compiled trees, setting ``compile_trees``, are not
   used here: a service calls the model it loaded.)
5. Event lag: the scorer as its own process (``appraise score``, as deployed), fed listings
   published at ``rate`` per second for ``lag_seconds`` with ``event_time`` stamped at
   publication; p50/p99 of ``scored_at - event_time``, and that process's peak RSS.

Throughputs count from the first records fetched to the last commit, so group joins (seconds on
the embedded broker) are left out. Steps 2-4 run under the garbage-collector setting of a scorer
process (:func:`consumers.heap.scoring_heap`), so none of them is measured with a handicap the
deployed scorer does not have.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from consumers.delivery import Delivery, Outgoing, Pending
from consumers.heap import scoring_heap
from consumers.predict import PredictThreads, thread_limit
from consumers.service import compile_model
from producers.pacing import Pacer
from stream.bench.common import (
    figures_json,
    holdout_listings,
    listing_chunks,
    peak_rss_mb,
    publish_chunks,
    run_tag,
    score,
)
from stream.contract.decoding import decode_listing
from stream.contract.events import PredictionEvent
from stream.contract.features import FEATURES
from stream.contract.times import parse_rfc3339, rfc3339
from stream.kafka.clients import make_consumer, make_producer, producing, wait_until_reachable
from stream.kafka.topics import TopicSpec, delete_topics, ensure_topics
from stream.model.load import load_model
from stream.model.predict import LoadedModel
from stream.service.process import die_with_parent_fn
from stream.settings import ScorerSettings, Settings, TopicSettings, settings_env


@dataclass(frozen=True)
class BenchResult:
    """The figures of one bench run (``--json`` prints these keys)."""

    scorer_eps: float
    pipe_eps: float
    per_event_eps: float
    ratio_to_pipe: float
    speedup_vs_per_event: float
    lag_p50_ms: float
    lag_p99_ms: float
    rss_mb: float

    def to_json(self) -> bytes:
        """One JSON object with the keys above."""
        return figures_json(self)


async def bench_scorer(
    settings: Settings,
    scorer: ScorerSettings,
    *,
    events: int = 200_000,
    rate: float = 5_000.0,
    lag_seconds: float = 10.0,
    per_event_seconds: float = 10.0,
    progress: Callable[[str], None] = lambda _: None,
) -> BenchResult:
    """Run the bench on ``settings.kafka`` with the model in ``settings.model_dir``.

    Args:
        settings: broker, model directory, ``max_event_bytes``; topic names are not used (the
            bench makes fresh topics and deletes them afterwards).
        scorer: batch size, wait and the rest, as the scorer will run.
        events: listings published for the throughput runs.
        rate: offered rate of the lag run, events per second.
        lag_seconds: length of the lag run, seconds.
        per_event_seconds: length of the per-event run, seconds.
        progress: called with a line per step.
    """
    await wait_until_reachable(settings.kafka, settings.service.broker_wait_s)
    model = load_model(settings.model_dir)
    # The per-event service calls scikit-learn's predict, as a price service does; the scorer
    # compiles its trees first if its settings say so, as `appraise score` does.
    per_event_model = load_model(settings.model_dir)
    if scorer.compile_trees:
        progress("compiling the model's trees for the scorer")
        compile_model(model)
    kinds = ("in", "pipe", "out", "dlq", "lag", "lagout")
    names = {k: f"bench-{k}-{run_tag()}" for k in kinds}
    parts = settings.topics.partitions
    await ensure_topics(settings.kafka, [TopicSpec(n, parts) for n in names.values()])
    try:
        progress(f"publishing {events:,} listings to {names['in']}")
        await publish_chunks(settings, names["in"], listing_chunks(events))
        # All three under the collector setting of the scorer process, as deployed.
        with scoring_heap():
            progress("the pipe: consume, produce the same records, commit")
            pipe_eps = await _pipe(settings, scorer, names["in"], names["pipe"], events)
            progress(f"pipe: {pipe_eps:,.0f} events/s; the scorer on the same records")
            topics = _topics(settings, names["in"], names["out"], names["dlq"])
            scorer_eps = (await score(topics, scorer, model, max_events=events)).events_per_second
            progress(f"scorer: {scorer_eps:,.0f} events/s; per event for {per_event_seconds:g} s")
            per_event_eps = await _per_event(
                settings,
                per_event_model,
                names["in"],
                names["out"],
                per_event_seconds,
                thread_limit(scorer.predict_threads),
            )
        progress(f"per event: {per_event_eps:,.1f} events/s; lag at {rate:,.0f}/s")
        lags, rss_mb = await _lag_run(settings, scorer, names, rate, lag_seconds)
    finally:
        await delete_topics(settings.kafka, names.values())
    return BenchResult(
        scorer_eps=scorer_eps,
        pipe_eps=pipe_eps,
        per_event_eps=per_event_eps,
        ratio_to_pipe=scorer_eps / pipe_eps,
        speedup_vs_per_event=scorer_eps / per_event_eps,
        lag_p50_ms=float(np.percentile(lags, 50) * 1e3),
        lag_p99_ms=float(np.percentile(lags, 99) * 1e3),
        rss_mb=rss_mb,
    )


def format_result(result: BenchResult, scorer: ScorerSettings) -> str:
    """The figures for a person, with the targets of the issue beside them."""
    r = result
    return "\n".join(
        [
            f"scorer (batch {scorer.batch_size}) {r.scorer_eps:>12,.0f} events/s",
            f"pipe (no model)    {r.pipe_eps:>12,.0f} events/s",
            f"per event          {r.per_event_eps:>12,.1f} events/s",
            f"ratio to pipe      {r.ratio_to_pipe:>12.2f}   (target >= 0.5)",
            f"speedup vs per-event {r.speedup_vs_per_event:>10,.0f}x  (target >= 50)",
            f"event lag p50/p99  {r.lag_p50_ms:>8.1f} / {r.lag_p99_ms:.1f} ms (target p99 <= 100)",
            f"peak RSS           {r.rss_mb:>12.0f} MB   (target <= 300)",
        ]
    )


# --- the runs --------------------------------------------------------------------------------


async def _pipe(
    settings: Settings, scorer: ScorerSettings, source: str, sink: str, events: int
) -> float:
    """Consume → send the same bytes → commit, with the scorer's producer settings and calls
    and in its order: a batch's requests go out at once, its acks are awaited once the next
    batch is in hand, and it is committed before the next one is sent."""
    producer = make_producer(settings.kafka, max_request_size=scorer.max_record_bytes, linger_ms=0)
    consumer = make_consumer(
        settings.kafka,
        source,
        group_id=f"bench-pipe-{run_tag()}",
        fetch_max_wait_ms=scorer.fetch_max_wait_ms,
    )
    await producer.start()
    await consumer.start()
    delivery = Delivery(producer, retries=scorer.produce_retries, backoff_s=0.2, dlq_topic="")
    try:
        done, first = 0, 0.0
        pending: tuple[Pending, dict[Any, int]] | None = None
        while done < events:
            fetched = await consumer.getmany(
                timeout_ms=scorer.batch_max_wait_ms, max_records=scorer.batch_size
            )
            if not fetched:
                continue
            first = first or time.monotonic()
            records = [r for batch in fetched.values() for r in batch]
            if pending is not None:
                await delivery.finish(pending[0])
                await consumer.commit(pending[1])
            sends: list[Outgoing] = [(sink, r.value, r.key, None) for r in records]
            pending = (
                await delivery.start(sends),
                {tp: b[-1].offset + 1 for tp, b in fetched.items()},
            )
            done += len(records)
        if pending is not None:
            await delivery.finish(pending[0])
            await consumer.commit(pending[1])
        return done / (time.monotonic() - first)
    finally:
        await consumer.stop()
        await producer.stop()


def _topics(settings: Settings, source: str, out: str, dlq: str) -> Settings:
    topics = TopicSettings(
        listings=source, predictions=out, dlq=dlq, panes=out, partitions=settings.topics.partitions
    )
    return settings.model_copy(update={"topics": topics})


async def _per_event(
    settings: Settings,
    model: LoadedModel,
    source: str,
    sink: str,
    seconds: float,
    threads: int | None,
) -> float:
    """One decode, one single-row predict, one send per event; commit per fetched batch."""
    producer = make_producer(settings.kafka)
    consumer = make_consumer(settings.kafka, source, group_id=f"bench-one-{run_tag()}")
    # The OpenMP threads the scorer uses for a one-row batch (PredictThreads starts there), so
    # the comparison is about batching alone.
    limits = PredictThreads(threads)
    await producer.start()
    await consumer.start()
    try:
        done, first = 0, 0.0
        while not first or time.monotonic() - first < seconds:
            fetched = await consumer.getmany(timeout_ms=100, max_records=50)
            first = first or (time.monotonic() if fetched else 0.0)
            futures = []
            for record in (r for batch in fetched.values() for r in batch):
                event = decode_listing(record.value, max_bytes=settings.max_event_bytes)
                (price,) = model.predict_columns({f: [getattr(event, f)] for f in FEATURES})
                prediction = PredictionEvent(
                    listing_id=event.listing_id,
                    event_time=event.event_time,
                    predicted_price=round(float(price), 2),
                    model_version=model.version,
                    scored_at=datetime.now(UTC),
                    source_topic=record.topic,
                    source_partition=record.partition,
                    source_offset=record.offset,
                )
                futures.append(await producer.send(sink, prediction.to_json(), key=record.key))
            await asyncio.gather(*futures)
            if fetched:
                await consumer.commit({tp: b[-1].offset + 1 for tp, b in fetched.items()})
                done += sum(len(b) for b in fetched.values())
        return done / (time.monotonic() - first)
    finally:
        await consumer.stop()
        await producer.stop()
        limits.restore()


async def _lag_run(
    settings: Settings, scorer: ScorerSettings, names: dict[str, str], rate: float, seconds: float
) -> tuple[npt.NDArray[np.float64], float]:
    """The scorer as its own process (``appraise score``), as deployed; listings stamped at
    publication sent to it at ``rate`` for ``seconds``. Returns ``scored_at - event_time`` of
    every prediction (seconds) and the scorer process's peak RSS (MB)."""
    total = int(rate * seconds)
    lag_settings = _topics(settings, names["lag"], names["lagout"], names["dlq"])
    config = scorer.model_copy(update={"group_id": f"bench-lag-{run_tag()}"})
    metrics = settings.metrics.model_copy(update={"scorer_port": 0})
    update = {"scorer": config, "metrics": metrics, "topics": lag_settings.topics}
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "stream",
        "score",
        env=settings_env(settings.model_copy(update=update)),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=die_with_parent_fn(),
    )
    try:
        await _wait_for_line(child, "partitions assigned", 60)
        drain = asyncio.create_task(_discard(child))
        await _publish_paced(settings, names["lag"], rate, total)
        lags = await _lags(settings, names["lagout"], total)
        rss_mb = peak_rss_mb(child.pid)
        child.send_signal(signal.SIGTERM)
        await asyncio.wait_for(child.wait(), settings.service.drain_deadline_s + 5)
        await drain
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    return lags, rss_mb


async def _wait_for_line(child: asyncio.subprocess.Process, needle: str, timeout_s: float) -> None:
    assert child.stderr is not None  # noqa: S101 - created with stderr=PIPE
    seen: list[str] = []
    async with asyncio.timeout(timeout_s):
        async for line in child.stderr:
            seen.append(line.decode(errors="replace"))
            if needle in seen[-1]:
                return
    raise RuntimeError("the scorer process ended before it was assigned:\n" + "".join(seen))


async def _discard(child: asyncio.subprocess.Process) -> None:
    assert child.stderr is not None  # noqa: S101 - created with stderr=PIPE
    async for _ in child.stderr:
        pass


async def _publish_paced(settings: Settings, topic: str, rate: float, total: int) -> None:
    base = holdout_listings()
    async with producing(settings.kafka, f"sending to {topic}") as producer:
        pacer, sent = Pacer(rate, max_chunk=100), 0
        while sent < total:
            n = min(await pacer.release(sent), total - sent)
            now = rfc3339(datetime.now(UTC))
            for i in range(sent, sent + n):
                event = {**base[i % len(base)], "listing_id": f"lag-{i:08d}", "event_time": now}
                await producer.send(topic, orjson.dumps(event))
            sent += n
        await producer.flush()


async def _lags(settings: Settings, topic: str, total: int) -> npt.NDArray[np.float64]:
    consumer = make_consumer(settings.kafka, topic, group_id=f"bench-read-{run_tag()}")
    await consumer.start()
    lags: list[float] = []
    try:
        async with asyncio.timeout(120):
            while len(lags) < total:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    for record in batch:
                        event = orjson.loads(record.value)
                        if "predicted_price" in event:  # not a pane partial
                            scored = parse_rfc3339(event["scored_at"])
                            at = parse_rfc3339(event["event_time"])
                            lags.append((scored - at).total_seconds())
    finally:
        await consumer.stop()
    return np.asarray(lags, dtype=np.float64)
