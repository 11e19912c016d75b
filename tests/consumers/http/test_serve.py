"""``appraise serve`` as a client sees it: a real uvicorn on a free port, the trained model, the
session's broker. Valid listings are priced as the scorer prices them; every malformed kind
gets its status, reason and field; nothing a client sends causes a 500."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import pytest_asyncio
from aiohttp import ClientSession
from prometheus_client import CollectorRegistry

from consumers.batch import score_batch
from consumers.http.app import ServeState, build_app, with_event_time
from consumers.http.metrics import ServeMetrics
from consumers.http.service import ApiServer
from stream.contract.times import parse_rfc3339
from stream.model.load import load_model
from stream.settings import KafkaSettings, Settings
from tests.consumers.http.conftest import Served, serve_settings, serving
from tests.http import http_get

pytestmark = pytest.mark.integration


def _body(listing: dict[str, Any], **changes: Any) -> bytes:
    return orjson.dumps({**listing, **changes})


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def served(kafka_settings: KafkaSettings, model_dir: Path) -> AsyncIterator[Served]:
    """One service for the module's tests (each reads deltas of the counters)."""
    settings = await serve_settings(kafka_settings, model_dir, max_batch_items=50)
    async with serving(settings) as running:
        yield running


async def test_a_listing_is_priced_as_the_scorer_prices_it(
    served: Served, listings: list[dict[str, Any]], model_dir: Path
) -> None:
    listing = listings[0]
    status, answer = await served.post("/predict", _body(listing))
    assert status == 200
    assert answer["listing_id"] == listing["listing_id"]
    assert answer["event_time"] == listing["event_time"]
    assert answer["model_version"] == load_model(model_dir).version
    assert answer["source_topic"] == "/predict"

    class _Record:
        value = _body(listing)
        key = None
        topic = "t"
        partition = offset = 0
        headers = ()

    expected = score_batch([_Record()], load_model(model_dir), max_bytes=1_000_000)
    assert answer["predicted_price"] == pytest.approx(float(expected.prices[0]), abs=0.01)
    version = {"model_version": answer["model_version"]}
    assert (served.sample("appraise_http_predictions_total", version) or 0) >= 1


async def test_event_time_may_be_left_out(served: Served, listings: list[dict[str, Any]]) -> None:
    listing = {k: v for k, v in listings[1].items() if k != "event_time"}
    before = datetime.now(UTC)
    status, answer = await served.post("/predict", orjson.dumps(listing))
    assert status == 200
    assert before <= parse_rfc3339(answer["event_time"]) <= datetime.now(UTC)


def test_event_time_is_added_only_to_an_object_without_one() -> None:
    now = "2026-01-01T00:00:00Z"
    assert orjson.loads(with_event_time(b' { "a" : 1 }', now)) == {"event_time": now, "a": 1}
    assert orjson.loads(with_event_time(b"{}", now)) == {"event_time": now}
    assert with_event_time(b'{"event_time": 3}', now) == b'{"event_time": 3}'
    # A string that merely contains the key's name is not the key.
    tricky = b'{"listing_id": "event_time"}'
    assert orjson.loads(with_event_time(tricky, now))["event_time"] == now
    for other in (b"[1]", b"nope", b"", b'"{"'):
        assert with_event_time(other, now) == other


_FUTURE = "2999-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("change", "status", "reason", "field"),
    [
        (lambda body: b"", 422, "empty", None),
        (lambda body: b"\xff\xfe", 422, "not_utf8", None),
        (lambda body: b"{nope", 422, "invalid_json", None),
        (lambda body: b"[1, 2]", 422, "not_an_object", None),
        (lambda body: body | {"colour": "red"}, 422, "unknown_field", "colour"),
        (
            lambda body: {k: v for k, v in body.items() if k != "bedrooms"},
            422,
            "missing_field",
            "bedrooms",
        ),
        (lambda body: body | {"garage_cars": 2.0}, 422, "wrong_type", "garage_cars"),
        (lambda body: body | {"living_area_sqft": "1500"}, 422, "wrong_type", "living_area_sqft"),
        (lambda body: body | {"living_area_sqft": -5}, 422, "out_of_range", "living_area_sqft"),
        (lambda body: body | {"latitude": 91.0}, 422, "out_of_range", "latitude"),
        (lambda body: body | {"year_built": 2030}, 422, "out_of_range", "year_built"),
        (lambda body: body | {"listing_id": ""}, 422, "invalid_value", "listing_id"),
        (lambda body: body | {"event_time": "1199188800"}, 422, "invalid_value", "event_time"),
        (lambda body: body | {"event_time": _FUTURE}, 422, "future_event_time", "event_time"),
        (lambda body: body | {"neighbourhood": "x" * 2_000_000}, 413, "too_large", None),
    ],
)
async def test_every_malformed_kind_gets_its_status_reason_and_field(
    served: Served,
    listings: list[dict[str, Any]],
    change: Any,
    status: int,
    reason: str,
    field: str | None,
) -> None:
    changed = change(dict(listings[2]))
    body = changed if isinstance(changed, bytes) else orjson.dumps(changed)
    before = served.sample("appraise_http_prediction_errors_total", {"reason": reason})
    got, answer = await served.post("/predict", body)
    assert got == status, answer
    [problem] = answer["detail"]
    assert problem["type"] == reason
    assert problem["loc"] == ["body", *([field] if field else [])]
    assert problem["msg"]
    after = served.sample("appraise_http_prediction_errors_total", {"reason": reason})
    assert after == (before or 0) + 1


async def test_a_batch_answers_each_item_in_order(
    served: Served, listings: list[dict[str, Any]]
) -> None:
    items = [listings[3], {**listings[4], "bedrooms": -1}, listings[5], "not a listing"]
    status, answers = await served.post("/predict/batch", orjson.dumps(items))
    assert status == 200
    assert len(answers) == 4
    assert [a.get("listing_id") for a in answers[::2]] == [
        listings[3]["listing_id"],
        listings[5]["listing_id"],
    ]
    assert answers[0]["source_topic"] == "/predict/batch"
    assert answers[1]["error"]["type"] == "out_of_range"
    assert answers[1]["error"]["loc"] == ["body", 1, "bedrooms"]
    assert answers[3]["error"]["type"] == "not_an_object"
    assert answers[3]["error"]["loc"] == ["body", 3]
    status, empty = await served.post("/predict/batch", b"[]")
    assert (status, empty) == (200, [])


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b'{"a": 1}', 422, "not_an_array"),
        (b"[1, ", 422, "invalid_json"),
        (b"", 422, "empty"),
        (orjson.dumps([{}] * 51), 413, "too_many_items"),
    ],
)
async def test_a_bad_batch_body_is_refused_whole(
    served: Served, body: bytes, status: int, reason: str
) -> None:
    got, answer = await served.post("/predict/batch", body)
    assert got == status
    assert answer["detail"][0]["type"] == reason


async def test_a_body_over_the_limit_is_refused_before_it_is_read(served: Served) -> None:
    limit = served.settings.serve.max_body_bytes

    async def chunks() -> Any:  # no Content-Length: the server counts as it reads
        for _ in range(limit // 65_536 + 2):
            yield b" " * 65_536

    async with served.http.post(f"{served.url}/predict", data=chunks()) as response:
        assert response.status == 413
        assert (await response.json())["detail"][0]["type"] == "too_large"


async def test_probes_metrics_and_the_openapi_page(
    served: Served, listings: list[dict[str, Any]]
) -> None:
    labels = {"handler": "/predict", "method": "POST", "status": "422"}
    before = served.sample("appraise_http_requests_total", labels) or 0
    await served.post("/predict", _body(listings[6], bedrooms=-1))
    assert served.sample("appraise_http_requests_total", labels) == before + 1
    assert await http_get(f"{served.url}/healthz") == (200, b"ok\n")
    status, ready = await http_get(f"{served.url}/readyz")
    assert status == 200
    assert orjson.loads(ready)["model_loaded"] is True
    status, page = await http_get(f"{served.url}/metrics")
    assert status == 200
    text = page.decode()
    assert 'appraise_http_requests_total{handler="/predict",method="POST",status="422"}' in text
    assert 'appraise_http_requests_in_progress{handler="/predict/batch",method="POST"} 0.0' in text
    assert "appraise_http_request_duration_seconds_bucket{" in text
    assert "process_resident_memory_bytes" in text
    status, raw = await http_get(f"{served.url}/openapi.json")
    openapi = orjson.loads(raw)
    body = openapi["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert "living_area_sqft" in body["schema"]["properties"]
    assert "event_time" not in body["schema"]["required"]
    assert {"200", "413", "422", "503"} <= set(openapi["paths"]["/predict"]["post"]["responses"])


async def test_before_the_model_is_loaded_it_answers_503(
    listings: list[dict[str, Any]],
) -> None:
    settings = Settings()
    state = ServeState(settings, ServeMetrics(CollectorRegistry(), settings.serve))
    async with (
        ApiServer(build_app(state), "127.0.0.1", 0, graceful_s=1) as api,
        ClientSession() as http,
    ):
        async with http.post(f"{api.url}/predict", data=_body(listings[0])) as response:
            assert response.status == 503
            assert response.headers["Retry-After"]
            assert (await response.json())["detail"][0]["type"] == "not_ready"
        status, _ = await http_get(f"{api.url}/readyz")
        assert status == 503
        assert await http_get(f"{api.url}/healthz") == (200, b"ok\n")


async def test_concurrent_requests_are_priced_together(
    served: Served, listings: list[dict[str, Any]]
) -> None:
    calls_before = served.sample("appraise_http_batch_size_listings_count") or 0
    priced_before = served.sample("appraise_http_batch_size_listings_sum") or 0
    bodies = [_body(listing) for listing in listings[:200]]
    answers = await asyncio.gather(*(served.post("/predict", body) for body in bodies))
    assert [status for status, _ in answers] == [200] * 200
    assert [a["listing_id"] for _, a in answers] == [x["listing_id"] for x in listings[:200]]
    calls = (served.sample("appraise_http_batch_size_listings_count") or 0) - calls_before
    priced = (served.sample("appraise_http_batch_size_listings_sum") or 0) - priced_before
    assert priced == 200
    assert 0 < calls < 200  # some requests shared a predict call
    offsets = sorted(a["source_offset"] for _, a in answers)
    assert offsets == list(np.unique(offsets))  # each listing its own sequence number
