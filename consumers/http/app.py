"""The FastAPI application of ``appraise serve``: routes, answers, errors, instrumentation.

- ``POST /predict``: one listing (the event contract; ``event_time`` may be left out and is then
  the time the request arrived) → 200 with its PredictionEvent, the same JSON the predictions
  topic carries (``source_topic`` is the route).
- ``POST /predict/batch``: a JSON array of at most ``serve.max_batch_items`` listings → 200 with
  one answer per item in order: its PredictionEvent, or ``{"error": {...}}`` for an item the
  contract refuses.
- Refusals use FastAPI's own shape, ``{"detail": [{"type", "loc", "msg"}]}``, with the dead-letter
  reason as ``type`` and the offending field in ``loc``: 422 for a listing the contract (or the
  model) refuses, 413 for a body over ``serve.max_body_bytes`` (or a listing over
  ``max_event_bytes``, or too many items), 503 (with ``Retry-After``) while the model loads.
  Nothing a client sends causes a 500.
- ``/healthz``, ``/readyz``, ``/metrics`` and FastAPI's ``/docs`` and ``/openapi.json``.

The handlers read the raw body and hand it to the scorer's own decoding (through
:mod:`consumers.http.batcher`) rather than to a pydantic body parameter: the verdicts and reasons
are then the dead-letter topic's, byte for byte, and an answer is the prediction record as built
for Kafka, sent without a second serialisation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from prometheus_fastapi_instrumentator import Instrumentator, metrics
from starlette.types import ASGIApp, Receive, Scope, Send

from consumers.http.batcher import BATCH_SOURCE, SINGLE_SOURCE, Answer, MicroBatcher, Refusal
from consumers.http.metrics import ServeMetrics
from stream.contract import http_metrics as names
from stream.contract.decoding import decode_listing
from stream.contract.metric_name import MetricName
from stream.contract.reasons import InvalidEvent
from stream.contract.schema import json_schema
from stream.contract.times import rfc3339
from stream.service.metrics import gauge
from stream.settings import Settings

JSON: Final = "application/json"
#: Seconds a client is asked to wait before trying again while the model loads.
RETRY_AFTER_S: Final = 2


@dataclass(slots=True)
class ServeState:
    """What the routes read: the settings, the metrics and, once the model is loaded, the
    batcher. ``checks`` adds named readiness facts that do not gate readiness (the broker)."""

    settings: Settings
    metrics: ServeMetrics
    batcher: MicroBatcher | None = None
    model_version: str | None = None
    checks: Callable[[], Mapping[str, bool]] = field(default=dict)

    def readiness(self) -> dict[str, bool]:
        """``ready`` (the model is loaded) and the informative checks."""
        return {"ready": self.batcher is not None, "model_loaded": self.batcher is not None} | {
            **self.checks()
        }


class _TooLarge(Exception):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the body has {size:,}+ bytes, more than the limit {limit:,}")


# A probe of the listing's keys: is event_time there? msgspec skips the other fields in C.
class _Probe(msgspec.Struct):
    event_time: object = msgspec.UNSET


_PROBE: Final = msgspec.json.Decoder(_Probe)
_ITEMS: Final = msgspec.json.Decoder(list[msgspec.Raw])


def with_event_time(value: bytes, now: str) -> bytes:
    """``value`` with ``"event_time": now`` added when it is a JSON object without one; any
    other value unchanged (decoding then says what is wrong with it)."""
    try:
        probe = _PROBE.decode(value)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return value
    if probe.event_time is not msgspec.UNSET:
        return value
    # A valid JSON object (the probe decoded it), so the first "{" opens it.
    head, _, rest = value.partition(b"{")
    empty = rest.lstrip().startswith(b"}")
    return b'%s{"event_time":"%s"%s%s' % (head, now.encode(), b"" if empty else b",", rest)


def _problem(status: int, reason: str, message: str, loc: list[str | int]) -> Response:
    body = orjson.dumps({"detail": [{"type": reason, "loc": loc, "msg": message}]})
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
    return Response(body, status_code=status, media_type=JSON, headers=headers)


def _loc(refusal: Refusal, *prefix: str | int) -> list[str | int]:
    return ["body", *prefix, *([refusal.field] if refusal.field else [])]


async def _read(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _TooLarge(int(declared), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _schema(kind: str, *, optional_time: bool = False) -> dict[str, Any]:
    schema = json_schema(kind)
    schema.pop("$schema", None)
    if optional_time:
        schema["required"] = [name for name in schema["required"] if name != "event_time"]
        schema["properties"]["event_time"]["description"] += (
            "; may be left out over HTTP: then the time the request arrived"
        )
    return schema


def _problem_item() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "type": {"type": "string", "description": "the dead-letter reason code"},
            "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
            "msg": {"type": "string"},
        },
        "required": ["type", "loc", "msg"],
    }


def _problem_schema() -> dict[str, Any]:
    detail = {"type": "array", "items": _problem_item()}
    return {"type": "object", "properties": {"detail": detail}}


def _responses(ok: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    problem = {"content": {JSON: {"schema": _problem_schema()}}}
    return {
        200: {"content": {JSON: {"schema": ok}}},
        413: {"description": "body too large (or too many items)", **problem},
        422: {"description": "the contract or the model refused the listing", **problem},
        503: {"description": "the model is loading; try again after Retry-After", **problem},
    }


def build_app(state: ServeState) -> FastAPI:
    """The application; ``state`` is read on every request (the model arrives later)."""
    settings = state.settings
    serve = settings.serve
    m = state.metrics
    app = FastAPI(
        title="appraise price service",
        description="Prices property listings with the model the stream scores with; every "
        "answered prediction is monitored by the same event-time windows.",
        version="1",
    )

    def refused(reason: str) -> None:
        m.errors.labels(reason=reason).inc()

    def arrival_time() -> str:
        return rfc3339(datetime.now(UTC))

    listing = _schema("listing", optional_time=True)
    prediction = _schema("prediction")

    async def intake(request: Request) -> tuple[MicroBatcher, bytes] | Response:
        """The batcher and the body, or the 503 / 413 answer."""
        batcher = state.batcher
        if batcher is None:
            refused("not_ready")
            return _problem(503, "not_ready", "the model is loading", [])
        try:
            with batcher.arriving():
                return batcher, await _read(request, serve.max_body_bytes)
        except _TooLarge as exc:
            refused("too_large")
            return _problem(413, "too_large", str(exc), ["body"])

    @app.post(
        SINGLE_SOURCE,
        summary="Price one listing",
        response_class=Response,
        responses=_responses(prediction),
        openapi_extra={"requestBody": {"required": True, "content": {JSON: {"schema": listing}}}},
    )
    async def predict(request: Request) -> Response:
        taken = await intake(request)
        if isinstance(taken, Response):
            return taken
        batcher, body = taken
        [answer] = await batcher.score([with_event_time(body, arrival_time())], SINGLE_SOURCE)
        if isinstance(answer, bytes):
            return Response(answer, media_type=JSON)
        status = 413 if answer.reason == "too_large" else 422
        return _problem(status, answer.reason, answer.detail, _loc(answer))

    batch_listing = {"type": "array", "maxItems": serve.max_batch_items, "items": listing}
    batch_answer = {
        "type": "array",
        "items": {
            "anyOf": [
                prediction,
                {"type": "object", "properties": {"error": _problem_item()}},
            ]
        },
    }

    @app.post(
        BATCH_SOURCE,
        summary="Price several listings",
        response_class=Response,
        responses=_responses(batch_answer),
        openapi_extra={
            "requestBody": {"required": True, "content": {JSON: {"schema": batch_listing}}}
        },
    )
    async def predict_batch(request: Request) -> Response:
        taken = await intake(request)
        if isinstance(taken, Response):
            return taken
        batcher, body = taken
        try:
            items = _ITEMS.decode(body)
        except msgspec.ValidationError:
            refused("not_an_array")
            return _problem(422, "not_an_array", "expected a JSON array of listings", ["body"])
        except msgspec.DecodeError:
            reason, detail = _body_problem(body, settings.max_event_bytes)
            refused(reason)
            return _problem(422, reason, detail, ["body"])
        if len(items) > serve.max_batch_items:
            refused("too_many_items")
            message = f"{len(items):,} listings, more than the limit {serve.max_batch_items:,}"
            return _problem(413, "too_many_items", message, ["body"])
        now = arrival_time()
        answers = await batcher.score([with_event_time(bytes(i), now) for i in items], BATCH_SOURCE)
        return Response(
            b"[%s]" % b",".join(_item(i, a) for i, a in enumerate(answers)), media_type=JSON
        )

    @app.get("/healthz", summary="200 while the service answers")
    async def healthz() -> Response:
        return Response(b"ok\n", media_type="text/plain")

    @app.get("/readyz", summary="200 once the model is loaded, else 503")
    async def readyz() -> Response:
        checks = state.readiness()
        status = 200 if checks["ready"] else 503
        return Response(orjson.dumps(checks) + b"\n", status_code=status, media_type=JSON)

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics_page() -> Response:
        return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)

    routes = frozenset(getattr(route, "path", "") for route in app.routes)
    instrument(app, state, routes)
    return app


def _item(index: int, answer: Answer) -> bytes:
    if isinstance(answer, bytes):
        return answer
    loc = _loc(answer, index)
    return orjson.dumps({"error": {"type": answer.reason, "loc": loc, "msg": answer.detail}})


def _body_problem(body: bytes, max_bytes: int) -> tuple[str, str]:
    """The contract's reason for a body that is not JSON at all (empty, not UTF-8, broken)."""
    try:
        decode_listing(body, max_bytes=max(max_bytes, len(body)))
    except InvalidEvent as exc:
        return exc.reason, exc.detail
    return "invalid_json", "the body is not JSON"


def instrument(app: FastAPI, state: ServeState, routes: frozenset[str]) -> None:
    """Request count, latency and in-progress gauge by prometheus-fastapi-instrumentator, named
    as the catalogue says; ``/metrics`` itself is not counted."""
    registry = state.metrics.registry
    namespace, subsystem = "appraise", "http"

    def local(spec: MetricName) -> str:
        return spec.base.removeprefix(f"{namespace}_{subsystem}_")

    instrumentator = Instrumentator(
        should_group_status_codes=False,
        excluded_handlers=["/metrics"],
        registry=registry,
    )
    instrumentator.add(
        metrics.requests(
            metric_name=local(names.HTTP_REQUESTS),
            metric_doc=names.HTTP_REQUESTS.help,
            metric_namespace=namespace,
            metric_subsystem=subsystem,
            registry=registry,
        )
    )
    instrumentator.add(
        metrics.latency(
            metric_name=local(names.HTTP_LATENCY),
            metric_doc=names.HTTP_LATENCY.help,
            metric_namespace=namespace,
            metric_subsystem=subsystem,
            should_include_status=False,
            buckets=state.settings.serve.latency_buckets_seconds,
            registry=registry,
        )
    )
    instrumentator.instrument(app)
    in_progress = gauge(names.HTTP_IN_PROGRESS, registry)
    for path in (SINGLE_SOURCE, BATCH_SOURCE):  # these series exist at 0 from the start
        in_progress.labels(path, "POST")
    app.add_middleware(InProgress, gauge=in_progress, paths=routes)


class InProgress:
    """The in-progress gauge, as a pure ASGI middleware. Our own because the instrumentator's
    (version 8.1) registers its gauge in prometheus_client's global registry whatever registry
    it is given. ``handler`` is the route's path, or ``none`` for a path that is no route, as
    the instrumentator labels its counter."""

    def __init__(self, app: ASGIApp, gauge: Gauge, paths: frozenset[str]) -> None:
        self.app = app
        self.gauge = gauge
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/metrics":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        child = self.gauge.labels(path if path in self.paths else "none", scope["method"])
        child.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            child.dec()
