"""Prometheus and Alertmanager for a run on one machine, configured from the compose stack's files.

The compose stack and ``appraise up`` share one ``prometheus/prometheus.yml``, one set of rules
and one ``alertmanager.yml``; only the targets, the webhook address, the runbook links and (in
the demo profile) the time scales differ. The functions here are pure, text in and text out, so
the tests check the exact files ``appraise up`` runs; :func:`write_configs` writes them into a
run directory.

The files are installed with appraise (``stream/ops/monitoring`` is the repository's
``prometheus/``, shipped as package data, and ``RUNBOOK.md`` beside it), so ``appraise up`` works
from a wheel or an image too; ``APPRAISE_MONITORING__CONFIG_DIR`` names another copy. The alert
texts keep their production wording ("for 5 minutes"); a scaled rule file says it was scaled.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final

import yaml

from stream.errors import ConfigError
from stream.ops.profiles import Profile

#: Where ``prometheus/`` and ``RUNBOOK.md`` are installed with the package (the repository's own
#: files in a checkout; package data in a wheel).
_BUNDLED: Final = resources.files("stream.ops")
#: The runbook link of every alert in the repository's rules: ``RUNBOOK.md#<alert, lower case>``.
_RUNBOOK_FILE: Final = "RUNBOOK.md"


def config_dir(chosen: Path | None = None) -> Path:
    """The directory of prometheus.yml, alertmanager.yml and rules/: ``chosen`` (setting
    ``monitoring.config_dir``) or the copy installed with appraise."""
    found = chosen if chosen is not None else Path(str(_BUNDLED.joinpath("monitoring")))
    if not (found / "prometheus.yml").is_file():
        raise ConfigError(
            f"{found} holds no prometheus.yml: set APPRAISE_MONITORING__CONFIG_DIR to a copy of "
            "the repository's prometheus/ directory"
        )
    return found


def runbook_base(url: str) -> str:
    """The base of every alert's runbook link: the setting ``monitoring.runbook_url``, or the
    installed RUNBOOK.md as a ``file://`` URL."""
    if url:
        return url
    return Path(str(_BUNDLED.joinpath(_RUNBOOK_FILE))).resolve().as_uri()


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


def rules_for(text: str, divisor: int = 1, runbook: str | None = None) -> str:
    """A rule file with every ``for:`` and range selector divided by ``divisor`` and, if
    ``runbook`` is given, every ``runbook_url: RUNBOOK.md#section`` pointing at
    ``<runbook>#section`` instead (a relative link works in no notification).

    Recorded series keep their names (``...:rate5m`` then covers 30 s at divisor 10): the
    alerts and dashboards select them by name. The text comes back unchanged when there is
    nothing to change.
    """
    if divisor == 1 and runbook is None:
        return text
    config: dict[str, Any] = yaml.safe_load(text)

    def shorter(duration: str) -> str:
        return format_duration(parse_duration(duration) / divisor)

    for group in config["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert") or rule.get("record")
            if divisor != 1:
                if "keep_firing_for" in rule or _UNSCALED.search(str(rule["expr"])):
                    raise ValueError(
                        f"rule {name}: keep_firing_for, offset and subqueries are not scaled; "
                        "extend stream/ops/configs.py:rules_for before using them"
                    )
                if "for" in rule:
                    rule["for"] = shorter(str(rule["for"]))
                expr = str(rule["expr"])
                rule["expr"] = _RANGE.sub(lambda m: f"[{shorter(m.group(1))}]", expr)
            link = rule.get("annotations", {}).get("runbook_url", "")
            if runbook is not None and link.startswith(_RUNBOOK_FILE + "#"):
                rule["annotations"]["runbook_url"] = runbook + link.removeprefix(_RUNBOOK_FILE)
    scaled = f", durations / {divisor}" if divisor != 1 else ""
    header = f"# Generated by appraise: {len(config['groups'])} groups{scaled}.\n"
    return header + yaml.safe_dump(config, sort_keys=False, width=100)


# --- configs ----------------------------------------------------------------------------------


#: How a job of prometheus.yml finds its targets; the embedded run replaces every one.
_DISCOVERY: Final = ("static_configs", "dns_sd_configs", "file_sd_configs")
#: The file_sd target file of the scorers of a run, beside its prometheus.yml.
SCORERS_FILE: Final = "scorers.json"


def file_sd_targets(instances: Mapping[str, str]) -> str:
    """A Prometheus file_sd target file (JSON): one group per scorer, ``name -> host:port``,
    each labelled ``part="<name>"`` (``instance`` stays the address, as in the compose stack)."""
    groups = [{"targets": [where], "labels": {"part": name}} for name, where in instances.items()]
    return json.dumps(groups, indent=2) + "\n"


def embedded_prometheus_config(
    text: str,
    targets: Mapping[str, Sequence[str]],
    *,
    alertmanagers: Sequence[str] = (),
    rules_dir: Path | None = None,
    scrape_interval: str | None = None,
    discovered: Mapping[str, Path] | None = None,
) -> str:
    """``prometheus.yml`` with each job's targets replaced (its static or DNS discovery gone).

    Args:
        text: the compose stack's prometheus.yml.
        targets: job name -> ``host:port`` targets; every job of ``text`` must be named here or
            in ``discovered`` (a run without a part passes an empty list, which drops that job).
        alertmanagers: ``host:port`` of the Alertmanagers; none drops the alerting section.
        rules_dir: absolute directory of the rule files (the generated config lives elsewhere
            than prometheus/, and relative rule_files resolve against it).
        scrape_interval: e.g. ``"1s"``; the evaluation interval follows it.
        discovered: job name -> a file_sd target file (:func:`file_sd_targets`) the job reads
            its targets from, re-read whenever it changes.

    Raises ValueError naming a job that ``targets`` leaves out or that ``text`` lacks.
    """
    config: dict[str, Any] = yaml.safe_load(text)
    discovered = dict(discovered or {})
    jobs = [job["job_name"] for job in config["scrape_configs"]]
    named = set(targets) | set(discovered)
    unknown = sorted(named - set(jobs))
    missing = sorted(set(jobs) - named)
    if unknown or missing:
        raise ValueError(
            f"targets must name exactly the jobs of prometheus.yml {jobs}: "
            f"missing {missing}, unknown {unknown}"
        )
    scrape_configs = []
    for job in config["scrape_configs"]:
        name = job["job_name"]
        kept = {key: value for key, value in job.items() if key not in _DISCOVERY}
        if name in discovered:
            scrape_configs.append({**kept, "file_sd_configs": [{"files": [str(discovered[name])]}]})
            continue
        chosen = list(targets[name])
        if chosen:
            scrape_configs.append({**kept, "static_configs": [{"targets": chosen}]})
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
    aggregate: str
    prometheus: str
    alertmanager: str
    webhook: str
    #: Every scorer of the run, part name -> ``host:port``: when given, job appraise-scorer
    #: discovers them from a file_sd file (:data:`SCORERS_FILE`) and ``scorer`` is not used.
    scorers: Mapping[str, str] | None = None
    #: The HTTP price service (job ``appraise-api``), when the run has one.
    api: str | None = None
    #: The history sink (job ``appraise-history``), when the run has one.
    history: str | None = None


@dataclass(frozen=True, slots=True)
class ConfigFiles:
    """The files :func:`write_configs` wrote."""

    prometheus: Path
    alertmanager: Path
    rules_dir: Path
    scorers: Path | None = None  # the file_sd target file of the scorers, when written


def write_configs(
    out_dir: Path,
    endpoints: Endpoints,
    profile: Profile,
    *,
    source: Path | None = None,
    runbook_url: str = "",
) -> ConfigFiles:
    """Write prometheus.yml, alertmanager.yml and the rules of ``profile`` into ``out_dir``.

    Args:
        out_dir: the run's config directory.
        endpoints: where every part listens.
        profile: the run's time scales.
        source: the directory to read (default: :func:`config_dir`).
        runbook_url: the setting ``monitoring.runbook_url`` (see :func:`runbook_base`).
    """
    source = config_dir(source)
    rules_dir = _write_rules(source, out_dir, profile, runbook_url)
    scorers = None
    if endpoints.scorers is not None:
        scorers = out_dir / SCORERS_FILE
        scorers.write_text(file_sd_targets(endpoints.scorers), encoding="utf-8")
    prometheus = out_dir / "prometheus.yml"
    prometheus.write_text(
        embedded_prometheus_config(
            (source / "prometheus.yml").read_text(encoding="utf-8"),
            {
                **({} if scorers else {"appraise-scorer": [endpoints.scorer]}),
                "appraise-aggregate": [endpoints.aggregate],
                "appraise-api": [endpoints.api] if endpoints.api else [],
                "appraise-history": [endpoints.history] if endpoints.history else [],
                "prometheus": [endpoints.prometheus],
                "alertmanager": [endpoints.alertmanager],
            },
            alertmanagers=[endpoints.alertmanager],
            rules_dir=rules_dir.resolve(),
            scrape_interval=profile.scrape_interval,
            discovered={"appraise-scorer": scorers.resolve()} if scorers else None,
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
    return ConfigFiles(prometheus, alertmanager, rules_dir, scorers)


def write_stack_configs(
    out_dir: Path, profile: Profile, *, source: Path | None = None, runbook_url: str = ""
) -> ConfigFiles:
    """The stack's own files as written (its targets, its timers), with the rules of ``profile``
    and every runbook link starting with ``runbook_url``: what the compose stack's Prometheus and
    Alertmanager read (``appraise monitoring-config``)."""
    source = config_dir(source)
    rules_dir = _write_rules(source, out_dir, profile, runbook_url)
    files = ConfigFiles(
        prometheus=out_dir / "prometheus.yml",
        alertmanager=out_dir / "alertmanager.yml",
        rules_dir=rules_dir,
    )
    shutil.copyfile(source / "prometheus.yml", files.prometheus)
    shutil.copyfile(source / "alertmanager.yml", files.alertmanager)
    return files


def _write_rules(source: Path, out_dir: Path, profile: Profile, runbook_url: str) -> Path:
    """The rules of ``source`` as ``profile`` scales them, with absolute runbook links, in
    ``out_dir/rules``; returns that directory."""
    runbook = runbook_base(runbook_url)
    rules_dir = out_dir / "rules"
    rules_dir.mkdir(parents=True, exist_ok=True)
    for path in sorted((source / "rules").glob("*.yml")):
        text = rules_for(path.read_text(encoding="utf-8"), profile.rules_time_divisor, runbook)
        (rules_dir / path.name).write_text(text, encoding="utf-8")
    return rules_dir


# --- binaries ---------------------------------------------------------------------------------


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
