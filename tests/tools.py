"""Helpers of the ops tests: the repository's files, the real binaries, PromQL metric names."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import yaml

from stream.service.process import die_with_parent_fn

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = ROOT / "prometheus"
RULES_DIR = PROMETHEUS_DIR / "rules"
RULE_TESTS_DIR = PROMETHEUS_DIR / "tests"
DASHBOARDS_DIR = ROOT / "grafana" / "dashboards"
DATASOURCES_DIR = ROOT / "grafana" / "provisioning" / "datasources"
METRICS_DOC = ROOT / "docs" / "metrics.md"
RUNBOOK = ROOT / "RUNBOOK.md"
COMPOSE_FILE = ROOT / "docker-compose.yml"

T = TypeVar("T")

#: The settings of every port ``appraise up`` listens on, for :func:`appraise_up`.
UP_PORTS = [
    "BROKER__PORT",
    "METRICS__SCORER_PORT",
    "METRICS__AGGREGATE_PORT",
    "MONITORING__PROMETHEUS_PORT",
    "MONITORING__ALERTMANAGER_PORT",
    "MONITORING__WEBHOOK_PORT",
    "SERVE__PORT",
]


def run(*argv: str, cwd: Path = ROOT, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its output as text (never raises on a non-zero exit)."""
    return subprocess.run(
        list(argv), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def load_yaml(path: Path) -> Any:
    """A YAML file's content."""
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def rule_groups() -> list[dict[str, Any]]:
    """Every rule group of every file in prometheus/rules/."""
    groups: list[dict[str, Any]] = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        groups.extend(load_yaml(path)["groups"])
    return groups


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule."""
    return [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]


def recording_rules() -> list[dict[str, Any]]:
    """Every recording rule."""
    return [rule for group in rule_groups() for rule in group["rules"] if "record" in rule]


def dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard JSON in grafana/dashboards/, by file name."""
    import json

    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(DASHBOARDS_DIR.glob("*.json"))
    }


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel that is not a row, including those inside collapsed rows."""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


# --- PromQL -----------------------------------------------------------------------------------

_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "inf", "nan", "atan2",
}  # fmt: skip
# Strings and comments (``#`` to the end of the line, outside a string) select nothing.
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`|#[^\n]*')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE
)
_TEMPLATE_VARS = re.compile(r"\$\{?\w+\}?")
_IDENTIFIER = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)(\s*\()?")
_NUMBER_SUFFIX = re.compile(r"\b\d+(?:\.\d+)?(?:e[+-]?\d+)?[smhdwy]?\b", re.IGNORECASE)


def promql_series_names(expr: str) -> set[str]:
    """The metric and recorded-series names a PromQL expression selects (not functions,
    keywords, label names or strings)."""
    text = _STRINGS.sub(" ", expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _TEMPLATE_VARS.sub(" ", text)
    text = _NUMBER_SUFFIX.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def metric_family(name: str, histograms: set[str]) -> str:
    """The documented family of an exposed series name: ``x_bucket`` -> ``x`` for a histogram."""
    for suffix in _HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name.removesuffix(suffix) in histograms:
            return name.removesuffix(suffix)
    return name


_DOC_ROW = re.compile(
    r"^\|\s*`(?P<name>[A-Za-z_:][\w:]*)`\s*\|\s*(?P<type>\w+)\s*\|.*\|\s*(?P<status>\w+)\s*\|$"
)


def documented_metrics() -> dict[str, tuple[str, str]]:
    """docs/metrics.md's metrics: name -> (type, status)."""
    found: dict[str, tuple[str, str]] = {}
    for line in METRICS_DOC.read_text(encoding="utf-8").splitlines():
        match = _DOC_ROW.match(line.strip())
        if match:
            found[match["name"]] = (match["type"], match["status"])
    return found


def recorded_names() -> set[str]:
    """The names the recording rules define."""
    return {rule["record"] for rule in recording_rules()}


# --- processes and ports ----------------------------------------------------------------------


def post_alerts(url: str, alerts: list[dict[str, Any]]) -> None:
    """Post ``alerts`` (each with ``labels`` and maybe ``annotations``) to an Alertmanager's
    API, as started a minute ago."""
    starts = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    payload = [
        {"labels": a["labels"], "annotations": a.get("annotations", {}), "startsAt": starts}
        for a in alerts
    ]
    request = urllib.request.Request(  # noqa: S310 - the test's own server
        f"{url}/api/v2/alerts",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        assert response.status == 200


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    check: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.2,
    alive: Callable[[], str | None] = lambda: None,
) -> T:
    """Call ``check`` until it returns something other than None (or raise after ``timeout``
    seconds, or as soon as ``alive`` reports a dead process)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None:
            return result
        dead = alive()
        if dead is not None:
            raise AssertionError(f"while waiting for {what}: {dead}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes] | None:
    """Status and body of a GET, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - test URL
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()
    except (urllib.error.URLError, OSError):
        return None


@contextlib.contextmanager
def process(
    argv: list[str], log: Path, *, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` with its output in ``log``; terminate it (then kill) on exit."""
    with log.open("wb") as out:
        child = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
            preexec_fn=die_with_parent_fn(),  # a killed test run takes it with it
        )
        try:
            yield child
        finally:
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait(timeout=10)


def run_processes(markers: list[bytes]) -> list[tuple[int, bytes]]:
    """Processes (pid, command line) whose command line or environment carries one of
    ``markers``: what a run left behind."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            text = cmdline + (entry / "environ").read_bytes()
        except OSError:
            continue
        if any(marker in text for marker in markers):
            found.append((int(entry.name), cmdline))
    return found


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class UpRun:
    """An ``appraise up`` started by :func:`appraise_up`: its process, output and ports."""

    process: subprocess.Popen[bytes]
    log: Path
    ports: dict[str, int]

    @property
    def markers(self) -> list[bytes]:
        """What the environment of every process of the run carries (see :func:`run_processes`)."""
        return [f"APPRAISE_{name}={port}\0".encode() for name, port in self.ports.items()]

    def alive(self) -> str | None:
        """For :func:`wait_until`: the end of its output once it has exited."""
        return exited(self.process, self.log)()


@contextlib.contextmanager
def appraise_up(
    args: list[str],
    tmp_path: Path,
    model_dir: Path,
    ports: list[str],
    *,
    command: list[str] | None = None,
    cwd: Path = ROOT,
    env_extra: dict[str, str] | None = None,
) -> Iterator[UpRun]:
    """``appraise up ARGS`` on free ports (``ports``: setting names such as
    ``METRICS__SCORER_PORT``) with the model in ``model_dir``, once it has started every part;
    killed on exit if it is still running. ``command`` runs another ``appraise`` (default: this
    interpreter's ``python -m stream``), from ``cwd``."""
    chosen = {name: free_port() for name in ports}
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("APPRAISE_")}
    env |= {f"APPRAISE_{name}": str(port) for name, port in chosen.items()}
    env |= {"APPRAISE_MODEL_DIR": str(model_dir), **(env_extra or {})}
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        child = subprocess.Popen(
            [*(command or [sys.executable, "-m", "stream"]), "up", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            preexec_fn=die_with_parent_fn(),  # a killed test run takes it (and its parts) with it
        )
    run = UpRun(child, log, chosen)
    try:
        wait_until(
            lambda: True if b"Ctrl-C stops everything" in log.read_bytes() else None,
            timeout=120,
            what="appraise up to start every part",
            alive=run.alive,
        )
        yield run
    finally:
        # A test that failed half-way: stop it as a person would, then kill what is left (its
        # children run in their own sessions and would outlive a killed ``up``).
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        for pid, _ in run_processes(run.markers):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def exited(child: subprocess.Popen[bytes], log: Path) -> Callable[[], str | None]:
    """For :func:`wait_until`: the log tail once ``child`` has exited."""

    def check() -> str | None:
        if child.poll() is None:
            return None
        tail = log.read_text(errors="replace").splitlines()[-30:]
        return f"{child.args!r} exited with {child.returncode}:\n" + "\n".join(tail)

    return check
