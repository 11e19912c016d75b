"""The live view against live servers: plain lines, the terminal view, sources that are down,
hung or failing, and a stop that does not wait for them."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager

import numpy as np
from aiohttp import web
from prometheus_client import generate_latest
from rich.console import Console

from consumers.metrics import ScorerMetrics
from stream.live.run import LiveSources, run_live_view
from tests.needs import until
from tests.stream.live.helpers import aggregate_metrics, scorer_metrics


@asynccontextmanager
async def _serve(routes: Mapping[str, Callable[[], bytes]]) -> AsyncIterator[str]:
    """A tiny aiohttp server on a free port answering each path with ``routes[path]()``."""

    def handler(body: Callable[[], bytes]) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(_request: web.Request) -> web.Response:
            return web.Response(body=body(), content_type="text/plain")

        return handle

    app = web.Application()
    for path, body in routes.items():
        app.router.add_get(path, handler(body))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def _silent_server() -> AsyncIterator[str]:
    """Accepts connections and never answers (a hung process), until the client hangs up."""
    handlers: list[asyncio.Task[None]] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.append(task)
        await reader.read()
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()
        await asyncio.wait_for(asyncio.gather(*handlers), timeout=5)


def _scraped_scorer() -> tuple[ScorerMetrics, Callable[[], bytes]]:
    """The scorer page, with 100 more events (lag 0.2 s) behind each scrape."""
    scorer = scorer_metrics()

    def page() -> bytes:
        scorer.events_consumed.inc(100)
        scorer.predictions.labels("v1").inc(100)
        scorer.observe_event_lags(np.full(100, 0.2))
        return generate_latest(scorer.registry)

    return scorer, page


async def test_plain_lines_from_live_servers_with_one_source_down() -> None:
    _, scorer_page = _scraped_scorer()
    aggregate = aggregate_metrics()
    out = io.StringIO()
    console = Console(file=out)
    assert not console.is_terminal
    async with (
        _serve({"/metrics": scorer_page}) as scorer_url,
        _serve({"/metrics": lambda: generate_latest(aggregate.registry)}) as aggregate_url,
        _silent_server() as silent_url,
    ):
        sources = LiveSources(
            scorer_metrics_urls={"scorer": f"{scorer_url}/metrics"},
            aggregate_metrics_url=f"{aggregate_url}/metrics",
            prometheus_url=silent_url,
        )
        stop = asyncio.Event()
        view = asyncio.create_task(
            run_live_view(sources, stop, console=console, interval_s=0.05, plain_every_s=0.0)
        )
        await until(lambda: "\n" in out.getvalue() or view.done(), 15, "a plain line", out.getvalue)
        stop.set()
        await asyncio.wait_for(view, timeout=5)  # returns: it raised nothing
        assert view.exception() is None
    line = out.getvalue().splitlines()[0]
    match = re.fullmatch(
        r"\d\d:\d\d:\d\d in (\d+\.\d)/s out (\d+\.\d)/s dlq 0\.0/s lag p99 0\.25 s "
        r"\| pred p50 \$172k \(ref \$165k\) score 0\.10 "
        r"\| worst zoning score 2\.05 psi 0\.41, drifting 10%, likely causes neighbourhood, zoning "
        r"\| alerts: \? \| down: prometheus \(timeout\)",
        line,
    )
    assert match is not None, line
    assert float(match[1]) > 0
    assert float(match[2]) > 0


async def test_the_terminal_view_from_live_servers_with_alertmanager() -> None:
    _, scorer_page = _scraped_scorer()
    aggregate = aggregate_metrics()
    alerts = b'[{"labels": {"alertname": "AppraiseFeatureDrift"}, "status": {"state": "active"}}]'
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160)

    def notifications() -> list[str]:
        raise RuntimeError("the receiver is gone")

    async with (
        _serve({"/metrics": scorer_page}) as scorer_url,
        _serve(
            {
                "/metrics": lambda: generate_latest(aggregate.registry),
                "/api/v2/alerts": lambda: alerts,
            }
        ) as aggregate_url,
    ):
        sources = LiveSources(
            scorer_metrics_urls={"scorer": f"{scorer_url}/metrics"},
            aggregate_metrics_url=f"{aggregate_url}/nope",
            alertmanager_url=aggregate_url,
            notifications=notifications,
        )
        stop = asyncio.Event()
        view = asyncio.create_task(run_live_view(sources, stop, console=console, interval_s=0.05))
        await until(
            lambda: "AppraiseFeatureDrift" in out.getvalue() or view.done(),
            15,
            "the alert on the terminal view",
            out.getvalue,
        )
        stop.set()
        await asyncio.wait_for(view, timeout=5)  # returns: it raised nothing
        assert view.exception() is None
    text = out.getvalue()
    assert "HTTP 404" in text  # the aggregate page's wrong path: down, not raised
    assert "RuntimeError" in text  # the failing notifications callback: down, not raised


async def test_two_scorers_pages_are_read_and_each_lag_shown() -> None:
    busy, busy_page = _scraped_scorer()
    busy.keep_only_partitions([("listings", 0)])
    busy.set_lag("listings", 0, 12)
    idle = scorer_metrics()
    idle.keep_only_partitions([])
    aggregate = aggregate_metrics()
    out = io.StringIO()
    console = Console(file=out)
    async with (
        _serve({"/metrics": busy_page}) as busy_url,
        _serve({"/metrics": lambda: generate_latest(idle.registry)}) as idle_url,
        _serve({"/metrics": lambda: generate_latest(aggregate.registry)}) as aggregate_url,
    ):
        sources = LiveSources(
            scorer_metrics_urls={
                "scorer": f"{busy_url}/metrics",
                "scorer-2": f"{idle_url}/metrics",
            },
            aggregate_metrics_url=f"{aggregate_url}/metrics",
        )
        stop = asyncio.Event()
        view = asyncio.create_task(
            run_live_view(sources, stop, console=console, interval_s=0.05, plain_every_s=0.0)
        )
        await until(lambda: "\n" in out.getvalue() or view.done(), 15, "a plain line", out.getvalue)
        stop.set()
        await asyncio.wait_for(view, timeout=5)
        assert view.exception() is None
    line = out.getvalue().splitlines()[0]
    assert re.match(r"\d\d:\d\d:\d\d in [1-9]\d*\.\d/s out [1-9]\d*\.\d/s ", line), line
    assert "| lag scorer 12, scorer-2 0 (idle)" in line
    assert "down" not in line
