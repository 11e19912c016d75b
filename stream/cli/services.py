"""``appraise broker``, ``score``, ``aggregate`` and ``up``: the services, alone or together."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer

from consumers.history.service import HistoryService
from consumers.http.service import ServeService
from consumers.service import ScorerService
from producers.scenarios import parse_scenario
from stream.aggregate.service import AggregateService
from stream.cli.app import configure_logging, out, run_until_signal
from stream.kafka.broker import EmbeddedBroker
from stream.ops.profiles import profile_named
from stream.ops.up import UpOptions, run_up
from stream.service.runtime import Endpoint, run_service
from stream.settings import Settings, load_settings


def broker(
    port: Annotated[
        int | None,
        typer.Option(
            metavar="PORT",
            help="listen port [default: APPRAISE_BROKER__PORT, 9092]",
        ),
    ] = None,
    log: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="write the broker's own log here"),
    ] = None,
) -> None:
    """Run the embedded Kafka-compatible broker (Tansu, memory only) with the project's topics.

    Stops on Ctrl-C. Everything it holds is gone when it stops.
    """
    settings = load_settings()

    async def serve(stopping: asyncio.Event) -> None:
        chosen = settings if port is None else _with_broker_port(settings, port)
        embedded = EmbeddedBroker.from_settings(chosen, log_path=log)
        async with embedded:
            topics = ", ".join(f"{t}({settings.topics.partitions})" for t in settings.topics.all())
            out.print(
                f"broker ready on {embedded.bootstrap_servers} "
                f"(Tansu {embedded.version}, memory only); topics: {topics}. Ctrl-C stops it."
            )
            await stopping.wait()
        out.print("broker stopped")

    run_until_signal(serve)


def up(
    rate: Annotated[
        float | None,
        typer.Option(
            metavar="RATE",
            min=0.1,
            help="listings per second [default: the profile's, 20 or 50]",
        ),
    ] = None,
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME:KEY=VALUE,...",
            help="a drift scenario for the producer, e.g. scale:feature=living_area_sqft,"
            "factor=1.6,after_s=60 (see appraise produce --list-scenarios); repeatable",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(metavar="N", help="seed of the scenarios")] = 0,
    profile: Annotated[
        str,
        typer.Option(
            metavar="default|demo",
            help="time scales: 'default' (1 and 5 min windows, alerts after minutes) or 'demo' "
            "(10 and 30 s windows, rule durations / 10: a drift alert within about a minute)",
        ),
    ] = "default",
    bootstrap_servers: Annotated[
        str | None,
        typer.Option(
            metavar="HOST:PORT,...",
            help="use this Kafka cluster instead of starting the embedded broker",
        ),
    ] = None,
    prometheus_url: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="use this Prometheus (which scrapes the scorer and stream app itself) instead "
            "of starting Prometheus and Alertmanager",
        ),
    ] = None,
    monitoring: Annotated[
        bool, typer.Option(help="run Prometheus, Alertmanager and the alert webhook receiver")
    ] = True,
    http: Annotated[
        bool,
        typer.Option(
            help="also run the HTTP price service (appraise serve, APPRAISE_SERVE__PORT) and a "
            "second producer sending it the same stream as requests; its predictions join the "
            "same windows"
        ),
    ] = False,
    history: Annotated[
        bool,
        typer.Option(
            help="also keep every closed window in PostgreSQL (appraise history): a local "
            "server in the run directory (Debian's postgresql binaries), or --history-dsn's"
        ),
    ] = False,
    history_dsn: Annotated[
        str | None,
        typer.Option(
            metavar="DSN",
            help="with --history: use this PostgreSQL (libpq string or postgresql:// URL; the "
            "password from APPRAISE_HISTORY__PASSWORD_FILE or PGPASSWORD) instead of a local one",
        ),
    ] = None,
    live: Annotated[
        bool, typer.Option(help="show the live view (off a terminal: a status line every 10 s)")
    ] = True,
    scorers: Annotated[
        int,
        typer.Option(
            min=1,
            metavar="N",
            help="scorer processes in one consumer group, at most APPRAISE_TOPICS__PARTITIONS; "
            "metrics on APPRAISE_METRICS__SCORER_PORT and the next free ports",
        ),
    ] = 1,
    run_dir: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="where logs, configs and alerts.jsonl go [default: runs/<UTC time>]",
        ),
    ] = None,
) -> None:
    """Run appraise on this machine: broker, model, scorer, stream app, Prometheus, Alertmanager,
    an alert webhook receiver and a producer, with a live view, until Ctrl-C (or SIGTERM, or
    SIGHUP when the terminal closes)."""
    for text in scenario or []:
        parse_scenario(text)  # a bad scenario stops here, before anything starts
    chosen = profile_named(profile)
    settings = (
        load_settings() if history_dsn is None else load_settings(history={"dsn": history_dsn})
    )
    options = UpOptions(
        rate=rate,
        scenarios=tuple(scenario or ()),
        seed=seed,
        bootstrap_servers=bootstrap_servers,
        prometheus_url=prometheus_url.rstrip("/") if prometheus_url else None,
        monitoring=monitoring,
        http=http,
        history=history or history_dsn is not None,
        history_dsn=history_dsn,
        profile=chosen,
        live=live,
        scorers=scorers,
    )
    if run_dir is not None:
        options = dataclasses.replace(options, run_dir=run_dir)

    async def run(stopping: asyncio.Event) -> None:
        await run_up(
            settings, options, stopping, lambda line: out.print(line, markup=False), console=out
        )
        out.print("stopped")

    run_until_signal(run)


def score() -> None:
    """Run the scorer: consume listings, publish predictions, dead letters and pane partials.

    Metrics and health on APPRAISE_METRICS__HOST:APPRAISE_METRICS__SCORER_PORT (/metrics,
    /healthz, /readyz). SIGTERM, SIGHUP or Ctrl-C drains within
    APPRAISE_SERVICE__DRAIN_DEADLINE_S: the batch in hand is finished, delivered and committed;
    a second signal exits at once. Exit codes: 0 drained, 1 past the deadline, 2 bad settings or
    model, 3 no broker, 130 second signal.
    """
    configure_logging()
    settings = load_settings()
    raise SystemExit(asyncio.run(run_service(ScorerService(settings), settings)))


def aggregate() -> None:
    """Run the stream app: pane partials into event-time windows of quantiles and drift, sale
    labels into realised error.

    Metrics and health on APPRAISE_METRICS__HOST:APPRAISE_METRICS__AGGREGATE_PORT (9401). Stops,
    drains and exits as `appraise score` does, with the same exit codes.
    """
    configure_logging()
    settings = load_settings()
    service = AggregateService(settings)

    def ready(server: Endpoint, _worker: object) -> None:
        app = service.app
        took = "" if app is None or app.ready_after_s is None else f" in {app.ready_after_s:.1f} s"
        out.print(f"aggregate ready{took}; metrics on {server.url}/metrics")

    raise SystemExit(asyncio.run(run_service(service, settings, on_ready=ready)))


def serve() -> None:
    """Run the HTTP price service: POST /predict and /predict/batch, priced by the model the
    scorer uses, in micro-batches; every answered prediction is published to Kafka (predictions
    and pane partials) so the stream app's windows and alerts cover it.

    Listens on APPRAISE_SERVE__HOST:APPRAISE_SERVE__PORT (127.0.0.1:8000): the API, /docs,
    /metrics, /healthz and /readyz (503 until the model is loaded). The broker is not needed
    to serve: while it is away, answers go on and what could not be published is counted.
    SIGTERM, SIGHUP or Ctrl-C stops accepting, answers the requests in hand and publishes what
    is buffered. Exit codes as for `appraise score` (no broker is not an error here).
    """
    configure_logging()
    settings = load_settings()
    service = ServeService(settings)

    def ready(server: Endpoint, _worker: object) -> None:
        out.print(
            f"serve ready on {server.url} (model {service.state.model_version}); "
            f"docs on {server.url}/docs"
        )

    raise SystemExit(_run_uvloop(run_service(service, settings, on_ready=ready)))


def history(
    dsn: Annotated[
        str | None,
        typer.Option(
            metavar="DSN",
            help="the history database (libpq string or postgresql:// URL) "
            "[default: APPRAISE_HISTORY__DSN]; the password from APPRAISE_HISTORY__PASSWORD_FILE "
            "(or __PASSWORD, PGPASSWORD, PGPASSFILE), never on the command line",
        ),
    ] = None,
) -> None:
    """Run the history sink: every closed window on the windows topic into PostgreSQL, one row
    per window and model version with its per-feature statistics (schema created or migrated
    at start-up).

    Metrics and health on APPRAISE_METRICS__HOST:APPRAISE_METRICS__HISTORY_PORT (9402). While
    the database is away it retries with backoff and commits nothing; stops, drains and exits
    as `appraise score` does (2 also for credentials the database refuses).
    """
    configure_logging()
    settings = load_settings() if dsn is None else load_settings(history={"dsn": dsn})
    service = HistoryService(settings)

    def ready(server: Endpoint, _worker: object) -> None:
        out.print(
            f"history ready; writing {settings.topics.windows} into "
            f"{settings.history.where()}; metrics on {server.url}/metrics"
        )

    raise SystemExit(asyncio.run(run_service(service, settings, on_ready=ready)))


def _run_uvloop(main: Coroutine[Any, Any, int]) -> int:
    """Run ``main`` on uvloop (uvicorn's fast loop) when installed, else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def _with_broker_port(settings: Settings, port: int) -> Settings:
    """The settings with the embedded broker, and the clients, on ``port``."""
    broker = settings.broker.model_copy(update={"port": port})
    kafka = settings.kafka.model_copy(update={"bootstrap_servers": f"{broker.host}:{port}"})
    return settings.model_copy(update={"broker": broker, "kafka": kafka})
