"""A real ``appraise history`` for the tests: the project's runtime, a fresh windows topic on
the session's broker, a fresh database on the session's PostgreSQL, window records to feed it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from consumers.history.service import HistoryService
from consumers.history.sink import HistorySink
from stream.contract.windows import (
    DriftRecord,
    ErrorRecord,
    FeatureStats,
    PredictionStats,
)
from stream.kafka.topics import ensure_topics, topic_specs
from stream.service.runtime import CLEAN_EXIT, Endpoint, Worker, run_service
from stream.settings import HistorySettings, KafkaSettings, MetricsSettings, Settings, TopicSettings
from tests.needs import until

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
FEATURES = ("living_area_sqft", "year_built", "neighborhood")


async def history_settings(
    kafka: KafkaSettings, dsn: str, password_file: Path, **history: Any
) -> Settings:
    """Settings with a fresh windows topic (created here), a fresh group, quick retries and lag
    measurements, and the metrics on a free port."""
    tag = uuid.uuid4().hex[:10]
    topics = TopicSettings(
        **{name: f"test-{tag}-{name}" for name in ("listings", "predictions", "dlq", "sales")},
        panes=f"test-{tag}-panes",
        windows=f"test-{tag}-windows",
    )
    settings = Settings(
        kafka=kafka,
        topics=topics,
        metrics=MetricsSettings(history_port=0),
        history=HistorySettings(
            dsn=dsn,
            password_file=password_file,
            group_id=f"test-history-{tag}",
            fetch_max_wait_ms=100,
            retry_initial_s=0.05,
            retry_max_s=0.5,
            lag_refresh_s=0.2,
            **history,
        ),
    )
    await ensure_topics(kafka, topic_specs(settings))
    return settings


@dataclass
class Running:
    """A running sink: its service (metrics), the sink, its metrics URL."""

    service: HistoryService
    url: str

    @property
    def sink(self) -> HistorySink:
        assert self.service.sink is not None
        return self.service.sink

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float:
        return self.service.registry.get_sample_value(name, labels or {}) or 0.0


@asynccontextmanager
async def running_sink(settings: Settings) -> AsyncIterator[Running]:
    """``appraise history`` in this process (the runtime, no signal handlers) until the block
    ends; it must then drain and exit 0."""
    service = HistoryService(settings)
    urls: list[str] = []
    stop = asyncio.Event()

    def on_ready(server: Endpoint, _: Worker) -> None:
        urls.append(server.url)

    task = asyncio.ensure_future(
        run_service(service, settings, stop=stop, handle_signals=False, on_ready=on_ready)
    )
    try:
        await until(lambda: bool(urls) or task.done(), 30, "the sink started")
        if task.done():
            raise AssertionError(f"the sink exited with {task.result()}")
        yield Running(service, urls[0])
    finally:
        stop.set()
        code = await asyncio.wait_for(task, 60)
    assert code == CLEAN_EXIT


async def rows(conninfo: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    """The rows of ``query`` on the history database."""
    async with await psycopg.AsyncConnection.connect(conninfo) as conn:
        cursor = await conn.execute(query, args)
        return await cursor.fetchall()


def drift_record(
    minute: int,
    *,
    events: int = 500,
    scale: float = 1.0,
    window: str = "1m",
    t0: datetime = T0,
) -> DriftRecord:
    """A drift record of the ``minute``-th 1-minute window after ``t0``, its numbers scaled."""
    start = t0 + timedelta(minutes=minute)
    return DriftRecord(
        window=window,
        start=start,
        end=start + timedelta(minutes=1),
        model_version="v-test",
        reference_model_version="v-test",
        events=events,
        panes=6,
        min_events=200,
        quantiles={"0.1": 1e5 * scale, "0.5": 2e5 * scale, "0.9": 3e5 * scale, "0.99": 5e5},
        reference_quantiles={"0.1": 1e5, "0.5": 2e5, "0.9": 3e5, "0.99": 5e5},
        prediction=PredictionStats(psi=0.05 * scale, ks=0.02, score=0.3 * scale, drifting=False),
        features={
            name: FeatureStats(
                psi=0.01 * (i + 1) * scale,
                ks=None if name == "neighborhood" else 0.03 * scale,
                psi_critical=0.04,
                score=0.5 * (i + 1) * scale,
                drifting=0.5 * (i + 1) * scale > 1,
                missing_rate=0.0,
                unseen_rate=0.01 if name == "neighborhood" else None,
            )
            for i, name in enumerate(FEATURES)
        },
        drifting_features=[n for i, n in enumerate(FEATURES) if 0.5 * (i + 1) * scale > 1],
        drifting_share=0.0,
        distributions=None,
    )


def error_record(minute: int, *, sales: int = 40) -> ErrorRecord:
    """A realised-error record of the same window as :func:`drift_record`."""
    start = T0 + timedelta(minutes=minute)
    return ErrorRecord(
        window="1m",
        start=start,
        end=start + timedelta(minutes=1),
        model_version="v-test",
        sales=sales,
        mae_dollars=12_000.0,
        mape=0.08,
    )
