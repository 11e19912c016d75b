"""``appraise produce``: choose the source, apply the scenarios, publish at the asked rate (or,
with ``--http``, send to the HTTP price service)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from producers.http import DEFAULT_CONCURRENCY, HttpStats, send_http
from producers.publish import EventTime, PublishPlan, PublishStats, SaleLabels, publish
from producers.scenarios import Scenario, ScenarioStream
from producers.sources import (
    Draft,
    holdout_drafts,
    jsonl_drafts,
    read_file_lines,
    read_lines,
    repeat,
)
from stream.errors import DataError
from stream.kafka.clients import producing, wait_until_reachable
from stream.settings import Settings

#: ``--source`` value for the bundled 2008-2010 sales, the default.
HOLDOUT = "holdout"


@dataclass(frozen=True, slots=True)
class ProduceOptions:
    """What the command line asked for."""

    source: str = HOLDOUT  # "holdout", a JSONL path, or "-" for standard input
    rate: float | None = None
    count: int | None = None
    loop: bool = False
    event_time: EventTime = "history"
    scenarios: Sequence[Scenario] = ()
    seed: int = 0
    with_sales: bool = False
    sale_delay_s: float = 30.0


def drafts_for(options: ProduceOptions) -> Iterable[Draft]:
    """The source's drafts (repeated with ``loop``) with the scenarios applied, lazily where the
    source is a stream. Scenarios apply after the repetition, so ``after_s``/``until_s`` count
    from the first event of the whole run, not of one pass."""
    pool = holdout_drafts()  # scenarios sample from and rank by the bundled data
    if options.source == HOLDOUT:
        source: Iterable[Draft] = pool
    elif options.source == "-":
        source = jsonl_drafts(read_lines(sys.stdin.buffer))
    else:
        path = Path(options.source)
        if not path.is_file():
            raise DataError(
                f"--source {options.source}: no such file (expected 'holdout', a JSONL file or -)"
            )
        source = jsonl_drafts(read_file_lines(path))
    if options.loop:
        source = repeat(source)
    if not options.scenarios:
        return source
    return ScenarioStream(options.scenarios, seed=options.seed, pool=pool).apply(source)


async def produce(
    settings: Settings,
    options: ProduceOptions,
    *,
    stop: asyncio.Event | None = None,
    on_progress: Callable[[PublishStats], None] | None = None,
) -> PublishStats:
    """Publish by ``options`` to the cluster in ``settings``; returns what was acknowledged."""
    drafts = drafts_for(options)
    plan = PublishPlan(
        topic=settings.topics.listings,
        sales_topic=settings.topics.sales if options.with_sales else None,
        sale_delay_s=options.sale_delay_s,
        rate=options.rate,
        count=options.count,
        event_time=options.event_time,
    )
    await wait_until_reachable(settings.kafka, settings.service.broker_wait_s)
    async with producing(settings.kafka, f"sending to {plan.topic}") as producer:
        return await publish(producer, drafts, plan, on_progress=on_progress, stop=stop)


async def produce_http(
    settings: Settings,
    options: ProduceOptions,
    *,
    url: str,
    concurrency: int = DEFAULT_CONCURRENCY,
    stop: asyncio.Event | None = None,
    on_progress: Callable[[HttpStats], None] | None = None,
) -> HttpStats:
    """Send by ``options`` to the price service at ``url`` (``POST {url}/predict`` each); with
    ``with_sales`` the labels go to the sales topic of the cluster in ``settings``, as without
    ``--http``. Returns how the requests were answered."""
    drafts = drafts_for(options)

    async def send(sales: SaleLabels | None) -> HttpStats:
        return await send_http(
            url,
            drafts,
            rate=options.rate,
            count=options.count,
            event_time=options.event_time,
            concurrency=concurrency,
            sales=sales,
            stop=stop,
            on_progress=on_progress,
        )

    if not options.with_sales:
        return await send(None)
    await wait_until_reachable(settings.kafka, settings.service.broker_wait_s)
    async with producing(settings.kafka, f"sending to {settings.topics.sales}") as producer:
        return await send(SaleLabels(producer, settings.topics.sales, options.sale_delay_s))
