"""The sidecar's routes: metrics, liveness, readiness with each check named."""

from __future__ import annotations

import orjson
from prometheus_client import CollectorRegistry, Counter

from consumers.sidecar import Sidecar
from tests.consumers.kafka_helpers import http_get


async def test_routes_answer_over_http() -> None:
    registry = CollectorRegistry()
    Counter("appraise_test", "a test counter", registry=registry).inc(3)
    checks = {"model_loaded": True, "partitions_assigned": False}
    async with Sidecar("127.0.0.1", 0, registry, lambda: checks) as sidecar:
        assert sidecar.port != 0
        status, body = await http_get(f"{sidecar.url}/metrics")
        assert status == 200
        assert b"appraise_test_total 3.0" in body
        assert await http_get(f"{sidecar.url}/healthz") == (200, b"ok\n")
        status, body = await http_get(f"{sidecar.url}/readyz")
        assert status == 503
        assert orjson.loads(body) == {"ready": False, **checks}
        checks["partitions_assigned"] = True
        assert (await http_get(f"{sidecar.url}/readyz"))[0] == 200
        assert (await http_get(f"{sidecar.url}/nope"))[0] == 404


def test_only_get_and_head() -> None:
    sidecar = Sidecar("127.0.0.1", 0, CollectorRegistry(), dict)
    assert sidecar.respond("POST", "/metrics")[0] == 405
    assert sidecar.respond("GET", "/readyz?verbose=1")[0] == 200  # no checks: ready
