"""One runtime for every service: ``appraise score`` and ``appraise aggregate`` start, drain to a
deadline on SIGTERM (and SIGHUP), exit at once on a second signal, and share their exit codes;
``run_service`` itself, in process, with a worker of the test's own."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Final

import pytest
from prometheus_client import CollectorRegistry

from stream.service.runtime import (
    BROKER_EXIT,
    CLEAN_EXIT,
    CONFIG_EXIT,
    DEADLINE_EXIT,
    FORCED_EXIT,
    Endpoint,
    Worker,
    run_service,
)
from stream.settings import (
    AggregateSettings,
    KafkaSettings,
    MetricsSettings,
    ServiceSettings,
    Settings,
    TopicSettings,
    settings_env,
)
from tests.conftest import TopicFactory
from tests.http import http_get
from tests.needs import until
from tests.processes import AppraiseProcess, appraise_process

pytestmark = pytest.mark.timeout(120)

COMMANDS: Final = ("score", "aggregate")


async def _settings(
    kafka: KafkaSettings, new_topic: TopicFactory, model_dir: Path, **service: float
) -> Settings:
    topics = TopicSettings(
        **{name: await new_topic() for name in ("listings", "predictions", "dlq", "sales")},
        panes=await new_topic(),
        windows=await new_topic(),
    )
    return Settings(
        kafka=kafka,
        topics=topics,
        metrics=MetricsSettings(scorer_port=0, aggregate_port=0),
        service=ServiceSettings(**service),
        aggregate=AggregateSettings(app_id=f"runtime-{topics.listings}"),
        model_dir=model_dir,
    )


async def _ready(child: AppraiseProcess) -> None:
    """Until the service's /readyz answers 200 (its worker started)."""
    line = await child.wait_for_line("metrics and health on ", 60)
    url = line.split("metrics and health on ")[1].split()[0]

    async def ready() -> bool:
        status, _ = await http_get(f"{url}/readyz")
        return status == 200

    for _ in range(1200):
        if await ready():
            return
        assert child.process.returncode is None, "".join(child.lines)
        await asyncio.sleep(0.05)
    raise AssertionError("not ready within 60 s:\n" + "".join(child.lines))


@pytest.mark.parametrize(
    ("command", "sig"),
    [
        ("score", signal.SIGTERM),
        ("aggregate", signal.SIGTERM),
        ("score", signal.SIGHUP),  # the terminal that ran it was closed
    ],
    ids=["score-SIGTERM", "aggregate-SIGTERM", "score-SIGHUP"],
)
async def test_a_signal_drains_and_exits_0(
    command: str,
    sig: signal.Signals,
    kafka_settings: KafkaSettings,
    new_topic: TopicFactory,
    model_dir: Path,
) -> None:
    settings = await _settings(kafka_settings, new_topic, model_dir)
    async with appraise_process([command], settings_env(settings)) as child:
        await _ready(child)
        child.signal(sig)
        code = await child.wait(settings.service.drain_deadline_s + 10)
    log = "".join(child.lines)
    assert code == CLEAN_EXIT, log
    assert f"{sig.name}, draining" in log
    assert "drained in" in log


@pytest.mark.parametrize("command", COMMANDS)
async def test_a_second_signal_exits_at_once(
    command: str, kafka_settings: KafkaSettings, new_topic: TopicFactory, model_dir: Path
) -> None:
    settings = await _settings(kafka_settings, new_topic, model_dir)
    async with appraise_process([command], settings_env(settings)) as child:
        await _ready(child)
        child.signal(signal.SIGTERM)
        child.signal(signal.SIGINT)
        code = await child.wait(10)
    log = "".join(child.lines)
    assert code == FORCED_EXIT, log
    # Pending signals arrive lowest number first, so either may count as the second.
    assert re.search(r"second SIG(INT|TERM), exiting now", log), log


@pytest.mark.parametrize("command", COMMANDS)
async def test_past_the_drain_deadline_it_exits_1(
    command: str, kafka_settings: KafkaSettings, new_topic: TopicFactory, model_dir: Path
) -> None:
    # No drain (leaving the consumer group alone) finishes within a millisecond.
    settings = await _settings(kafka_settings, new_topic, model_dir, drain_deadline_s=0.001)
    async with appraise_process([command], settings_env(settings)) as child:
        await _ready(child)
        child.signal(signal.SIGTERM)
        code = await child.wait(10)
    log = "".join(child.lines)
    assert code == DEADLINE_EXIT, log
    assert "the drain did not finish within 0.001 s" in log


@pytest.mark.parametrize("command", COMMANDS)
async def test_a_missing_model_is_exit_code_2_without_a_traceback(
    command: str, tmp_path: Path
) -> None:
    settings = Settings(model_dir=tmp_path / "no-model", metrics=MetricsSettings(scorer_port=0))
    async with appraise_process([command], settings_env(settings)) as child:
        code = await child.wait(60)
    log = "".join(child.lines)
    assert code == CONFIG_EXIT, log
    assert f"model directory {tmp_path / 'no-model'} does not exist" in log
    assert "Traceback" not in log


@pytest.mark.parametrize("command", COMMANDS)
async def test_no_broker_is_exit_code_3(command: str, model_dir: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        servers = f"127.0.0.1:{sock.getsockname()[1]}"
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=servers),
        metrics=MetricsSettings(scorer_port=0, aggregate_port=0),
        service=ServiceSettings(broker_wait_s=0.5),
        model_dir=model_dir,
    )
    async with appraise_process([command], settings_env(settings)) as child:
        code = await child.wait(60)
    log = "".join(child.lines)
    assert code == BROKER_EXIT, log
    assert f"no Kafka broker answered at {servers} within 0.5 s" in log
    assert "Traceback" not in log


# --- run_service in process ----------------------------------------------------------------


class _Worker:
    """A worker that counts what the runtime asks of it; ``obeys``: whether it stops when asked."""

    def __init__(self, *, obeys: bool) -> None:
        self.obeys = obeys
        self.calls: list[str] = []
        self._stop = asyncio.Event()

    @property
    def ready(self) -> Mapping[str, bool]:
        return {"working": "start" in self.calls}

    async def start(self) -> None:
        self.calls.append("start")

    async def stop(self) -> None:
        self.calls.append("stop")

    async def run(self) -> None:
        self.calls.append("run")
        if self.obeys:
            await self._stop.wait()
        else:
            await asyncio.Event().wait()  # ignores request_stop: only a deadline ends it

    def request_stop(self) -> None:
        self.calls.append("request_stop")
        self._stop.set()


class _Service:
    name = "toy"

    def __init__(self, worker: _Worker) -> None:
        self.port = 0
        self.registry = CollectorRegistry()
        self._worker = worker

    def prepared(self) -> AbstractAsyncContextManager[None]:
        @asynccontextmanager
        async def nothing() -> AsyncIterator[None]:
            yield

        return nothing()

    def not_ready(self) -> Mapping[str, bool]:
        return {"working": False}

    def worker(self) -> Worker:
        return self._worker


async def test_a_stop_drains_the_worker_and_returns_0(
    kafka_settings: KafkaSettings, new_topic: TopicFactory, model_dir: Path
) -> None:
    settings = await _settings(kafka_settings, new_topic, model_dir)
    worker, stop = _Worker(obeys=True), asyncio.Event()
    ready: list[int] = []

    def on_ready(server: Endpoint, _: Worker) -> None:
        ready.append(int(server.url.rsplit(":", 1)[1]))

    running = asyncio.ensure_future(
        run_service(_Service(worker), settings, stop=stop, handle_signals=False, on_ready=on_ready)
    )
    await until(lambda: bool(ready), 30, "the worker started")
    status, body = await http_get(f"http://127.0.0.1:{ready[0]}/readyz")
    assert (status, body) == (200, b'{"ready":true,"working":true}\n')
    stop.set()
    assert await running == CLEAN_EXIT
    assert worker.calls == ["start", "run", "request_stop", "stop"]


async def test_a_worker_that_does_not_drain_is_cut_off_at_the_deadline(
    kafka_settings: KafkaSettings, new_topic: TopicFactory, model_dir: Path
) -> None:
    settings = await _settings(kafka_settings, new_topic, model_dir, drain_deadline_s=0.2)
    worker, stop = _Worker(obeys=False), asyncio.Event()
    running = asyncio.ensure_future(
        run_service(_Service(worker), settings, stop=stop, handle_signals=False)
    )
    await until(lambda: "run" in worker.calls, 30, "the worker running")
    stop.set()
    assert await running == DEADLINE_EXIT
    assert worker.calls[-1] == "stop"  # stopped all the same, once cancelled


async def test_a_stop_before_the_broker_answers_returns_at_once(model_dir: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        servers = f"127.0.0.1:{sock.getsockname()[1]}"
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=servers),
        metrics=MetricsSettings(scorer_port=0),
        service=ServiceSettings(broker_wait_s=600),
        model_dir=model_dir,
    )
    worker, stop = _Worker(obeys=True), asyncio.Event()
    running = asyncio.ensure_future(
        run_service(_Service(worker), settings, stop=stop, handle_signals=False)
    )
    stop.set()  # while it prepares or waits for the broker: nothing to drain
    assert await asyncio.wait_for(running, 5) == CLEAN_EXIT
    assert worker.calls == []  # never started
