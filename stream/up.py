"""``appraise up``: the whole product on one machine, each part the command compose runs.

Order: the broker (embedded, in this process, unless ``--bootstrap-servers`` names a running
cluster) and its topics; the model (trained if the model directory has none); the scorer and the
stream app, each once ready; the producer. Ctrl-C stops them in reverse order. Logs go to
``<run dir>/<part>.log``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import orjson

from stream.broker import EmbeddedBroker
from stream.kafka import ensure_topics, wait_until_reachable
from stream.model import CARD_FILE, train
from stream.settings import ENV_NESTED_DELIMITER, ENV_PREFIX, Settings
from stream.supervisor import ChildFailed, Supervisor, appraise_argv

#: How long the scorer may take to load its model, join its group and get partitions.
SCORER_READY_TIMEOUT_S = 90.0


@dataclass(frozen=True, slots=True)
class UpOptions:
    """What ``appraise up`` was asked for."""

    rate: float = 20.0
    scenarios: Sequence[str] = ()
    seed: int = 0
    bootstrap_servers: str | None = None  # None: run the embedded broker
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


async def run_up(
    settings: Settings,
    options: UpOptions,
    stop: asyncio.Event,
    say: Callable[[str], None],
) -> None:
    """Run everything until ``stop`` is set or a part fails (ChildFailed)."""
    async with contextlib.AsyncExitStack() as stack:
        if options.bootstrap_servers is None:
            options.run_dir.mkdir(parents=True, exist_ok=True)
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
            from stream.model import load_model

            card = (await asyncio.to_thread(load_model, settings.model_dir)).card
        say(
            f"model      {card.model_version} in {settings.model_dir} "
            f"(hold-out R² {card.holdout.r2:.3f}, MAPE {card.holdout.mape:.3f})"
        )

        supervisor = Supervisor(options.run_dir, child_env(settings))
        stack.push_async_callback(supervisor.stop_all)
        metrics = f"http://{settings.metrics.host}:{settings.metrics.scorer_port}"
        await supervisor.start(
            "scorer",
            appraise_argv("score"),
            ready=lambda: _http_ready(f"{metrics}/readyz"),
            ready_timeout_s=SCORER_READY_TIMEOUT_S,
        )
        say(f"scorer     ready; metrics {metrics}/metrics, health {metrics}/readyz")
        stream_url = f"http://{settings.metrics.host}:{settings.metrics.stream_port}"
        await supervisor.start(
            "stream",
            appraise_argv("aggregate"),
            ready=lambda: _http_ready(f"{stream_url}/readyz"),
            ready_timeout_s=SCORER_READY_TIMEOUT_S,
        )
        say(f"stream app ready; metrics {stream_url}/metrics")

        produce = ["produce", "--loop", "--event-time", "live", "--rate", f"{options.rate:g}"]
        produce += ["--seed", str(options.seed)]
        for scenario in options.scenarios:
            produce += ["--scenario", scenario]
        await supervisor.start("producer", appraise_argv(*produce))
        say(f"producer   {options.rate:g} listings/s from the 2008-2010 hold-out stream, live time")
        say(f"logs       {options.run_dir}/")
        say("Ctrl-C stops everything.")

        failure = asyncio.ensure_future(supervisor.wait_for_failure())
        stopping = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait({failure, stopping}, return_when=asyncio.FIRST_COMPLETED)
        for task in (failure, stopping):
            if task not in done:
                task.cancel()
        if failure in done:
            failure.result()  # raises ChildFailed with the child's log tail
        say("stopping: producer, stream app, scorer, broker")


async def _http_ready(url: str, interval_s: float = 0.25) -> None:
    """Return once ``url`` answers 200; keep asking while it answers anything else or nothing."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(interval_s)


__all__ = ["ChildFailed", "UpOptions", "child_env", "run_up"]
