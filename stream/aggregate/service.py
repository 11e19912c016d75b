"""The stream app as a service: what ``appraise aggregate`` hands to ``stream.service.runtime``.

Prepared once: the model's reference profile is loaded (a bad model directory stops the start,
exit code 2). The worker is an :class:`~stream.aggregate.app.AggregateApp`: on a signal it
commits, seals its changelogs and leaves the group, within ``service.drain_deadline_s``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from prometheus_client import CollectorRegistry

from stream.aggregate.app import AggregateApp
from stream.aggregate.metrics import AggregateMetrics
from stream.aggregate.windows import window_specs
from stream.model.load import load_model
from stream.model.profile import ReferenceProfile
from stream.settings import Settings

log = logging.getLogger(__name__)


def new_metrics(settings: Settings, registry: CollectorRegistry) -> AggregateMetrics:
    """The app's metrics on ``registry``, with the window labels and sizes of ``settings``."""
    specs = window_specs(settings.aggregate)
    metrics = AggregateMetrics(
        registry,
        [spec.name for spec in specs],
        max_model_versions=settings.aggregate.max_model_versions,
    )
    for spec, kind in zip(specs, ("tumbling", "hopping"), strict=True):
        metrics.set_window_size(spec.name, kind, spec.size)
    return metrics


class AggregateService:
    """The stream app for :func:`stream.service.runtime.run_service`.

    Args:
        settings: project settings; the reference profile comes from ``settings.model_dir``
            and ``/metrics`` is served on ``settings.metrics.aggregate_port`` (9401).
        registry: where the metrics go; a fresh one with process collectors by default.
    """

    name = "aggregate"

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.port = settings.metrics.aggregate_port
        self.registry = registry or CollectorRegistry()
        self.metrics = new_metrics(settings, self.registry)
        self.profile: ReferenceProfile | None = None
        self.app: AggregateApp | None = None

    @asynccontextmanager
    async def prepared(self) -> AsyncIterator[None]:
        """Load the model's reference profile."""
        model = await asyncio.to_thread(load_model, self.settings.model_dir)
        log.info("reference profile of model %s loaded", model.version)
        self.profile = model.profile
        yield

    def not_ready(self) -> Mapping[str, bool]:
        """The worker is not started yet."""
        return {"worker_ready": False}

    def worker(self) -> AggregateApp:
        """The faust worker, with the prepared profile."""
        if self.profile is None:
            raise RuntimeError("the aggregate service is not prepared")
        self.app = AggregateApp(self.settings, self.profile, self.metrics)
        return self.app
