"""Adaptive micro-batching: concurrent requests' listings priced in one vectorised call.

Each request hands its listings to :meth:`MicroBatcher.score` and awaits its answers. One task
takes everything queued and prices it with :func:`consumers.batch.score_batch`, the scorer's own
code: the same decoding, reasons, model call, pane folding and prediction records. While it
prices, new requests queue up, and the next call takes them all: under load the batches grow by
themselves, and a lone request is priced at once. The batcher also waits, at most
``serve.max_wait_ms`` after the first queued listing, for requests it knows are arriving (their
bodies are being read), so a burst lands in one call, never more than ``serve.max_batch_listings``
listings per call. This is what model servers call dynamic batching (MLServer's adaptive
batching, Ray Serve's ``@serve.batch``, Triton's dynamic batcher), here without a second process.

Pricing runs on the event loop's thread: the compiled trees take a few microseconds a listing,
and a worker thread would hand the GIL back and forth with the HTTP parsing (the scorer measured
that as slower).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

from consumers.batch import Predictor, ScoredBatch, score_batch
from consumers.panes import PaneBook

#: The ``source_topic`` of an HTTP prediction is its route: "/" is not allowed in a Kafka
#: topic's name, so a consumer of the predictions topic can tell HTTP traffic apart.
SINGLE_SOURCE: Final = "/predict"
BATCH_SOURCE: Final = "/predict/batch"


@dataclass(frozen=True, slots=True)
class HttpRecord:
    """One listing of a request, shaped like the consumer record scoring reads."""

    value: bytes
    topic: str
    offset: int
    """The service's sequence number of this listing (``source_offset`` of its prediction)."""
    key: bytes | None = None
    partition: int = 0
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why one listing got no price: the dead-letter reason, the field to blame, the detail."""

    reason: str
    field: str | None
    detail: str


#: One listing's answer: its PredictionEvent JSON, or why not.
Answer = bytes | Refusal


@dataclass(slots=True)
class _Request:
    values: list[bytes]
    source: str
    answers: asyncio.Future[list[Answer]]


class MicroBatcher:
    """Coalesces the listings of concurrent requests into one :func:`score_batch` call.

    Args:
        model: the price model.
        panes: where every priced listing is folded (published by the service's publisher).
        max_listings: most listings per call (``serve.max_batch_listings``); one request's
            listings are never split, so a larger batch request is priced alone.
        max_wait_s: longest wait for arriving requests once one is queued.
        max_bytes: the largest accepted listing (``max_event_bytes``).
        skew_s: how far ahead of the clock an ``event_time`` may be (``event_time_skew_s``).
        on_scored: called with each call's result and its duration, before the answers go out
            (metrics, the publisher).
    """

    def __init__(
        self,
        model: Predictor,
        panes: PaneBook,
        *,
        max_listings: int,
        max_wait_s: float,
        max_bytes: int,
        skew_s: float,
        on_scored: Callable[[ScoredBatch, int, float], None],
    ) -> None:
        self.model = model
        self.panes = panes
        self.max_listings = max_listings
        self.max_wait_s = max_wait_s
        self.max_bytes = max_bytes
        self.skew_s = skew_s
        self.on_scored = on_scored
        self._queue: deque[_Request] = deque()
        self._queued = 0
        self._arriving = 0
        self._wake = asyncio.Event()
        self._sequence = 0
        self._last_requests = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the pricing task (on the running loop)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="appraise-serve-batcher")

    async def stop(self) -> None:
        """Price what is queued, then stop the task."""
        task, self._task = self._task, None
        if task is None:
            return
        while self._queue:
            self._price(self._take())
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    @contextlib.contextmanager
    def arriving(self) -> Iterator[None]:
        """Around reading a request's body: the batcher waits (a little) for it."""
        self._arriving += 1
        try:
            yield None
        finally:
            self._arriving -= 1

    async def score(self, values: list[bytes], source: str) -> list[Answer]:
        """Price ``values`` (listing JSON each) in the next call; one answer per value."""
        if self._task is None:
            raise RuntimeError("the batcher is not started")
        answers: asyncio.Future[list[Answer]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Request(values, source, answers))
        self._queued += len(values)
        self._wake.set()
        return await answers

    # --- the task ------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._gather()
            while self._queue:
                self._price(self._take())
                # Let the answers go out and the next requests in before the next call.
                await asyncio.sleep(0)

    async def _gather(self) -> None:
        """Wait for more listings, up to the batch size and the wait: while requests are known
        to be on their way, or, under load (the last call priced several requests), for the
        whole wait, since then more are sure to come."""
        if self.max_wait_s <= 0:
            return
        deadline = time.monotonic() + self.max_wait_s
        loaded = self._last_requests > 1
        seen = -1
        while self._queued < self.max_listings and time.monotonic() < deadline:
            if not loaded and self._arriving == 0 and self._queued == seen:
                return  # nothing more on its way, and nothing came in the last turn
            seen = self._queued
            await asyncio.sleep(0)

    def _take(self) -> list[_Request]:
        """The queued requests of the next call: whole requests, up to ``max_listings``."""
        taken = [self._queue.popleft()]
        size = len(taken[0].values)
        while self._queue and size + len(self._queue[0].values) <= self.max_listings:
            request = self._queue.popleft()
            taken.append(request)
            size += len(request.values)
        self._queued -= size
        self._last_requests = len(taken)
        return taken

    def _price(self, requests: list[_Request]) -> None:
        records: list[HttpRecord] = []
        for request in requests:
            for value in request.values:
                records.append(HttpRecord(value, request.source, self._sequence))
                self._sequence += 1
        started = time.perf_counter()
        try:
            scored = score_batch(
                records,
                self.model,
                max_bytes=self.max_bytes,
                panes=self.panes,
                skew_s=self.skew_s,
            )
        except Exception as exc:  # noqa: BLE001 - a bug must fail its requests, not the task
            for request in requests:
                if not request.answers.done():
                    request.answers.set_exception(exc)
            return
        self.on_scored(scored, len(records), time.perf_counter() - started)
        answers: list[Answer | None] = [None] * len(records)
        for row, (_, value) in zip(scored.rows, scored.predictions, strict=True):
            answers[row] = value
        for dead in scored.dead_letters:
            answers[dead.index] = Refusal(dead.reason, dead.field, dead.detail)
        start = 0
        for request in requests:
            stop = start + len(request.values)
            if not request.answers.done():  # a client that went away cancelled its future
                request.answers.set_result([a for a in answers[start:stop] if a is not None])
            start = stop
