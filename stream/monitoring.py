"""Prometheus and Alertmanager for a run on one machine, configured from the compose stack's files.

The compose stack and ``appraise up`` share one ``prometheus/prometheus.yml``, one set of rules
and one ``alertmanager.yml``; only the targets, the webhook address and (in the demo profile) the
time scales differ. The functions here are pure, text in and text out, so the tests check the
exact files ``appraise up`` runs; :func:`write_configs` writes them into a run directory.

Profiles: ``default`` keeps every duration of the rules and Alertmanager as written. ``demo``
shortens the stream app's windows, scrapes and evaluates every second, divides every duration in
the rules (``for:`` and range selectors) by 10 and makes Alertmanager's group timers seconds, so
a drift scenario becomes a notification within about a minute on a laptop. The alert texts keep
their production wording ("for 5 minutes"); the generated rule file says it was scaled.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from stream.errors import ConfigError

#: The repository's monitoring configs (the compose stack mounts the same directory).
CONFIG_DIR: Final = Path(__file__).resolve().parents[1] / "prometheus"

#: What to install where a binary is missing (the Debian packages ``make demo`` installs).
INSTALL_HINT: Final = (
    "install Debian's packages: sudo apt-get install prometheus prometheus-alertmanager "
    "(or set APPRAISE_MONITORING__PROMETHEUS_BIN / __ALERTMANAGER_BIN to the binaries)"
)


@dataclass(frozen=True, slots=True)
class Profile:
    """Time scales of a run: the stream app's windows and the monitoring's timers."""

    name: str
    description: str
    #: Settings this profile sets unless the environment sets them: section -> field -> value.
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Every duration in the rules is divided by this (1: as written).
    rules_time_divisor: int = 1
    #: Prometheus scrape and evaluation interval; None keeps prometheus.yml's.
    scrape_interval: str | None = None
    #: Alertmanager timers on every route that sets one; None keeps alertmanager.yml's.
    group_wait: str | None = None
    group_interval: str | None = None
    repeat_interval: str | None = None
    #: The producer's rate when ``--rate`` is not given.
    rate: float = 20.0
    #: Each listing's sale follows it after this many seconds (realised error needs labels).
    sale_delay_s: float = 30.0


PROFILES: Final[Mapping[str, Profile]] = {
    "default": Profile(
        "default",
        "production time scales: 1 min and 5 min windows, alerts after minutes",
    ),
    "demo": Profile(
        "demo",
        "laptop time scales: 10 s and 30 s windows, rule durations / 10, notifications within "
        "about a minute of a drift",
        settings={
            "scorer": {"pane_seconds": 2.0, "pane_publish_interval_s": 1.0},
            "aggregate": {
                "tumbling_seconds": 10.0,
                "hopping_seconds": 30.0,
                "hop_seconds": 10.0,
                "allowed_lateness_seconds": 2.0,
                # Under about 400 events a window's neighbourhood PSI is noise above 0.25 (the
                # hold-out stream at 200 events reaches 0.34): no drift value rather than a
                # false alert.
                "min_events": 400,
            },
        },
        rules_time_divisor=10,
        scrape_interval="1s",
        group_wait="2s",
        group_interval="5s",
        repeat_interval="1h",
        rate=50.0,
        sale_delay_s=5.0,
    ),
}


def profile_named(name: str) -> Profile:
    """The profile called ``name``, or a ConfigError listing the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(
            f"unknown profile {name!r}: expected one of {', '.join(PROFILES)}"
        ) from None


# --- durations --------------------------------------------------------------------------------

_UNITS: Final = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_RANGE = re.compile(r"\[((?:\d+(?:ms|s|m|h|d|w))+)\]")
#: Durations scale_rules does not handle: ``offset 5m``, subqueries ``[5m:1m]``.
_UNSCALED = re.compile(r"\boffset\s+-?\d|\[[^\]]*:[^\]]*\]")


def parse_duration(text: str) -> float:
    """A Prometheus duration (``1h30m``, ``5m``, ``250ms``) in seconds."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(int(n) * _UNITS[u] for n, u in parts)


def format_duration(seconds: float) -> str:
    """Seconds as a Prometheus duration, in whole seconds where it can (``30s``, ``1500ms``)."""
    millis = round(seconds * 1000)
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def scale_rules(text: str, divisor: int) -> str:
    """A rule file with every ``for:`` and every range selector divided by ``divisor``.

    Recorded series keep their names (``...:rate5m`` then covers 30 s at divisor 10): the
    alerts and dashboards select them by name.
    """
    if divisor == 1:
        return text
    config: dict[str, Any] = yaml.safe_load(text)

    def shorter(duration: str) -> str:
        return format_duration(parse_duration(duration) / divisor)

    for group in config["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert") or rule.get("record")
            if "keep_firing_for" in rule or _UNSCALED.search(str(rule["expr"])):
                raise ValueError(
                    f"rule {name}: keep_firing_for, offset and subqueries are not scaled; "
                    "extend stream/monitoring.py:scale_rules before using them"
                )
            if "for" in rule:
                rule["for"] = shorter(str(rule["for"]))
            rule["expr"] = _RANGE.sub(lambda m: f"[{shorter(m.group(1))}]", str(rule["expr"]))
    header = f"# Generated by appraise: {len(config['groups'])} groups, durations / {divisor}.\n"
    return header + yaml.safe_dump(config, sort_keys=False, width=100)


# --- configs ----------------------------------------------------------------------------------


def embedded_prometheus_config(
    text: str,
    targets: Mapping[str, Sequence[str]],
    *,
    alertmanagers: Sequence[str] = (),
    rules_dir: Path | None = None,
    scrape_interval: str | None = None,
) -> str:
    """``prometheus.yml`` with each job's static targets replaced.

    Args:
        text: the compose stack's prometheus.yml.
        targets: job name -> ``host:port`` targets; every job of ``text`` must be named (a run
            without a part passes an empty list, which drops that job).
        alertmanagers: ``host:port`` of the Alertmanagers; none drops the alerting section.
        rules_dir: absolute directory of the rule files (the generated config lives elsewhere
            than prometheus/, and relative rule_files resolve against it).
        scrape_interval: e.g. ``"1s"``; the evaluation interval follows it.

    Raises ValueError naming a job that ``targets`` leaves out or that ``text`` lacks.
    """
    config: dict[str, Any] = yaml.safe_load(text)
    jobs = [job["job_name"] for job in config["scrape_configs"]]
    unknown = sorted(set(targets) - set(jobs))
    missing = sorted(set(jobs) - set(targets))
    if unknown or missing:
        raise ValueError(
            f"targets must name exactly the jobs of prometheus.yml {jobs}: "
            f"missing {missing}, unknown {unknown}"
        )
    scrape_configs = []
    for job in config["scrape_configs"]:
        chosen = list(targets[job["job_name"]])
        if chosen:
            scrape_configs.append({**job, "static_configs": [{"targets": chosen}]})
    config["scrape_configs"] = scrape_configs
    if alertmanagers:
        config["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]
        }
    else:
        config.pop("alerting", None)
    if rules_dir is not None:
        config["rule_files"] = [
            str(rules_dir / Path(pattern).name) for pattern in config.get("rule_files", [])
        ]
    if scrape_interval is not None:
        config["global"] = {
            **config.get("global", {}),
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_interval,
            "evaluation_interval": scrape_interval,
        }
    return yaml.safe_dump(config, sort_keys=False)


def alertmanager_config(
    text: str,
    webhook_base: str,
    *,
    group_wait: str | None = None,
    group_interval: str | None = None,
    repeat_interval: str | None = None,
) -> str:
    """``alertmanager.yml`` with every webhook URL moved to ``webhook_base`` (keeping its path)
    and, for the demo profile and tests, other grouping timers.

    Args:
        text: the compose stack's alertmanager.yml.
        webhook_base: e.g. ``http://127.0.0.1:9095``.
        group_wait: e.g. ``"1s"``; applied to the root and every child that sets one.
        group_interval: likewise.
        repeat_interval: likewise.
    """
    config: dict[str, Any] = yaml.safe_load(text)
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            path = webhook["url"].split("://", 1)[1].partition("/")[2]
            webhook["url"] = f"{webhook_base.rstrip('/')}/{path}"
    timers = {
        "group_wait": group_wait,
        "group_interval": group_interval,
        "repeat_interval": repeat_interval,
    }

    def shorten(route: dict[str, Any], is_root: bool) -> None:
        for key, value in timers.items():
            if value is not None and (is_root or key in route):
                route[key] = value
        for child in route.get("routes", []):
            shorten(child, is_root=False)

    shorten(config["route"], is_root=True)
    return yaml.safe_dump(config, sort_keys=False)


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the parts of a run listen (``host:port``)."""

    scorer: str
    stream: str
    prometheus: str
    alertmanager: str
    webhook: str


@dataclass(frozen=True, slots=True)
class ConfigFiles:
    """The files :func:`write_configs` wrote."""

    prometheus: Path
    alertmanager: Path
    rules_dir: Path


def write_configs(
    out_dir: Path, endpoints: Endpoints, profile: Profile, source: Path = CONFIG_DIR
) -> ConfigFiles:
    """Write prometheus.yml, alertmanager.yml and the rules of ``profile`` into ``out_dir``."""
    rules_dir = out_dir / "rules"
    rules_dir.mkdir(parents=True, exist_ok=True)
    for path in sorted((source / "rules").glob("*.yml")):
        scaled = scale_rules(path.read_text(encoding="utf-8"), profile.rules_time_divisor)
        (rules_dir / path.name).write_text(scaled, encoding="utf-8")
    prometheus = out_dir / "prometheus.yml"
    prometheus.write_text(
        embedded_prometheus_config(
            (source / "prometheus.yml").read_text(encoding="utf-8"),
            {
                "appraise-scorer": [endpoints.scorer],
                "appraise-stream": [endpoints.stream],
                "prometheus": [endpoints.prometheus],
                "alertmanager": [endpoints.alertmanager],
            },
            alertmanagers=[endpoints.alertmanager],
            rules_dir=rules_dir.resolve(),
            scrape_interval=profile.scrape_interval,
        ),
        encoding="utf-8",
    )
    alertmanager = out_dir / "alertmanager.yml"
    alertmanager.write_text(
        alertmanager_config(
            (source / "alertmanager.yml").read_text(encoding="utf-8"),
            f"http://{endpoints.webhook}",
            group_wait=profile.group_wait,
            group_interval=profile.group_interval,
            repeat_interval=profile.repeat_interval,
        ),
        encoding="utf-8",
    )
    return ConfigFiles(prometheus=prometheus, alertmanager=alertmanager, rules_dir=rules_dir)


# --- binaries ---------------------------------------------------------------------------------


def find_binary(name: str) -> str | None:
    """The path of ``name`` (a path, or a command on PATH), or None where there is none."""
    if "/" in name:
        path = Path(name)
        return str(path) if path.is_file() else None
    return shutil.which(name)


def prometheus_argv(binary: str, config: Path, data_dir: Path, listen: str) -> list[str]:
    """The Prometheus command line of a run (its TSDB in the run directory)."""
    return [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={data_dir}",
        f"--web.listen-address={listen}",
        "--storage.tsdb.retention.time=1d",
    ]


def alertmanager_argv(binary: str, config: Path, data_dir: Path, listen: str) -> list[str]:
    """The Alertmanager command line of a run: one node, no cluster port."""
    return [
        binary,
        f"--config.file={config}",
        f"--storage.path={data_dir}",
        f"--web.listen-address={listen}",
        "--cluster.listen-address=",
    ]
