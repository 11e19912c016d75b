"""The stream app's HTTP endpoint: ``/metrics`` (its own registry), ``/healthz`` and ``/readyz``.

aiohttp, which faust already depends on, serving on the app's event loop: ``/healthz`` answering
also means the loop is not stuck.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Self

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


class MetricsServer:
    """Serve ``registry`` on ``host:port`` (0 picks a free port, see :attr:`port` once started).

    ``ready`` says whether ``/readyz`` answers 200 (else 503).
    """

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        ready: Callable[[], bool] = lambda: True,
    ) -> None:
        self.host = host
        self.port = port
        self.registry = registry
        self.ready = ready
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:9401``."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Listen; afterwards :attr:`port` is the bound port."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._health)
        app.router.add_get("/readyz", self._readiness)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        for address in runner.addresses:
            self.port = int(address[1])
            break

    async def stop(self) -> None:
        """Stop listening; idempotent."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _health(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readiness(self, _request: web.Request) -> web.Response:
        ok = self.ready()
        return web.Response(text="ready\n" if ok else "not ready\n", status=200 if ok else 503)
