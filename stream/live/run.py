"""Running the live view of ``appraise up``: :class:`LiveSources` says where to read from;
:func:`run_live_view` reads, every ``interval_s``, every scorer's and the stream app's (aggregate)
``/metrics`` pages and the alerts (Prometheus, else Alertmanager), all at once with short
timeouts, and draws a ``rich.live.Live`` view on a terminal, elsewhere one plain status line
every ``plain_every_s`` seconds. A source that does not answer is shown as down, never raised;
setting ``stop`` ends the view at once. The only I/O of :mod:`stream.live`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

import aiohttp
import orjson
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.live import Live
from rich.text import Text

from stream.live.alerts import Alert, parse_alertmanager_alerts, parse_prometheus_alerts
from stream.live.rates import History
from stream.live.snapshot import Snapshot
from stream.live.view import View, plain_line, render

#: Every request's whole budget, in seconds: all sources are local, a healthy one answers in ms.
FETCH_TIMEOUT_S = 1.0

T = TypeVar("T")

#: Each source's name in the view's "down" list.
SCORER = "scorer metrics"
AGGREGATE = "aggregate metrics"
PROMETHEUS = "prometheus"
ALERTMANAGER = "alertmanager"


@dataclass(frozen=True, slots=True)
class LiveSources:
    """Where the live view reads from."""

    #: Part name -> its /metrics, e.g. {"scorer": "http://127.0.0.1:9400/metrics"}; summed.
    scorer_metrics_urls: Mapping[str, str]
    aggregate_metrics_url: str  # e.g. http://127.0.0.1:9401/metrics (the stream app)
    prometheus_url: str | None = None  # base URL; firing+pending alerts from /api/v1/alerts
    alertmanager_url: str | None = None  # base URL; active alerts (/api/v2/alerts) if no prometheus
    urls: Mapping[str, str] = field(default_factory=dict)  # label -> URL, shown as is
    notifications: Callable[[], Sequence[str]] = lambda: ()  # newest last, one line each


class _Down(Exception):
    """A source that did not answer usefully; the message says why, for the view."""


async def _get(session: aiohttp.ClientSession, url: str) -> bytes:
    try:
        async with session.get(url) as response:
            if response.status != 200:
                raise _Down(f"HTTP {response.status}")
            return await response.read()
    except TimeoutError:
        raise _Down("timeout") from None
    except aiohttp.ClientConnectionError:
        raise _Down("no answer") from None
    except aiohttp.ClientError as exc:
        raise _Down(type(exc).__name__) from None


async def _metrics(session: aiohttp.ClientSession, url: str) -> list[Metric]:
    body = await _get(session, url)
    try:
        return list(text_string_to_metric_families(body.decode("utf-8", "replace")))
    except ValueError:
        raise _Down("not a metrics page") from None


async def _alerts(session: aiohttp.ClientSession, sources: LiveSources) -> tuple[Alert, ...]:
    try:
        if sources.prometheus_url is not None:
            body = await _get(session, sources.prometheus_url.rstrip("/") + "/api/v1/alerts")
            return parse_prometheus_alerts(orjson.loads(body))
        if sources.alertmanager_url is not None:
            query = "/api/v2/alerts?active=true&silenced=false&inhibited=false"
            body = await _get(session, sources.alertmanager_url.rstrip("/") + query)
            return parse_alertmanager_alerts(orjson.loads(body))
    except ValueError:
        raise _Down("unreadable answer") from None
    return ()


def _alert_source(sources: LiveSources) -> str | None:
    if sources.prometheus_url is not None:
        return PROMETHEUS
    return None if sources.alertmanager_url is None else ALERTMANAGER


def _outcome(name: str, result: T | BaseException, down: dict[str, str]) -> T | None:
    if isinstance(result, _Down):
        down[name] = str(result)
        return None
    if isinstance(result, BaseException):
        raise result  # a bug or a cancellation, not a source that is down
    return result


async def _refresh(session: aiohttp.ClientSession, sources: LiveSources, history: History) -> View:
    """Read every source at once (gather cancels them all if this is cancelled)."""
    scorer_names = list(sources.scorer_metrics_urls)
    (aggregate, alerts), scorers = await asyncio.gather(
        asyncio.gather(
            _metrics(session, sources.aggregate_metrics_url),
            _alerts(session, sources),
            return_exceptions=True,
        ),
        asyncio.gather(
            *(_metrics(session, url) for url in sources.scorer_metrics_urls.values()),
            return_exceptions=True,
        ),
    )
    down: dict[str, str] = {}
    alert_source = _alert_source(sources)
    pages = {
        name: _outcome(SCORER if name == "scorer" else f"{name} metrics", page, down)
        for name, page in zip(scorer_names, scorers, strict=True)
    }
    snapshot = Snapshot.from_pages(pages, _outcome(AGGREGATE, aggregate, down))
    alerts_now = _outcome(alert_source or "alerts", alerts, down)
    rates, recent = history.add(time.monotonic(), snapshot)
    try:
        notifications = tuple(sources.notifications())
    except Exception as exc:  # noqa: BLE001 -- someone else's callback must not end the view
        notifications = ()
        down["notifications"] = type(exc).__name__
    return View(
        at=datetime.now().astimezone(),
        snapshot=snapshot,
        rates=rates,
        recent=recent,
        alerts=alerts_now if alert_source is not None else None,
        alerts_configured=alert_source is not None,
        notifications=notifications,
        urls=sources.urls,
        down=down,
    )


async def run_live_view(
    sources: LiveSources,
    stop: asyncio.Event,
    *,
    console: Console | None = None,
    interval_s: float = 2.0,
    plain_every_s: float = 10.0,
) -> None:
    """Refresh until stop is set; never raises on a source that does not answer (show it as down).

    Args:
        sources: the metric pages, alert APIs, URLs and notifications to show.
        stop: set it to end the view (at once: a refresh under way is abandoned).
        console: where to draw (default: a new ``Console()`` on stdout). A terminal gets a
            ``rich.live.Live`` view; anything else one plain line every ``plain_every_s``.
        interval_s: seconds between refreshes (2 s by default).
        plain_every_s: seconds between plain lines (10 s by default); the first comes once rates
            are known, at the second refresh.
    """
    console = console if console is not None else Console()
    history = History()
    timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        if console.is_terminal:
            waiting = Text("appraise up: reading the metrics...", style="dim")
            with Live(waiting, console=console, auto_refresh=False) as live:
                while not stop.is_set():
                    started = time.monotonic()
                    view = await _unless_stopped(stop, _refresh(session, sources, history))
                    if view is None:
                        break
                    live.update(render(view), refresh=True)
                    await _pause(stop, interval_s - (time.monotonic() - started))
            return
        last_line = -math.inf
        while not stop.is_set():
            started = time.monotonic()
            view = await _unless_stopped(stop, _refresh(session, sources, history))
            if view is None:
                break
            if view.rates is not None and started - last_line >= plain_every_s:
                last_line = started
                console.out(plain_line(view), highlight=False)
            await _pause(stop, interval_s - (time.monotonic() - started))


async def _unless_stopped(stop: asyncio.Event, work: Coroutine[object, object, T]) -> T | None:
    """``work``'s result, or None once ``stop`` is set first (``work`` is then cancelled), so
    Ctrl-C does not wait out a request to a hung source."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, stopped):
            pending.cancel()  # no-op when done
        await asyncio.gather(task, stopped, return_exceptions=True)
    return None if task.cancelled() else task.result()


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max(seconds, 0.0))
