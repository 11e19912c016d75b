"""The parts ``appraise up`` runs as child processes: what each is, how it is started, how it
is known to be ready, and the settings every child is given."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from stream.aggregate.windows import window_specs
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
    """

    name: str
    argv: Sequence[str]
    ready_url: str | None
    said: str
    ready_timeout_s: float = 60.0
    urls: Mapping[str, str] = field(default_factory=dict)


def appraise_argv(*args: str) -> list[str]:
    """The ``appraise`` command line run by the current interpreter (works inside any venv)."""
    return [sys.executable, "-m", "stream", *args]


def service_parts(settings: Settings, profile: Profile, ready_timeout_s: float) -> list[Part]:
    """The scorer and the stream app, each ready when its ``/readyz`` answers 200."""
    metrics = settings.metrics
    scorer = f"http://{metrics.host}:{metrics.scorer_port}"
    aggregate = f"http://{metrics.host}:{metrics.aggregate_port}"
    windows = settings.aggregate
    kinds = ", ".join(spec.name for spec in window_specs(windows))
    return [
        Part(
            "scorer",
            appraise_argv("score"),
            f"{scorer}/readyz",
            f"scorer     ready; metrics {scorer}/metrics, health {scorer}/readyz",
            ready_timeout_s,
            {"scorer": f"{scorer}/metrics"},
        ),
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
