"""The stream app as a service: what ``appraise aggregate`` runs.

The one place that wires the app together: load the model's reference profile, wait for the
broker, make sure the topics exist, serve ``/metrics`` and run the faust worker until asked to
stop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

from prometheus_client import CollectorRegistry

from stream.aggregate.app import AggregateApp
from stream.aggregate.metrics import AggregateMetrics
from stream.aggregate.windows import window_specs
from stream.http import MetricsServer
from stream.kafka import ensure_topics, wait_until_reachable
from stream.model import load_model
from stream.settings import Settings

log = logging.getLogger(__name__)

#: How long to wait for the broker at start-up, in seconds.
BROKER_WAIT_S: Final = 60.0


def new_metrics(settings: Settings, registry: CollectorRegistry) -> AggregateMetrics:
    """The app's metrics on ``registry``, with the window labels of ``settings``."""
    return AggregateMetrics(
        registry,
        [spec.name for spec in window_specs(settings.aggregate)],
        max_model_versions=settings.aggregate.max_model_versions,
    )


async def run_aggregate(
    settings: Settings,
    stop: asyncio.Event,
    *,
    registry: CollectorRegistry | None = None,
    on_ready: Callable[[AggregateApp, MetricsServer], None] | None = None,
) -> None:
    """Run the stream app until ``stop`` is set; then commit, leave the group and return.

    Args:
        settings: project settings; the reference profile comes from ``settings.model_dir``
            and ``/metrics`` is served on ``settings.metrics.host:stream_port`` (9401; 0 picks
            a free port).
        stop: set it (e.g. from a SIGTERM/SIGINT handler) to stop.
        registry: where the metrics go; a fresh one with process collectors by default.
        on_ready: called with the started app and metrics server (tests read the port).

    Raises ``ModelLoadError`` for a missing or bad model directory and ``BrokerError`` if no
    broker answers within a minute.
    """
    model = load_model(settings.model_dir)
    registry = registry or CollectorRegistry()
    metrics = new_metrics(settings, registry)
    await wait_until_reachable(settings.kafka, BROKER_WAIT_S)
    await ensure_topics(settings.kafka, settings.topics)
    app = AggregateApp(settings, model.profile, metrics)
    server = MetricsServer(
        settings.metrics.host,
        settings.metrics.stream_port,
        registry,
        lambda: {"worker_ready": app.ready},
    )
    async with server, app:
        log.info("stream app ready: model %s, metrics on %s/metrics", model.version, server.url)
        if on_ready is not None:
            on_ready(app, server)
        await stop.wait()
