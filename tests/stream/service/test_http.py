"""The metrics and health endpoint: metrics, liveness, readiness with each check named."""

from __future__ import annotations

import orjson
from prometheus_client import CollectorRegistry, Counter

from stream.service.http import MetricsServer
from tests.http import http_get


async def test_routes_answer_over_http() -> None:
    registry = CollectorRegistry()
    Counter("appraise_test", "a test counter", registry=registry).inc(3)
    checks = {"model_loaded": True, "partitions_assigned": False}
    async with MetricsServer("127.0.0.1", 0, registry, lambda: checks) as server:
        assert server.port != 0
        status, body = await http_get(f"{server.url}/metrics")
        assert status == 200
        assert b"appraise_test_total 3.0" in body
        assert await http_get(f"{server.url}/healthz") == (200, b"ok\n")
        status, body = await http_get(f"{server.url}/readyz")
        assert status == 503
        assert orjson.loads(body) == {"ready": False, **checks}
        checks["partitions_assigned"] = True
        assert (await http_get(f"{server.url}/readyz"))[0] == 200
        assert (await http_get(f"{server.url}/nope"))[0] == 404


async def test_no_checks_means_ready() -> None:
    async with MetricsServer("127.0.0.1", 0, CollectorRegistry()) as server:
        status, body = await http_get(f"{server.url}/readyz?verbose=1")
    assert status == 200
    assert orjson.loads(body) == {"ready": True}
