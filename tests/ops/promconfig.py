"""Configs for the embedded run, derived from the compose stack's files.

Pure functions: text in, text out. The compose stack and the embedded run (``appraise up``)
share one ``prometheus/prometheus.yml`` and one set of rules; only the scrape and Alertmanager
targets differ. TRANSITIONAL home: ``appraise up`` should import these from ``stream/``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml


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
        targets: job name -> ``host:port`` targets; every job of ``text`` must be named (an
            embedded run without a part passes an empty list, which drops that job).
        alertmanagers: ``host:port`` of the Alertmanagers; none drops the alerting section.
        rules_dir: absolute directory of the rule files (the embedded run's config file lives
            elsewhere than prometheus/, and relative rule_files resolve against it).
        scrape_interval: e.g. ``"1s"`` for a test; the evaluation interval follows it.

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
) -> str:
    """``alertmanager.yml`` with every webhook URL moved to ``webhook_base`` (keeping its path)
    and, for tests, shorter grouping timers on every route.

    Args:
        text: the compose stack's alertmanager.yml.
        webhook_base: e.g. ``http://127.0.0.1:8123``.
        group_wait: e.g. ``"1s"``; applied to the root and every child that sets one.
        group_interval: likewise.
    """
    config: dict[str, Any] = yaml.safe_load(text)
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            path = webhook["url"].split("://", 1)[1].partition("/")[2]
            webhook["url"] = f"{webhook_base.rstrip('/')}/{path}"

    def shorten(route: dict[str, Any], is_root: bool) -> None:
        for key, value in (("group_wait", group_wait), ("group_interval", group_interval)):
            if value is not None and (is_root or key in route):
                route[key] = value
        for child in route.get("routes", []):
            shorten(child, is_root=False)

    shorten(config["route"], is_root=True)
    return yaml.safe_dump(config, sort_keys=False)
