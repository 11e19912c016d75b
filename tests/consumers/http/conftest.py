"""A real ``appraise serve`` for the tests: the project's runtime, uvicorn on a free port, the
session's model, and fresh topics on a broker."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import ClientSession

from consumers.http.service import ServeService
from producers.sources import holdout_drafts
from stream.kafka.topics import ensure_topics, topic_specs
from stream.service.runtime import CLEAN_EXIT, Endpoint, Worker, run_service
from stream.settings import KafkaSettings, ServeSettings, Settings, TopicSettings
from tests.needs import until


@dataclass
class Served:
    """A running service: its URL, an HTTP client, and the service object (metrics, state)."""

    url: str
    http: ClientSession
    service: ServeService
    settings: Settings
    sample: Callable[..., float | None] = field(init=False)

    def __post_init__(self) -> None:
        self.sample = self.service.registry.get_sample_value

    async def post(self, path: str, body: bytes, **headers: str) -> tuple[int, Any]:
        """Status and decoded JSON body of a POST."""
        data = io.BytesIO(body) if len(body) > 1_000_000 else body  # aiohttp warns otherwise
        async with self.http.post(f"{self.url}{path}", data=data, headers=headers) as response:
            raw = await response.read()
            return response.status, orjson.loads(raw) if raw else None


async def serve_settings(kafka: KafkaSettings, model_dir: Path, **serve: Any) -> Settings:
    """Settings with fresh topics (created here) and the API on a free port."""
    tag = uuid.uuid4().hex[:10]
    topics = TopicSettings(
        listings=f"test-{tag}-listings",
        predictions=f"test-{tag}-predictions",
        dlq=f"test-{tag}-dlq",
        sales=f"test-{tag}-sales",
        panes=f"test-{tag}-panes",
        windows=f"test-{tag}-windows",
    )
    settings = Settings(
        kafka=kafka,
        topics=topics,
        model_dir=model_dir,
        serve=ServeSettings(port=0, publish_interval_s=0.05, **serve),
    )
    await ensure_topics(kafka, topic_specs(settings))
    return settings


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[Served]:
    """``appraise serve`` in this process (the runtime, without signal handlers) until the
    block ends; it must then drain and exit 0."""
    service = ServeService(settings)
    urls: list[str] = []
    stop = asyncio.Event()

    def on_ready(server: Endpoint, _: Worker) -> None:
        urls.append(server.url)

    running = asyncio.ensure_future(
        run_service(service, settings, stop=stop, handle_signals=False, on_ready=on_ready)
    )
    try:
        await until(lambda: bool(urls) or running.done(), 60, "the price service ready")
        assert urls, f"the service ended with {running.result()}"
        async with ClientSession() as http:
            yield Served(urls[0], http, service, settings)
    finally:
        stop.set()
        code = await running
    assert code == CLEAN_EXIT


@pytest.fixture(scope="session")
def listings() -> list[dict[str, Any]]:
    """The hold-out listings as JSON-ready dicts (times as RFC 3339 text)."""
    return [
        orjson.loads(orjson.dumps(d.listing, option=orjson.OPT_UTC_Z))
        for d in holdout_drafts()
        if d.listing is not None
    ]
