"""Send drafts to the HTTP price service (``appraise serve``): each listing a ``POST
{url}/predict``, at a steady rate, at most ``concurrency`` requests in flight.

The same drafts, scenarios, pacing and event times as publishing to Kafka (``publish.py``), and
the same bytes: the body is what the listings topic would carry (a tombstone is an empty body).
Only the listings travel over HTTP; sale labels, where asked, still go to the sales topic, which
is where the stream app joins them to predictions.

Answers are counted by status code and not read further. A request that gets no answer (refused,
reset, timed out) counts as ``error`` and the run goes on: a service that is not there gives a
run of errors, not an exception. On ``stop`` no new request starts and those in flight finish
(each within ``timeout_s``), so every request sent is counted.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from producers.pacing import Pacer
from producers.publish import EventTime, SaleLabels, encode
from producers.sources import Draft

DEFAULT_CONCURRENCY: Final = 16
#: Longest wait for one answer; past it the request counts as ``error``.
DEFAULT_TIMEOUT_S: Final = 10.0
#: The bucket of requests that got no HTTP answer.
ERROR: Final = "error"
#: ``on_progress`` comes at most this often (and once at the end), not once per request.
PROGRESS_EVERY_S: Final = 0.1
_TIMES: Final = "\N{MULTIPLICATION SIGN}"


def predict_url(base_url: str) -> str:
    """The ``POST`` target of a service's base URL: ``http://127.0.0.1:8000`` gives
    ``http://127.0.0.1:8000/predict`` (a path prefix is kept). ValueError saying what is
    expected for anything but an http or https URL with a host."""
    expected = "expected the service's http:// or https:// URL, e.g. http://127.0.0.1:8000"
    try:
        parts = urlsplit(base_url)
        _ = parts.port  # a port that is not a number raises here
    except ValueError:
        raise ValueError(expected) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(expected)
    if parts.query or parts.fragment:
        raise ValueError(f"{expected}, without ?query or #fragment")
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + "/predict", "", ""))


class Latencies:
    """Response times in buckets 1 % wide: quantiles within 0.5 % of the true value, in a few
    KB however long the run (a list would grow by a value a request, for days under ``appraise
    up``). Buckets start at 1 µs; anything faster counts as 1 µs."""

    _FLOOR_S: Final = 1e-6
    _GROWTH: Final = 1.01

    def __init__(self) -> None:
        self.count = 0
        self.total_s = 0.0
        self._buckets: Counter[int] = Counter()

    def add(self, seconds: float) -> None:
        self.count += 1
        self.total_s += seconds
        ratio = max(seconds, self._FLOOR_S) / self._FLOOR_S
        self._buckets[math.floor(math.log(ratio, self._GROWTH))] += 1

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (0..1) in seconds: the middle of its bucket; None when empty."""
        if not self.count:
            return None
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for index in sorted(self._buckets):
            seen += self._buckets[index]
            if seen >= rank:
                return float(self._FLOOR_S * self._GROWTH ** (index + 0.5))
        raise AssertionError("unreachable: the buckets hold count values")  # pragma: no cover


@dataclass(slots=True)
class HttpStats:
    """What a run sent and how it was answered, for the progress line and the closing summary."""

    url: str
    #: Finished requests by answer: the status code as text (``"200"``), or :data:`ERROR`.
    statuses: Counter[str] = field(default_factory=Counter)
    #: Times from sending to the whole answer read, of the requests that got one.
    latencies: Latencies = field(default_factory=Latencies)
    sales: int = 0  # sale labels sent to the sales topic
    #: Why the latest request without an answer failed, e.g. "Cannot connect to host ...".
    last_error: str | None = None
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def done(self) -> int:
        """Requests finished, answered or not."""
        return self.statuses.total()

    @property
    def answered(self) -> int:
        return self.done - self.statuses[ERROR]

    @property
    def elapsed_s(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def rate(self) -> float:
        """Requests finished per second since the start."""
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def describe_statuses(self) -> str:
        """Each answer and how many got it, e.g. "200 x 990, 422 x 10, error x 2" with a
        multiplication sign for the x: status codes in order, errors last."""
        return ", ".join(f"{status} {_TIMES} {n:,}" for status, n in sorted(self.statuses.items()))

    def describe_latency(self) -> str:
        """``latency p50 3.1 ms, p99 9.8 ms``, or ``no answers`` when none came."""
        p50, p99 = self.latencies.quantile(0.5), self.latencies.quantile(0.99)
        if p50 is None or p99 is None:
            return "no answers"
        return f"latency p50 {p50 * 1e3:,.1f} ms, p99 {p99 * 1e3:,.1f} ms"


async def send_http(
    url: str,
    drafts: Iterable[Draft],
    *,
    rate: float | None = None,
    count: int | None = None,
    event_time: EventTime = "history",
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    sales: SaleLabels | None = None,
    stop: asyncio.Event | None = None,
    on_progress: Callable[[HttpStats], None] | None = None,
) -> HttpStats:
    """``POST`` each of ``drafts`` (the first ``count``) to ``{url}/predict`` at ``rate`` per
    second (None: as fast as answers come), at most ``concurrency`` at a time over one pool of
    as many connections. With ``sales``, each listing's sale label follows it on the sales
    topic. Returns when every request is answered or has failed, and the labels are sent, or
    when ``stop`` is set (requests in flight still finish). ValueError for a bad ``url``."""
    target = predict_url(url)
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    stats = HttpStats(url=target)
    pacer = Pacer(rate)
    slots = asyncio.Semaphore(concurrency)
    source = iter(drafts) if count is None else itertools.islice(drafts, count)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"Content-Type": "application/json"}

    def stopped() -> bool:
        return stop is not None and stop.is_set()

    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session,
        asyncio.TaskGroup() as requests,
    ):
        sent = 0
        reported = time.monotonic()
        exhausted = False
        while not exhausted and not stopped():
            allowed = await pacer.release(sent)
            chunk = list(itertools.islice(source, allowed))
            exhausted = len(chunk) < allowed
            for draft in chunk:
                await slots.acquire()  # a free slot: fewer than ``concurrency`` in flight
                if stopped():
                    slots.release()
                    break
                now = datetime.now(UTC)  # per request: a slot may have been a while coming
                body = encode(draft, event_time=event_time, now=now) or b""
                requests.create_task(_post(session, target, body, stats, slots, timeout_s))
                if sales is not None:
                    sales.follow(draft, event_time=event_time, now=now)
                sent += 1
                if on_progress is not None and time.monotonic() - reported >= PROGRESS_EVERY_S:
                    reported = time.monotonic()
                    on_progress(stats)
            if sales is not None:
                await asyncio.gather(*await sales.send_due())
                stats.sales = sales.sent
    stats.finished = time.monotonic()
    if on_progress is not None:
        on_progress(stats)
    if sales is not None:

        def labelled() -> None:
            stats.sales = sales.sent
            if on_progress is not None:
                on_progress(stats)

        await sales.send_rest(stop, on_sent=labelled)
    return stats


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    stats: HttpStats,
    slot: asyncio.Semaphore,
    timeout_s: float,
) -> None:
    """One request, counted by its answer's status or as an error; frees its slot."""
    try:
        started = time.perf_counter()
        async with session.post(url, data=body) as response:
            await response.read()  # the whole answer: the connection goes back to the pool
        stats.latencies.add(time.perf_counter() - started)
        stats.statuses[str(response.status)] += 1
    except TimeoutError:
        stats.statuses[ERROR] += 1
        stats.last_error = f"no answer within {timeout_s:g} s"
    except aiohttp.ClientError as exc:
        stats.statuses[ERROR] += 1
        stats.last_error = str(exc) or type(exc).__name__
    finally:
        slot.release()
