"""The history sink as a service: what ``appraise history`` hands to
``stream.service.runtime``. Nothing to prepare (no model); the worker is a
:class:`~consumers.history.sink.HistorySink`, built once the broker answers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from prometheus_client import CollectorRegistry

from consumers.history.metrics import HistoryMetrics
from consumers.history.sink import HistorySink
from stream.errors import ConfigError
from stream.settings import Settings


class HistoryService:
    """The history sink for :func:`stream.service.runtime.run_service`.

    Args:
        settings: the project settings (Kafka, the windows topic, ``metrics.history_port``,
            the ``history`` section).
        registry: where metrics go; a fresh one with process collectors by default.
    """

    name = "history"

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.port = settings.metrics.history_port
        self.registry = registry or CollectorRegistry()
        self.metrics = HistoryMetrics(self.registry)
        self.sink: HistorySink | None = None

    @asynccontextmanager
    async def prepared(self) -> AsyncIterator[None]:
        """Check the settings: no DSN, or a password file that cannot be read, stops here."""
        history = self.settings.history
        if history.dsn is None:
            raise ConfigError(
                "APPRAISE_HISTORY__DSN is not set: expected the history database's connection "
                "string, e.g. 'host=127.0.0.1 port=5432 dbname=appraise user=appraise' (the "
                "password in APPRAISE_HISTORY__PASSWORD_FILE)"
            )
        if history.password_file is not None and history.secret() is None:
            raise ConfigError(
                f"APPRAISE_HISTORY__PASSWORD_FILE={history.password_file} cannot be read"
            )
        yield

    def not_ready(self) -> Mapping[str, bool]:
        """Nothing connected yet."""
        return {"database_connected": False, "schema_current": False}

    def worker(self) -> HistorySink:
        """The sink."""
        self.sink = HistorySink(self.settings, self.metrics)
        return self.sink
