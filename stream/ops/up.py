"""``appraise up``: the whole product on one machine, each part the command compose runs.

Order: the broker (embedded, in this process, unless ``--bootstrap-servers`` names a running
cluster) and its topics; the model (trained if the model directory has none); then the parts of
:func:`plan`, each started once the one before is ready: the scorer and the stream app, the
webhook receiver (in this process), Alertmanager and Prometheus (unless ``--prometheus-url``
names a running Prometheus, or their binaries are missing, which is said), the producer; then
the live view. Ctrl-C (or SIGTERM, or SIGHUP when the terminal closes) stops them in reverse
order. Logs go to ``<run dir>/<part>.log``, notifications to ``<run dir>/alerts.jsonl``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console

from stream.aggregate.windows import window_specs
from stream.contract.times import compact_stamp
from stream.errors import ConfigError
from stream.kafka.broker import EmbeddedBroker
from stream.kafka.clients import wait_until_reachable
from stream.kafka.topics import ensure_topics, topic_specs
from stream.live.run import LiveSources, run_live_view
from stream.model.card import CARD_FILE
from stream.model.load import load_model
from stream.model.train import train
from stream.ops.alerts import WebhookReceiver
from stream.ops.configs import Endpoints, alertmanager_argv, prometheus_argv, write_configs
from stream.ops.parts import (
    ALERTS_FILE,
    INSTALL_HINT,
    Part,
    Say,
    appraise_argv,
    check_scorers,
    history_part,
    monitoring_binaries,
    service_parts,
)
from stream.ops.postgres import LocalPostgres
from stream.ops.profiles import PROFILES, Profile, with_profile
from stream.ops.supervisor import ChildFailed, Supervisor
from stream.settings import Settings, settings_env

#: How long the scorer may take to load its model, join its group and get partitions.
SCORER_READY_TIMEOUT_S = 90.0


@dataclass(frozen=True, slots=True)
class UpOptions:
    """What ``appraise up`` was asked for."""

    rate: float | None = None  # None: the profile's rate
    scenarios: Sequence[str] = ()
    seed: int = 0
    bootstrap_servers: str | None = None  # None: run the embedded broker
    prometheus_url: str | None = None  # an existing Prometheus: run neither it nor Alertmanager
    monitoring: bool = True  # False: run no Prometheus, Alertmanager or webhook receiver
    profile: Profile = PROFILES["default"]
    live: bool = True  # the live view (a status line every 10 s off a terminal)
    http: bool = False  # also the HTTP price service, with a second producer sending to it
    history: bool = False  # also the history sink, into a local PostgreSQL unless history_dsn
    history_dsn: str | None = None  # an existing PostgreSQL (the password from the env or a file)
    scorers: int = 1  # scorer processes in one group: 1..topics.partitions
    run_dir: Path = field(default_factory=lambda: Path("runs") / compact_stamp())


async def run_up(
    settings: Settings,
    options: UpOptions,
    stop: asyncio.Event,
    say: Say,
    console: Console | None = None,
) -> None:
    """Run everything until ``stop`` is set or a part fails (ChildFailed)."""
    settings = with_profile(settings, options.profile)
    check_scorers(settings, options.scorers)  # before anything starts
    options.run_dir.mkdir(parents=True, exist_ok=True)
    async with contextlib.AsyncExitStack() as stack:
        settings = await _broker(settings, options, stack, say)
        if options.history:
            settings = await _database(settings, options, stack, say)
        await _model(settings, say)
        # The receiver stops after the parts (the stack unwinds in reverse): it records what
        # Alertmanager sends until Alertmanager is gone.
        receiver = await _receiver(settings, options, stack, console, say)
        supervisor = Supervisor(
            options.run_dir, settings_env(settings), settings.service.drain_deadline_s
        )
        stack.push_async_callback(supervisor.stop_all)
        urls: dict[str, str] = {}
        scorers: dict[str, str] = {}  # part name -> its /metrics, for the live view
        for part in plan(settings, options, receiver, say):
            await supervisor.start(
                part.name,
                part.argv,
                ready=None if part.ready_url is None else _ready(part.ready_url),
                ready_timeout_s=part.ready_timeout_s,
                env=part.env,  # the part's own settings over the run's (each scorer's port)
            )
            say(part.said)
            urls.update(part.urls)
            if part.metrics is not None:
                scorers[part.name] = f"http://{part.metrics}/metrics"
        if receiver is not None:
            urls["alerts file"] = str(receiver.path)
        say(f"logs       {options.run_dir}/")
        say(f"report     appraise report --window {_tumbling(settings)} (another terminal)")
        say("Ctrl-C stops everything.")
        await _until_stopped(
            settings, options, supervisor, receiver, (urls, scorers), stop, console
        )
        parts = [c.name for c in reversed(supervisor.children)]
        parts += ["webhook receiver"] if receiver is not None else []
        parts += ["postgres"] if options.history and options.history_dsn is None else []
        parts += ["broker"] if options.bootstrap_servers is None else []
        say("stopping: " + ", ".join(parts))


def plan(
    settings: Settings, options: UpOptions, receiver: WebhookReceiver | None, say: Say
) -> list[Part]:
    """The child processes of a run, in start order: the scorer, the stream app, Alertmanager
    and Prometheus (when ``receiver`` runs: monitoring is on and its binaries were found), the
    producer."""
    parts = service_parts(settings, options.profile, SCORER_READY_TIMEOUT_S, options.scorers)
    scorers = {part.name: part.metrics for part in parts if part.metrics is not None}
    serve = settings.serve
    api = f"http://{serve.host}:{serve.port}"
    if options.http:
        parts.append(
            Part(
                "serve",
                appraise_argv("serve"),
                f"{api}/readyz",
                f"serve      ready on {api} (POST /predict, /predict/batch; docs {api}/docs)",
                SCORER_READY_TIMEOUT_S,
                {"api": f"{api}/metrics"},
            )
        )
    if options.history:
        parts.append(history_part(settings, SCORER_READY_TIMEOUT_S))
    monitoring = settings.monitoring
    if receiver is not None:
        binaries = monitoring_binaries(settings)
        metrics = settings.metrics
        endpoints = Endpoints(
            scorer=next(iter(scorers.values())),
            aggregate=f"{metrics.host}:{metrics.aggregate_port}",
            prometheus=f"{monitoring.host}:{monitoring.prometheus_port}",
            alertmanager=f"{monitoring.host}:{monitoring.alertmanager_port}",
            webhook=f"{monitoring.host}:{receiver.port}",
            api=f"{serve.host}:{serve.port}" if options.http else None,
            history=f"{metrics.host}:{metrics.history_port}" if options.history else None,
            scorers=scorers,  # a file_sd file: every scorer, labelled with its part name
        )
        configs = write_configs(
            options.run_dir / "config",
            endpoints,
            options.profile,
            source=monitoring.config_dir,
            runbook_url=monitoring.runbook_url,
        )
        alertmanager = f"http://{endpoints.alertmanager}"
        prometheus = f"http://{endpoints.prometheus}"
        parts.append(
            Part(
                "alertmanager",
                alertmanager_argv(
                    binaries["Alertmanager"],
                    configs.alertmanager,
                    options.run_dir / "alertmanager-data",
                    endpoints.alertmanager,
                ),
                f"{alertmanager}/-/ready",
                f"alertmgr   ready on {alertmanager}; notifications to {receiver.url}",
                urls={"alertmanager": alertmanager},
            )
        )
        parts.append(
            Part(
                "prometheus",
                prometheus_argv(
                    binaries["Prometheus"],
                    configs.prometheus,
                    options.run_dir / "prometheus-data",
                    endpoints.prometheus,
                ),
                f"{prometheus}/-/ready",
                f"prometheus ready on {prometheus} (rules from {configs.rules_dir}, durations "
                f"/ {options.profile.rules_time_divisor})",
                urls={"prometheus": prometheus},
            )
        )
    elif options.prometheus_url is not None:
        metrics = settings.metrics
        say(
            f"prometheus using {options.prometheus_url}: have it scrape "
            f"{', '.join(scorers.values())} and {metrics.host}:{metrics.aggregate_port}"
            + (f" and {metrics.host}:{metrics.history_port}" if options.history else "")
            + " with the rules in prometheus/rules/"
        )
    parts.append(_producer(options))
    if options.http:
        parts.append(_producer(options, http=api))
    return parts


def _producer(options: UpOptions, http: str | None = None) -> Part:
    """The producer of listings to Kafka, or (``http``) of requests to the price service; each
    sends the profile's rate with the run's scenarios, and the sale labels to Kafka."""
    profile = options.profile
    rate = options.rate if options.rate is not None else profile.rate
    argv = ["produce", "--loop", "--event-time", "live", "--rate", f"{rate:g}"]
    argv += ["--with-sales", "--sale-delay", f"{profile.sale_delay_s:g}"]
    # The HTTP producer gets its own seed, so its scenarios' random draws differ from Kafka's.
    argv += ["--seed", str(options.seed + (1 if http else 0))]
    if http is not None:
        argv += ["--http", http, "--concurrency", "4"]
    for scenario in options.scenarios:
        argv += ["--scenario", scenario]
    scenarios = f" with {', '.join(options.scenarios)}" if options.scenarios else ""
    where = f"requests/s to {http}/predict" if http else "listings/s"
    said = (
        f"{'requester' if http else 'producer ':<10} {rate:g} {where} from the 2008-2010 "
        f"hold-out stream{scenarios}; each sale {profile.sale_delay_s:g} s later"
    )
    return Part("requester" if http else "producer", appraise_argv(*argv), None, said)


async def _broker(
    settings: Settings, options: UpOptions, stack: contextlib.AsyncExitStack, say: Say
) -> Settings:
    """The embedded broker (stopped last), or the named cluster with the project's topics."""
    if options.bootstrap_servers is None:
        broker = EmbeddedBroker.from_settings(settings, log_path=options.run_dir / "broker.log")
        await stack.enter_async_context(broker)
        say(f"broker     ready on {broker.bootstrap_servers} (Tansu {broker.version})")
        return settings.model_copy(update={"kafka": broker.kafka})
    kafka = settings.kafka.model_copy(update={"bootstrap_servers": options.bootstrap_servers})
    settings = settings.model_copy(update={"kafka": kafka})
    await wait_until_reachable(kafka, settings.service.broker_wait_s)
    await ensure_topics(kafka, topic_specs(settings))
    say(f"broker     using {options.bootstrap_servers}")
    return settings


async def _database(
    settings: Settings, options: UpOptions, stack: contextlib.AsyncExitStack, say: Say
) -> Settings:
    """The history database: a local PostgreSQL in ``<run dir>/postgres`` (stopped after the
    parts), or the one ``--history-dsn`` names (its password from the environment or a file)."""
    if options.history_dsn is not None:
        history = settings.history.model_copy(update={"dsn": options.history_dsn})
        say(f"history    using {history.where()}")
        return settings.model_copy(update={"history": history})
    server = LocalPostgres(options.run_dir / "postgres")  # on 127.0.0.1: for this machine only
    await stack.enter_async_context(server)
    history = settings.history.model_copy(
        update={"dsn": server.dsn, "password": None, "password_file": server.password_file}
    )
    say(
        f"postgres   ready on {server.host}:{server.port} (PostgreSQL {server.version}; "
        f"data in {options.run_dir / 'postgres'}, password in {server.password_file})"
    )
    return settings.model_copy(update={"history": history})


async def _model(settings: Settings, say: Say) -> None:
    if not (settings.model_dir / CARD_FILE).is_file():
        say(f"model      none in {settings.model_dir}: training one (a few seconds)")
        card = await asyncio.to_thread(train, settings.model_dir)
    else:
        card = (await asyncio.to_thread(load_model, settings.model_dir)).card
    say(
        f"model      {card.model_version} in {settings.model_dir} "
        f"(hold-out R² {card.holdout.r2:.3f}, MAPE {card.holdout.mape:.3f})"
    )


async def _receiver(
    settings: Settings,
    options: UpOptions,
    stack: contextlib.AsyncExitStack,
    console: Console | None,
    say: Say,
) -> WebhookReceiver | None:
    """The alert webhook receiver, when Prometheus and Alertmanager are to run here."""
    if options.prometheus_url is not None or not options.monitoring:
        return None
    missing = [
        f"{what} ({name!r} not found)"
        for what, name in monitoring_binaries(settings, missing=True).items()
    ]
    if missing:
        say(f"monitoring NOT running: {', '.join(missing)}; {INSTALL_HINT}")
        return None
    monitoring = settings.monitoring
    plain = console is None or not console.is_terminal
    receiver = WebhookReceiver(
        monitoring.host,
        monitoring.webhook_port,
        options.run_dir / ALERTS_FILE,
        # The live view on a terminal shows them; anywhere else they are printed.
        on_notification=(lambda n: say(f"alert      {n.line()}"))
        if plain or not options.live
        else (lambda _: None),
    )
    try:
        await receiver.start()
    except OSError as exc:
        raise ConfigError(
            f"the alert webhook receiver cannot listen on {monitoring.host}:"
            f"{monitoring.webhook_port} ({exc.strerror}): set APPRAISE_MONITORING__WEBHOOK_PORT "
            "to a free port"
        ) from None
    stack.push_async_callback(receiver.stop)
    return receiver


async def _until_stopped(
    settings: Settings,
    options: UpOptions,
    supervisor: Supervisor,
    receiver: WebhookReceiver | None,
    shown: tuple[dict[str, str], dict[str, str]],
    stop: asyncio.Event,
    console: Console | None,
) -> None:
    """Wait for ``stop`` or a dead child (raised as ChildFailed), showing the live view of
    ``shown``: the URLs to list, and each scorer's /metrics."""
    urls, scorers = shown
    live_done = asyncio.Event()
    waits: set[asyncio.Future[Any]] = {asyncio.ensure_future(supervisor.wait_for_failure())}
    waits.add(asyncio.ensure_future(stop.wait()))
    if options.live:
        metrics = settings.metrics
        prometheus = urls.get("prometheus", options.prometheus_url)
        sources = LiveSources(
            scorer_metrics_urls=scorers,
            aggregate_metrics_url=f"http://{metrics.host}:{metrics.aggregate_port}/metrics",
            prometheus_url=prometheus,
            alertmanager_url=urls.get("alertmanager"),
            urls=urls,
            notifications=(lambda: [n.line() for n in receiver.recent()])
            if receiver is not None
            else (lambda: ()),
        )
        waits.add(asyncio.ensure_future(run_live_view(sources, live_done, console=console)))
    done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    live_done.set()  # its own event: the caller's stays a record of a signal received
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        task.result()  # a dead child raises ChildFailed with its log tail


def _ready(url: str) -> Callable[[], Any]:
    return lambda: http_ready(url)


async def http_ready(url: str, interval_s: float = 0.25) -> None:
    """Return once ``url`` answers 200; keep asking while it answers anything else or nothing."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(interval_s)


def _tumbling(settings: Settings) -> str:
    return window_specs(settings.aggregate)[0].name


__all__ = ["ALERTS_FILE", "ChildFailed", "UpOptions", "plan", "run_up"]
