"""The scorer's HTTP sidecar: ``/metrics``, ``/healthz`` and ``/readyz`` on the metrics port.

A few lines of asyncio rather than a web framework: three GET routes, one response each, served
on the scorer's own event loop. So ``/healthz`` answering also means the loop is not stuck.

- ``/metrics``: Prometheus text format of the injected registry.
- ``/healthz``: 200 while the process serves requests.
- ``/readyz``: 200 when every readiness check passes, else 503; the body is JSON naming each
  check, e.g. ``{"ready": false, "model_loaded": true, "broker_reachable": true,
  "partitions_assigned": false}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Final, Self

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

_REASONS: Final = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Unavailable"}
# A client that has not sent its request line and headers by then is dropped.
_READ_TIMEOUT_S: Final = 5.0
_MAX_HEADER_LINES: Final = 100

Readiness = Callable[[], Mapping[str, bool]]


class Sidecar:
    """HTTP server for metrics and health probes.

    Args:
        host: bind address (setting ``metrics.host``).
        port: port (setting ``metrics.scorer_port``, 9400); 0 picks a free one, see :attr:`port`.
        registry: the registry ``/metrics`` exports.
        readiness: returns the named readiness checks; ready when all are true.
    """

    def __init__(
        self, host: str, port: int, registry: CollectorRegistry, readiness: Readiness
    ) -> None:
        self.host = host
        self.port = port
        self.registry = registry
        self.readiness = readiness
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:9400``."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Listen; afterwards :attr:`port` is the bound port."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("metrics and health on %s (/metrics, /healthz, /readyz)", self.url)

    async def stop(self) -> None:
        """Stop listening and close open connections. Idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

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

    def respond(self, method: str, path: str) -> tuple[int, str, bytes]:
        """Status, content type and body for a request (the routing, without sockets)."""
        route = path.split("?", 1)[0]
        if route not in ("/metrics", "/healthz", "/readyz"):
            return 404, "text/plain; charset=utf-8", b"not found: try /metrics, /healthz, /readyz\n"
        if method not in ("GET", "HEAD"):
            return 405, "text/plain; charset=utf-8", b"only GET\n"
        if route == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self.registry)
        if route == "/healthz":
            return 200, "text/plain; charset=utf-8", b"ok\n"
        checks = dict(self.readiness())
        ready = all(checks.values())
        body = orjson.dumps({"ready": ready, **checks}) + b"\n"
        return (200 if ready else 503), "application/json", body

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_READ_TIMEOUT_S):
                request = (await reader.readline()).decode("latin-1").split()
                for _ in range(_MAX_HEADER_LINES):
                    if (await reader.readline()) in (b"\r\n", b"\n", b""):
                        break
            if len(request) != 3:
                return
            method, path, _ = request
            status, content_type, body = self.respond(method, path)
            head = (
                f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode("latin-1")
            writer.write(head if method == "HEAD" else head + body)
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
