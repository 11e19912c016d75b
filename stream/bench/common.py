"""What both benchmarks share: the listings they publish, fresh topics that are deleted after
the run, waiting for a condition, and the peak memory of a process."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final

import orjson
from prometheus_client import CollectorRegistry

from consumers.metrics import RunStats, ScorerMetrics
from consumers.scorer import Scorer
from producers.sources import holdout_drafts
from stream.contract.times import rfc3339
from stream.errors import BrokerError
from stream.kafka.clients import producing
from stream.model.predict import LoadedModel
from stream.settings import ScorerSettings, Settings

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

#: Listings generated and published at a time.
CHUNK: Final = 10_000


def figures_json(result: DataclassInstance) -> bytes:
    """A bench result (a dataclass of figures) as one JSON object, each figure to 3 decimals:
    what ``--json`` prints."""
    return orjson.dumps({k: round(v, 3) for k, v in asdict(result).items()})


def run_tag() -> str:
    """A short random tag that names this run's topics and groups."""
    return uuid.uuid4().hex[:8]


def holdout_listings() -> list[dict[str, object]]:
    """The bundled hold-out sales as listing dicts (cycled by the benchmarks)."""
    return [d.listing for d in holdout_drafts() if d.listing is not None]


def listing_chunks(
    n: int, prefix: str = "bench", *, age_s: float = 0.0
) -> Iterator[list[tuple[bytes, bytes]]]:
    """Chunks of (key, value): hold-out listings with fresh ids; ``event_time`` is now, less
    ``age_s`` seconds."""
    base = holdout_listings()
    for start in range(0, n, CHUNK):
        now = rfc3339(datetime.now(UTC) - timedelta(seconds=age_s))
        chunk = []
        for i in range(start, min(n, start + CHUNK)):
            listing_id = f"{prefix}-{i:08d}"
            event = {**base[i % len(base)], "listing_id": listing_id, "event_time": now}
            chunk.append((listing_id.encode(), orjson.dumps(event)))
        yield chunk


async def publish_chunks(
    settings: Settings, topic: str, chunks: Iterable[Sequence[tuple[bytes, bytes]]]
) -> None:
    """Send ``(key, value)`` chunks to ``topic``, each chunk acknowledged before the next."""
    async with producing(settings.kafka, f"sending to {topic}") as producer:
        for chunk in chunks:
            futures = [await producer.send(topic, value, key=key) for key, value in chunk]
            await asyncio.gather(*futures)


async def until(condition: Callable[[], bool], what: str, timeout_s: float) -> None:
    """Return once ``condition()`` holds (checked every 10 ms); BrokerError after
    ``timeout_s`` naming ``what`` was not done."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise BrokerError(f"{what} did not happen within {timeout_s:g} s")
        await asyncio.sleep(0.01)


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size of a process (Linux ``VmHWM``), in MB; NaN elsewhere."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


async def score(
    settings: Settings,
    scorer: ScorerSettings,
    model: LoadedModel,
    *,
    max_events: int,
    timeout_s: float | None = None,
) -> RunStats:
    """Score ``max_events`` listings of ``settings.topics.listings`` in this process, as a new
    consumer group (the scorer's batch path, its metrics on a registry of their own)."""
    config = scorer.model_copy(update={"group_id": f"bench-scorer-{run_tag()}"})
    metrics = ScorerMetrics(CollectorRegistry(), config, process_collectors=False)
    async with Scorer(settings, config, model=model, metrics=metrics) as instance:
        return await instance.run(max_events=max_events, timeout=timeout_s)
