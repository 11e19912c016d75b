"""The stream app alone in a process of its own, its join table recovered from the changelog the
test wrote: prints one JSON line with what it stored and its resident memory (the budget is the
process's, so it is measured where nothing else of the test suite lives).

Run by ``test_join_store.py`` as ``python -m tests.stream.aggregate.join_rss`` with the test's
settings in ``APPRAISE_*`` variables and ``JOIN_RSS_NEW`` predictions to store on top."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from stream.aggregate.app import AggregateApp
from stream.aggregate.service import new_metrics
from stream.model.load import load_model
from stream.settings import Settings, load_settings
from tests.needs import until
from tests.stream.aggregate.conftest import VERSION
from tests.stream.aggregate.helpers import publish


def prediction(listing: str, event_time: float, price: float, topic: str) -> bytes:
    stamp = datetime.fromtimestamp(event_time, UTC)
    event = {
        "listing_id": listing,
        "event_time": stamp,
        "predicted_price": price,
        "model_version": VERSION,
        "scored_at": stamp,
        "source_topic": topic,
        "source_partition": 0,
        "source_offset": 0,
    }
    return orjson.dumps(event, option=orjson.OPT_UTC_Z)


def prediction_records(
    settings: Settings, count: int, event_time: float
) -> list[tuple[bytes, bytes]]:
    return [
        (f"new-{i}".encode(), prediction(f"new-{i}", event_time, 1.0, settings.topics.listings))
        for i in range(count)
    ]


def rss() -> int:
    """This process's resident set size, in bytes."""
    with open("/proc/self/status", encoding="ascii") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def stored_keys(app: AggregateApp) -> set[str]:
    """Every listing in the join table's databases (faust's own offset key aside; the table's
    keys are JSON strings)."""
    store: Any = app.recent.data
    # An Rdict is not iterable by itself in raw mode: its keys() are.
    dbs = store._dbs.values()
    keys = (key for db in dbs for key in db.keys() if key != store.offset_key)  # noqa: SIM118
    return {orjson.loads(key) for key in keys}


async def main() -> dict[str, float]:
    settings = load_settings()
    new = int(os.environ["JOIN_RSS_NEW"])
    event_time = float(os.environ["JOIN_RSS_EVENT_TIME"])
    profile = load_model(settings.model_dir).profile
    app = AggregateApp(settings, profile, new_metrics(settings, CollectorRegistry()))
    figures: dict[str, float] = {"before": rss()}
    started = time.perf_counter()
    async with app:
        # A restarted worker reads the changelog into its on-disk store before it is ready.
        figures["recovered_s"] = time.perf_counter() - started
        figures["stored"] = len(stored_keys(app))
        figures["after"] = rss()
        # The join keeps working on top: predictions through the agent, then a sweep.
        await publish(
            settings.kafka,
            settings.topics.predictions,
            prediction_records(settings, new, event_time),
        )
        counter = app.metrics.predictions_stored
        await until(lambda: counter._value.get() == new, 120, "predictions stored")
        swept = time.perf_counter()
        figures["expired"] = await app.expire_predictions()
        figures["sweep_s"] = time.perf_counter() - swept
        figures["stored_after"] = len(stored_keys(app))
        figures["peak"] = rss()
    return figures


if __name__ == "__main__":
    sys.stdout.write(orjson.dumps(asyncio.run(main())).decode() + "\n")
