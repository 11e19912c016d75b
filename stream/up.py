"""``appraise up``: the whole product on one machine, each part the command compose runs.

Order: the broker (embedded, in this process, unless ``--bootstrap-servers`` names a running
cluster) and its topics; the model (trained if the model directory has none); the scorer and the
stream app, each once ready; the webhook receiver, Alertmanager and Prometheus (unless
``--prometheus-url`` names a running Prometheus, or their binaries are missing, which is said);
the producer; then the live view. Ctrl-C stops them in reverse order. Logs go to
``<run dir>/<part>.log``, notifications to ``<run dir>/alerts.jsonl``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from pydantic import ValidationError
from rich.console import Console

from stream.aggregate.windows import window_specs
from stream.alerts import WebhookReceiver
from stream.broker import EmbeddedBroker
from stream.errors import ConfigError
from stream.kafka import ensure_topics, wait_until_reachable
from stream.live import LiveSources, run_live_view
from stream.model import CARD_FILE, load_model, train
from stream.monitoring import (
    INSTALL_HINT,
    PROFILES,
    Endpoints,
    Profile,
    alertmanager_argv,
    find_binary,
    prometheus_argv,
    write_configs,
)
from stream.settings import ENV_NESTED_DELIMITER, ENV_PREFIX, Settings
from stream.supervisor import ChildFailed, Supervisor, appraise_argv

#: The webhook receiver's record of every notification, in the run directory.
ALERTS_FILE = "alerts.jsonl"
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
    run_dir: Path = field(default_factory=lambda: Path("runs") / _stamp())


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def child_env(settings: Settings) -> dict[str, str]:
    """This process's environment with the settings in force spelled as APPRAISE_* variables,
    so every child reads exactly what this process decided (the broker's port, the model)."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(ENV_PREFIX)}
    dumped = settings.model_dump(mode="json", exclude_none=True)
    for name, value in dumped.items():
        if isinstance(value, dict):
            for inner, inner_value in value.items():
                key = f"{ENV_PREFIX}{name}{ENV_NESTED_DELIMITER}{inner}".upper()
                env[key] = _env_value(inner_value)
        else:
            env[f"{ENV_PREFIX}{name}".upper()] = _env_value(value)
    password = settings.kafka.password()
    if password is not None and settings.kafka.sasl_password_file is None:
        env[f"{ENV_PREFIX}KAFKA{ENV_NESTED_DELIMITER}SASL_PASSWORD"] = password.get_secret_value()
    return env


def _env_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    return str(value)


def with_profile(settings: Settings, profile: Profile) -> Settings:
    """``settings`` with the profile's values wherever the environment did not set the field."""
    updates: dict[str, Any] = {}
    for section, values in profile.settings.items():
        current = getattr(settings, section)
        chosen = {k: v for k, v in values.items() if k not in current.model_fields_set}
        if chosen:
            try:
                updates[section] = type(current).model_validate({**current.model_dump(), **chosen})
            except ValidationError as exc:
                problems = [e["msg"].removeprefix("Value error, ") for e in exc.errors()]
                raise ConfigError(
                    f"profile {profile.name!r} sets {section} {chosen}, which does not fit the "
                    f"APPRAISE_{section.upper()}__* variables set: " + "; ".join(problems)
                ) from None
    return settings.model_copy(update=updates)


async def run_up(
    settings: Settings,
    options: UpOptions,
    stop: asyncio.Event,
    say: Callable[[str], None],
    console: Console | None = None,
) -> None:
    """Run everything until ``stop`` is set or a part fails (ChildFailed)."""
    settings = with_profile(settings, options.profile)
    options.run_dir.mkdir(parents=True, exist_ok=True)
    plain = console is None or not console.is_terminal
    async with contextlib.AsyncExitStack() as stack:
        if options.bootstrap_servers is None:
            broker = EmbeddedBroker.from_settings(settings, log_path=options.run_dir / "broker.log")
            await stack.enter_async_context(broker)
            settings = settings.model_copy(update={"kafka": broker.kafka})
            say(f"broker     ready on {broker.bootstrap_servers} (Tansu {broker.version})")
        else:
            kafka = settings.kafka.model_copy(
                update={"bootstrap_servers": options.bootstrap_servers}
            )
            settings = settings.model_copy(update={"kafka": kafka})
            await wait_until_reachable(kafka, 30.0)
            await ensure_topics(kafka, settings.topics)
            say(f"broker     using {options.bootstrap_servers}")

        if not (settings.model_dir / CARD_FILE).is_file():
            say(f"model      none in {settings.model_dir}: training one (a few seconds)")
            card = await asyncio.to_thread(train, settings.model_dir)
        else:
            card = (await asyncio.to_thread(load_model, settings.model_dir)).card
        say(
            f"model      {card.model_version} in {settings.model_dir} "
            f"(hold-out R² {card.holdout.r2:.3f}, MAPE {card.holdout.mape:.3f})"
        )

        supervisor = Supervisor(options.run_dir, child_env(settings))
        receiver: WebhookReceiver | None = None

        async def stop_parts() -> None:
            await supervisor.stop_all()
            if receiver is not None:  # last: it records what Alertmanager sends until it stops
                await receiver.stop()

        stack.push_async_callback(stop_parts)
        host = settings.metrics.host
        scorer_url = f"http://{host}:{settings.metrics.scorer_port}"
        await supervisor.start(
            "scorer",
            appraise_argv("score"),
            ready=lambda: _http_ready(f"{scorer_url}/readyz"),
            ready_timeout_s=SCORER_READY_TIMEOUT_S,
        )
        say(f"scorer     ready; metrics {scorer_url}/metrics, health {scorer_url}/readyz")
        stream_url = f"http://{host}:{settings.metrics.stream_port}"
        await supervisor.start(
            "stream",
            appraise_argv("aggregate"),
            ready=lambda: _http_ready(f"{stream_url}/readyz"),
            ready_timeout_s=SCORER_READY_TIMEOUT_S,
        )
        window = settings.aggregate
        say(
            f"stream app ready; metrics {stream_url}/metrics; "
            f"windows {window.tumbling_seconds:g} s and {window.hopping_seconds:g} s "
            f"every {window.hop_seconds:g} s "
            f"(profile {options.profile.name})"
        )

        urls = {"scorer": f"{scorer_url}/metrics", "stream app": f"{stream_url}/metrics"}
        prometheus_url = options.prometheus_url
        alertmanager_url: str | None = None
        if prometheus_url is not None:
            say(
                f"prometheus using {prometheus_url}: have it scrape {host}:"
                f"{settings.metrics.scorer_port} and {host}:{settings.metrics.stream_port} "
                "with the rules in prometheus/rules/"
            )
        elif options.monitoring:
            monitoring = settings.monitoring
            wanted = {
                "Prometheus": monitoring.prometheus_bin,
                "Alertmanager": monitoring.alertmanager_bin,
            }
            binaries = {what: find_binary(name) for what, name in wanted.items()}
            missing = [
                f"{what} ({wanted[what]!r} not found)"
                for what, path in binaries.items()
                if path is None
            ]
            if missing:
                say(f"monitoring NOT running: {', '.join(missing)}; {INSTALL_HINT}")
            else:
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
                    receiver = None
                    raise ConfigError(
                        f"the alert webhook receiver cannot listen on {monitoring.host}:"
                        f"{monitoring.webhook_port} ({exc.strerror}): set "
                        "APPRAISE_MONITORING__WEBHOOK_PORT to a free port"
                    ) from None
                endpoints = Endpoints(
                    scorer=f"{host}:{settings.metrics.scorer_port}",
                    stream=f"{host}:{settings.metrics.stream_port}",
                    prometheus=f"{monitoring.host}:{monitoring.prometheus_port}",
                    alertmanager=f"{monitoring.host}:{monitoring.alertmanager_port}",
                    webhook=f"{monitoring.host}:{receiver.port}",
                )
                configs = write_configs(options.run_dir / "config", endpoints, options.profile)
                alertmanager_url = f"http://{endpoints.alertmanager}"
                await supervisor.start(
                    "alertmanager",
                    alertmanager_argv(
                        str(binaries["Alertmanager"]),
                        configs.alertmanager,
                        options.run_dir / "alertmanager-data",
                        endpoints.alertmanager,
                    ),
                    ready=lambda: _http_ready(f"{alertmanager_url}/-/ready"),
                )
                say(f"alertmgr   ready on {alertmanager_url}; notifications to {receiver.url}")
                prometheus_url = f"http://{endpoints.prometheus}"
                await supervisor.start(
                    "prometheus",
                    prometheus_argv(
                        str(binaries["Prometheus"]),
                        configs.prometheus,
                        options.run_dir / "prometheus-data",
                        endpoints.prometheus,
                    ),
                    ready=lambda: _http_ready(f"{prometheus_url}/-/ready"),
                )
                say(
                    f"prometheus ready on {prometheus_url} (rules from prometheus/rules/, "
                    f"durations / {options.profile.rules_time_divisor})"
                )
                urls = {"prometheus": prometheus_url, "alertmanager": alertmanager_url, **urls}
                urls["alerts file"] = str(options.run_dir / ALERTS_FILE)

        rate = options.rate if options.rate is not None else options.profile.rate
        produce = ["produce", "--loop", "--event-time", "live", "--rate", f"{rate:g}"]
        produce += ["--with-sales", "--sale-delay", f"{options.profile.sale_delay_s:g}"]
        produce += ["--seed", str(options.seed)]
        for scenario in options.scenarios:
            produce += ["--scenario", scenario]
        await supervisor.start("producer", appraise_argv(*produce))
        scenarios = f" with {', '.join(options.scenarios)}" if options.scenarios else ""
        say(
            f"producer   {rate:g} listings/s from the 2008-2010 hold-out stream{scenarios}; "
            f"each sale {options.profile.sale_delay_s:g} s later"
        )
        say(f"logs       {options.run_dir}/")
        tumbling = window_specs(settings.aggregate)[0].name
        say(f"report     appraise report --window {tumbling} (in another terminal, any time)")
        say("Ctrl-C stops everything.")

        live_done = asyncio.Event()
        waits: set[asyncio.Future[Any]] = {asyncio.ensure_future(supervisor.wait_for_failure())}
        waits.add(asyncio.ensure_future(stop.wait()))
        if options.live:
            sources = LiveSources(
                scorer_metrics_url=f"{scorer_url}/metrics",
                stream_metrics_url=f"{stream_url}/metrics",
                prometheus_url=prometheus_url,
                alertmanager_url=alertmanager_url,
                urls=urls,
                notifications=(lambda: [n.line() for n in receiver.recent()])
                if receiver is not None
                else (lambda: ()),
                psi_threshold=settings.aggregate.psi_threshold,
            )
            waits.add(asyncio.ensure_future(run_live_view(sources, live_done, console=console)))
        done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        live_done.set()  # its own event: the caller's stays a record of a signal received
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            task.result()  # a dead child raises ChildFailed with its log tail
        parts = [c.name for c in reversed(supervisor.children)]
        parts += ["webhook receiver"] if receiver is not None else []
        say("stopping: " + ", ".join([*parts, "broker"]))


async def _http_ready(url: str, interval_s: float = 0.25) -> None:
    """Return once ``url`` answers 200; keep asking while it answers anything else or nothing."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(interval_s)


__all__ = ["ALERTS_FILE", "ChildFailed", "UpOptions", "child_env", "run_up", "with_profile"]
