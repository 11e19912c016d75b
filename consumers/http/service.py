"""``appraise serve`` as a service: what ``stream.service.runtime`` runs.

The API listens first: ``/healthz`` answers and ``/readyz`` and the predict routes say 503 while
the model loads (in a worker thread, so the loop keeps answering). Once the model is loaded and
its trees compiled (setting ``scorer.compile_trees``), the micro-batcher and the Kafka publisher
start and ``/readyz`` turns 200. The broker is not waited for: serving never depends on it (see
:mod:`consumers.http.publisher`). A model directory that cannot be loaded stops the service with
exit code 2, as for the scorer.

On a signal: stop accepting connections, answer the requests in hand (uvicorn's graceful
shutdown), price what is queued, publish what is buffered, exit 0.

The ASGI server is uvicorn (with uvloop and httptools): FastAPI's own choice, the most used, and
the one the systems this service replaces ran. It is driven through its ``Server.startup`` /
``shutdown`` rather than ``uvicorn.run``, so the project's runtime keeps the signals, the drain
deadline and the exit codes of every other service.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import uvicorn
from prometheus_client import CollectorRegistry

from consumers.batch import ScoredBatch
from consumers.heap import scoring_heap
from consumers.http.app import ServeState, build_app
from consumers.http.batcher import MicroBatcher
from consumers.http.metrics import ServeMetrics
from consumers.http.publisher import Publisher
from consumers.panes import PaneBook
from consumers.service import compile_model
from stream.errors import ConfigError
from stream.model.load import load_model
from stream.model.predict import LoadedModel
from stream.service.component import Component
from stream.settings import Settings

log = logging.getLogger(__name__)


class ApiServer(Component):
    """uvicorn serving ``app`` on ``host:port`` (0: a free port, see :attr:`port`).

    Raises ConfigError naming the setting when the address cannot be bound.
    """

    def __init__(self, app: object, host: str, port: int, *, graceful_s: float) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.graceful_s = graceful_s
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None
        self._ticker: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8000``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def _start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            sock = socket.create_server((self.host, self.port), family=family, backlog=2048)
        except OSError as exc:
            raise ConfigError(
                f"setting APPRAISE_SERVE__HOST={self.host!r} / APPRAISE_SERVE__PORT={self.port}: "
                f"cannot listen there ({exc.strerror or exc}); expected a free local address"
            ) from None
        sock.setblocking(False)
        self._socket = sock
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self.app,  # type: ignore[arg-type]
            lifespan="off",
            access_log=False,
            log_config=None,
            server_header=False,
            timeout_graceful_shutdown=max(1, int(self.graceful_s)),
        )
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        await server.startup(sockets=[sock])
        self._server = server
        # uvicorn's own tick: the Date header, once a second, until should_exit.
        self._ticker = asyncio.create_task(server.main_loop(), name="appraise-serve-uvicorn")
        log.info("price service on %s (/predict, /predict/batch, /docs, /metrics)", self.url)

    async def _stop(self) -> None:
        server, sock, ticker = self._server, self._socket, self._ticker
        self._server = self._socket = self._ticker = None
        if server is not None:
            server.should_exit = True
            if ticker is not None:
                await ticker
            await server.shutdown(sockets=[sock] if sock is not None else None)
        elif sock is not None:
            sock.close()


class ServeService:
    """The price service for :func:`stream.service.runtime.run_service`.

    Args:
        settings: the project settings (``serve``, the model directory, Kafka, topics).
        registry: where metrics go; a fresh one with process collectors by default.
    """

    name = "serve"
    #: Started without waiting for the broker: serving never depends on it.
    needs_broker = False

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.port = settings.serve.port
        self.registry = registry or CollectorRegistry()
        self.metrics = ServeMetrics(self.registry, settings.serve)
        self.state = ServeState(settings, self.metrics)
        self.api: ApiServer | None = None

    @asynccontextmanager
    async def prepared(self) -> AsyncIterator[None]:
        """The scoring heap setting while the service runs (the model loads in the worker)."""
        with scoring_heap():
            yield

    def not_ready(self) -> Mapping[str, bool]:
        """Before the worker exists: nothing loaded."""
        return {"model_loaded": False}

    def endpoint(self, _readiness: object) -> ApiServer:
        """The API, which serves the probes and ``/metrics`` itself."""
        serve = self.settings.serve
        graceful = self.settings.service.drain_deadline_s / 2
        self.api = ApiServer(build_app(self.state), serve.host, self.port, graceful_s=graceful)
        return self.api

    def worker(self) -> ServeWorker:
        """Loads the model, then prices and publishes."""
        if self.api is None:
            raise RuntimeError("the price service has no endpoint yet")
        return ServeWorker(self.settings, self.state, self.api)


class ServeWorker(Component):
    """The model, the micro-batcher and the publisher behind the API."""

    def __init__(self, settings: Settings, state: ServeState, api: ApiServer) -> None:
        self.settings = settings
        self.state = state
        self.api = api
        self.publisher: Publisher | None = None
        self._batcher: MicroBatcher | None = None
        self._stop_requested = asyncio.Event()

    @property
    def ready(self) -> Mapping[str, bool]:
        """The checks ``/readyz`` reports."""
        return self.state.readiness()

    async def _start(self) -> None:
        settings = self.settings
        model = await asyncio.to_thread(self._load)
        metrics = self.state.metrics
        metrics.set_model(model.version, model.card.holdout.mape)
        panes = PaneBook(settings.scorer.pane_seconds, model.version, settings.scorer.sketch_k)
        publisher = Publisher(settings, metrics, panes)
        serve = settings.serve
        batcher = MicroBatcher(
            model,
            panes,
            max_listings=serve.max_batch_listings,
            max_wait_s=serve.max_wait_ms / 1000,
            max_bytes=settings.max_event_bytes,
            skew_s=settings.event_time_skew_s,
            on_scored=lambda scored, n, s: self._count(scored, n, s, model.version, publisher),
        )
        await publisher.start()
        batcher.start()
        self.publisher, self._batcher = publisher, batcher
        self.state.checks = lambda: {"broker_reachable": publisher.connected}
        self.state.model_version = model.version
        self.state.batcher = batcher

    def _load(self) -> LoadedModel:
        settings = self.settings
        model = load_model(settings.model_dir)
        log.info("model %s loaded from %s", model.version, settings.model_dir)
        if settings.scorer.compile_trees:
            compile_model(model)
        return model

    def _count(
        self, scored: ScoredBatch, n: int, seconds: float, version: str, publisher: Publisher
    ) -> None:
        m = self.state.metrics
        m.batch_size.observe(n)
        m.predict_duration.observe(seconds)
        if scored.predictions:
            m.predictions.labels(model_version=version).inc(len(scored.predictions))
            m.prices.observe_many(scored.prices)
            publisher.add(scored.predictions)
        for reason, count in scored.reasons.items():
            m.errors.labels(reason=reason).inc(count)

    def request_stop(self) -> None:
        """Stop accepting requests; :meth:`run` returns once those in hand are answered."""
        self._stop_requested.set()

    async def run(self) -> None:
        """Serve until :meth:`request_stop`, then close the API gracefully."""
        await self._stop_requested.wait()
        await self.api.stop()

    async def _stop(self) -> None:
        self.state.batcher = None
        batcher, publisher = self._batcher, self.publisher
        self._batcher = None
        if batcher is not None:
            await batcher.stop()
        if publisher is not None:
            await publisher.stop()
