"""The parts ``appraise up`` runs as child processes: what each is, how it is started, how it
is known to be ready, and the settings every child is given."""

from __future__ import annotations

import shutil
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from stream.aggregate.windows import window_specs
from stream.errors import ConfigError
from stream.ops.profiles import Profile
from stream.settings import Settings

#: The webhook receiver's record of every notification, in the run directory.
ALERTS_FILE: Final = "alerts.jsonl"
#: What to install where a binary is missing (the Debian packages ``make demo`` installs).
INSTALL_HINT: Final = (
    "install Debian's packages: sudo apt-get install prometheus prometheus-alertmanager "
    "(or set APPRAISE_MONITORING__PROMETHEUS_BIN / __ALERTMANAGER_BIN to the binaries)"
)

#: ``say(line)``: how ``up`` tells a person what it did.
Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Part:
    """One child process of a run.

    Attributes:
        name: the part's name: its log file (``<name>.log``) and how errors name it.
        argv: its command line.
        ready_url: polled until it answers 200 (None: ready once started).
        said: the line printed once it is ready.
        ready_timeout_s: how long it may take to be ready.
        urls: label -> URL, shown by the live view.
        env: ``APPRAISE_*`` settings of this part alone, over the run's (a scorer's port).
        metrics: where the part is scraped (``host:port``), for a scorer: the live view and
            Prometheus's file_sd file read every scorer's.
    """

    name: str
    argv: Sequence[str]
    ready_url: str | None
    said: str
    ready_timeout_s: float = 60.0
    urls: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    metrics: str | None = None


def appraise_argv(*args: str) -> list[str]:
    """The ``appraise`` command line run by the current interpreter (works inside any venv)."""
    return [sys.executable, "-m", "stream", *args]


def scorer_name(index: int) -> str:
    """The part name of the ``index``-th scorer (from 1): ``scorer``, ``scorer-2``, ..."""
    return "scorer" if index == 1 else f"scorer-{index}"


def check_scorers(settings: Settings, count: int) -> None:
    """ConfigError unless 1 <= ``count`` <= the partitions of the topics (more would idle)."""
    partitions = settings.topics.partitions
    if not 1 <= count <= partitions:
        raise ConfigError(
            f"--scorers {count}: between 1 and the listings topic's partitions, "
            f"APPRAISE_TOPICS__PARTITIONS={partitions} (a scorer beyond that gets no partition); "
            "raise APPRAISE_TOPICS__PARTITIONS or run fewer scorers"
        )


def scorer_ports(settings: Settings, count: int) -> list[int]:
    """The metrics ports of ``count`` scorers: ``metrics.scorer_port`` and, after it, the next
    ports free now and not set for another part; or, when it is 0, free ports."""
    check_scorers(settings, count)
    metrics, monitoring = settings.metrics, settings.monitoring
    taken = {metrics.aggregate_port, metrics.history_port, settings.serve.port}
    taken |= {settings.broker.port, monitoring.prometheus_port, monitoring.alertmanager_port}
    taken |= {monitoring.webhook_port}
    if metrics.scorer_port == 0:
        return [_free_port(metrics.host) for _ in range(count)]
    ports, port = [metrics.scorer_port], metrics.scorer_port
    while len(ports) < count:
        port += 1
        if port > 65_535:
            raise ConfigError(
                f"no {count} free ports from APPRAISE_METRICS__SCORER_PORT={metrics.scorer_port}"
            )
        if port not in taken and _is_free(metrics.host, port):
            ports.append(port)
    return ports


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _is_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


def scorer_parts(settings: Settings, count: int, ready_timeout_s: float) -> list[Part]:
    """``count`` scorers in one consumer group, each on its own metrics port (passed in its
    environment), each ready when its ``/readyz`` answers 200 (partitions held, or idle)."""
    host = settings.metrics.host
    parts = []
    for index, port in enumerate(scorer_ports(settings, count), start=1):
        name, url = scorer_name(index), f"http://{host}:{port}"
        parts.append(
            Part(
                name,
                appraise_argv("score"),
                f"{url}/readyz",
                f"{name:<10} ready; metrics {url}/metrics, health {url}/readyz"
                + (f" (group {settings.scorer.group_id})" if count > 1 else ""),
                ready_timeout_s,
                {name: f"{url}/metrics"},
                env={"APPRAISE_METRICS__SCORER_PORT": str(port)},
                metrics=f"{host}:{port}",
            )
        )
    return parts


def service_parts(
    settings: Settings, profile: Profile, ready_timeout_s: float, scorers: int = 1
) -> list[Part]:
    """The scorers and the stream app, each ready when its ``/readyz`` answers 200."""
    metrics = settings.metrics
    aggregate = f"http://{metrics.host}:{metrics.aggregate_port}"
    windows = settings.aggregate
    kinds = ", ".join(spec.name for spec in window_specs(windows))
    return [
        *scorer_parts(settings, scorers, ready_timeout_s),
        Part(
            "aggregate",
            appraise_argv("aggregate"),
            f"{aggregate}/readyz",
            f"aggregate  ready; metrics {aggregate}/metrics; windows {kinds} "
            f"(profile {profile.name})",
            ready_timeout_s,
            {"aggregate": f"{aggregate}/metrics"},
        ),
    ]


def history_part(settings: Settings, ready_timeout_s: float) -> Part:
    """The history sink, ready when its ``/readyz`` answers 200 (database connected, schema
    current)."""
    metrics = settings.metrics
    url = f"http://{metrics.host}:{metrics.history_port}"
    return Part(
        "history",
        appraise_argv("history"),
        f"{url}/readyz",
        f"history    ready; windows into {settings.history.where()}; metrics {url}/metrics",
        ready_timeout_s,
        {"history": f"{url}/metrics"},
    )


def monitoring_binaries(settings: Settings, *, missing: bool = False) -> dict[str, str]:
    """Prometheus's and Alertmanager's binaries: what -> path of those found, or with
    ``missing``, what -> the configured name of those not found."""
    wanted = {
        "Prometheus": settings.monitoring.prometheus_bin,
        "Alertmanager": settings.monitoring.alertmanager_bin,
    }
    found = {what: find_binary(name) for what, name in wanted.items()}
    if missing:
        return {what: wanted[what] for what, path in found.items() if path is None}
    return {what: path for what, path in found.items() if path is not None}


def find_binary(name: str) -> str | None:
    """The path of ``name`` (a path, or a command on PATH), or None where there is none."""
    if "/" in name:
        path = Path(name)
        return str(path) if path.is_file() else None
    return shutil.which(name)
