"""The metrics and health endpoint every appraise service serves: ``/metrics``, ``/healthz``,
``/readyz``.

aiohttp (already installed with faust) on the service's own event loop, so ``/healthz``
answering also means the loop is not stuck. :class:`HttpServer` is the listening part, shared
with ``appraise up``'s alert webhook receiver (``stream/ops/alerts.py``).

- ``/metrics``: the Prometheus text format of the service's registry.
- ``/healthz``: 200 while the process serves requests.
- ``/readyz``: 200 when every named readiness check passes, else 503; the body is JSON naming
  each, e.g. ``{"ready": false, "model_loaded": true, "partitions_assigned": false}``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from stream.service.component import Component

log = logging.getLogger(__name__)

#: Named readiness checks; ready when all are true (no checks: ready).
Readiness = Callable[[], Mapping[str, bool]]


class HttpServer(Component):
    """An aiohttp server on ``host:port`` serving what :meth:`_routes` adds; the base of the
    services' metrics endpoint and of ``appraise up``'s alert webhook receiver.

    Args:
        host: bind address.
        port: 0 picks a free one, see :attr:`port` once started.
    """

    #: What it serves and where, for the log line once it listens: "<serves> on <url> <paths>".
    serves = "HTTP"
    paths = ""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:9400``."""
        return f"http://{self.host}:{self.port}"

    def _routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def _start(self) -> None:
        """Listen; afterwards :attr:`port` is the bound port. OSError if the address is taken
        (nothing is left half-started)."""
        app = web.Application()
        self._routes(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        log.info("%s on %s %s", self.serves, self.url, self.paths)

    async def _stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


class MetricsServer(HttpServer):
    """Serve ``registry`` and the health probes on ``host:port``.

    Args:
        host: bind address (setting ``metrics.host``, 127.0.0.1 by default).
        port: the service's port (``metrics.scorer_port`` 9400, ``metrics.aggregate_port`` 9401);
            0 picks a free one, see :attr:`port` once started.
        registry: what ``/metrics`` exports.
        readiness: the named checks ``/readyz`` reports.
    """

    serves = "metrics and health"
    paths = "(/metrics, /healthz, /readyz)"

    def __init__(
        self, host: str, port: int, registry: CollectorRegistry, readiness: Readiness = dict
    ) -> None:
        super().__init__(host, port)
        self.registry = registry
        self.readiness = readiness

    def _routes(self, app: web.Application) -> None:
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._health)
        app.router.add_get("/readyz", self._readiness)

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _health(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readiness(self, _request: web.Request) -> web.Response:
        checks = dict(self.readiness())
        ready = all(checks.values())
        body = orjson.dumps({"ready": ready, **checks}) + b"\n"
        return web.Response(
            body=body, status=200 if ready else 503, content_type="application/json"
        )
