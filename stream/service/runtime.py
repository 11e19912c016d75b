"""``run_service``: how every long-running command runs (``appraise score``, ``appraise
aggregate``).

1. prepare the service (load its model; a bad model directory stops here, exit code 2);
2. serve ``/metrics``, ``/healthz`` and ``/readyz`` on its port (``/readyz`` is 503 until the
   worker says it is ready);
3. wait for the broker (setting ``service.broker_wait_s``; none answering: exit code 3) and
   create the project's topics it lacks;
4. start the worker and run it;
5. on SIGTERM, SIGINT or SIGHUP: stop intake, drain (finish the work in hand, commit, leave the
   group) within ``service.drain_deadline_s`` and exit 0; past the deadline exit 1 at once; a
   second signal exits 130 at once.

Exit codes: 0 after a clean drain, 1 past the drain deadline, 2 for bad settings or a model that
cannot be loaded, 3 when the broker cannot be reached, 130 on a second signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Final, Protocol

from prometheus_client import CollectorRegistry

from stream.errors import BrokerError, ConfigError, DataError, ModelLoadError
from stream.kafka.clients import wait_until_reachable
from stream.kafka.topics import ensure_topics, topic_specs
from stream.service.http import MetricsServer
from stream.settings import Settings

log = logging.getLogger(__name__)

#: A clean drain after a signal, or a run that ended by itself.
CLEAN_EXIT: Final = 0
#: The drain did not finish within ``service.drain_deadline_s``.
DEADLINE_EXIT: Final = 1
#: Bad settings, or a model directory that cannot be loaded.
CONFIG_EXIT: Final = 2
#: No broker answered within ``service.broker_wait_s``.
BROKER_EXIT: Final = 3
#: A second signal (128 + SIGINT, as shells report it).
FORCED_EXIT: Final = 130

#: The signals that ask a service to drain and stop.
STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Worker(Protocol):
    """The running part of a service (a :class:`~stream.service.component.Component`)."""

    @property
    def ready(self) -> Mapping[str, bool]:
        """The named readiness checks ``/readyz`` reports."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def run(self) -> object:
        """Work until :meth:`request_stop`, finish the work in hand, and return."""
        ...

    def request_stop(self) -> None: ...


class Service(Protocol):
    """What :func:`run_service` runs."""

    name: str
    """Who it is in log lines: ``scorer``, ``aggregate``."""
    port: int
    """Where ``/metrics`` listens (0: a free port)."""
    registry: CollectorRegistry

    def prepared(self) -> AbstractAsyncContextManager[None]:
        """Load what the worker needs (the model) and hold it until the service ends; raise
        ``ModelLoadError`` or ``ConfigError`` for a user's mistake."""
        ...

    def not_ready(self) -> Mapping[str, bool]:
        """The readiness checks reported until the worker exists."""
        ...

    def worker(self) -> Worker:
        """The running part, built once the broker answers and the topics exist."""
        ...

    # Optional, read with getattr: ``needs_broker`` (default True: wait for the broker and
    # create the topics before the worker is built) and ``endpoint(readiness) -> Endpoint`` (a
    # service that serves its own /metrics and probes; default: a MetricsServer on ``port``).


class Endpoint(Protocol):
    """Where a service answers ``/metrics`` and the probes: the runtime's
    :class:`MetricsServer`, or the service's own (the HTTP price service serves them beside
    its API)."""

    @property
    def url(self) -> str: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


OnReady = Callable[[Endpoint, Worker], None]


async def run_service(
    service: Service,
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    handle_signals: bool = True,
    on_ready: OnReady | None = None,
) -> int:
    """Run ``service`` until a signal (or ``stop``) and return the exit code (module docstring).

    Args:
        service: what to run.
        settings: the broker, topics, metrics host and the ``service`` section.
        stop: set it to drain and stop, as a first signal does (tests, embedding callers).
        handle_signals: install the SIGTERM/SIGINT/SIGHUP handlers. Without them the drain
            deadline cancels the run instead of exiting the process.
        on_ready: called with the metrics server and the started worker.
    """
    stopping = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    if handle_signals:
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, _on_signal, sig, stopping, service.name)
    try:
        return await _supervise(service, settings, stopping, handle_signals, on_ready)
    except (ConfigError, ModelLoadError, DataError) as exc:
        log.error("%s: %s", service.name, exc)
        return CONFIG_EXIT
    except BrokerError as exc:
        log.error("%s: %s", service.name, exc)
        return BROKER_EXIT
    finally:
        if handle_signals:
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)


def _on_signal(sig: signal.Signals, stopping: asyncio.Event, name: str) -> None:
    if stopping.is_set():
        log.warning("%s: second %s, exiting now", name, sig.name)
        os._exit(FORCED_EXIT)  # at once, as promised: no drain, no cleanup
    log.info("%s: %s, draining (signal again to exit now)", name, sig.name)
    stopping.set()


class _Running:
    """The worker once it exists, for the readiness checks and the stop path."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.worker: Worker | None = None

    def ready(self) -> Mapping[str, bool]:
        return self.service.not_ready() if self.worker is None else self.worker.ready


async def _supervise(
    service: Service,
    settings: Settings,
    stopping: asyncio.Event,
    exit_on_deadline: bool,
    on_ready: OnReady | None,
) -> int:
    running = _Running(service)
    body = asyncio.ensure_future(_body(service, settings, running, on_ready))
    asked = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({body, asked}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        asked.cancel()
    if not body.done():
        deadline = settings.service.drain_deadline_s
        started = time.monotonic()
        if running.worker is None:
            body.cancel()  # not started yet: nothing to drain
        else:
            running.worker.request_stop()
        try:
            await asyncio.wait_for(asyncio.shield(body), deadline)
        except TimeoutError:
            log.error("%s: the drain did not finish within %g s", service.name, deadline)
            if exit_on_deadline:
                os._exit(DEADLINE_EXIT)
            body.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await body
            return DEADLINE_EXIT
        except asyncio.CancelledError:
            if not body.cancelled():
                raise
        else:
            log.info("%s: drained in %.1f s", service.name, time.monotonic() - started)
    if body.cancelled():
        return CLEAN_EXIT
    body.result()  # raises what the service raised
    return CLEAN_EXIT


async def _body(
    service: Service, settings: Settings, running: _Running, on_ready: OnReady | None
) -> None:
    async with service.prepared():
        own_endpoint: Callable[[Callable[[], Mapping[str, bool]]], Endpoint] | None = getattr(
            service, "endpoint", None
        )
        server: Endpoint = (
            own_endpoint(running.ready)
            if own_endpoint is not None
            else MetricsServer(settings.metrics.host, service.port, service.registry, running.ready)
        )
        await server.start()
        try:
            if getattr(service, "needs_broker", True):
                await wait_until_reachable(settings.kafka, settings.service.broker_wait_s)
                await ensure_topics(settings.kafka, topic_specs(settings))
            worker = service.worker()
            await worker.start()
            try:
                running.worker = worker
                log.info("%s: running; metrics on %s/metrics", service.name, server.url)
                if on_ready is not None:
                    on_ready(server, worker)
                await worker.run()
            finally:
                await worker.stop()
        finally:
            await server.stop()
    log.info("%s: stopped", service.name)
