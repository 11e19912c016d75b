"""prometheus.yml and the rules: the real promtool checks them and runs their unit tests; the
conventions of docs/observability.md are checked on the parsed files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from stream.ops.configs import Endpoints, embedded_prometheus_config, write_configs
from stream.ops.profiles import PROFILES
from stream.settings import MetricsSettings, ServeSettings
from tests.needs import binary
from tests.tools import (
    PROMETHEUS_DIR,
    ROOT,
    RULE_TESTS_DIR,
    RULES_DIR,
    RUNBOOK,
    alert_rules,
    load_yaml,
    recorded_names,
    recording_rules,
    run,
)

RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
RULE_TEST_FILES = sorted(RULE_TESTS_DIR.glob("*.yml"))
SEVERITIES = {"critical", "warning", "info"}
RECORD_NAME = re.compile(r"^[a-z][a-z_]*:[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$")


def _promtool() -> str:
    return binary("promtool")


def test_prometheus_config_is_valid() -> None:
    result = run(_promtool(), "check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    # The config must load every rule file, not a subset.
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in result.stdout


def test_rules_are_valid() -> None:
    assert RULE_FILES, "no rule file in prometheus/rules/"
    result = run(_promtool(), "check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass() -> None:
    assert RULE_TEST_FILES, "no promtool test file in prometheus/tests/"
    result = run(_promtool(), "test", "rules", *map(str, RULE_TEST_FILES), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules_catches_a_wrong_expectation(tmp_path: Path) -> None:
    # The unit tests can fail: the same cases with one expected value changed do.
    source = RULE_TESTS_DIR / "scorer_alerts_test.yml"
    broken = source.read_text().replace("4m 57s", "4m 58s", 1)
    assert broken != source.read_text()
    target = tmp_path / "broken_test.yml"
    target.write_text(broken.replace("../rules/", f"{RULES_DIR}/"))
    result = run(_promtool(), "test", "rules", str(target), timeout=120)
    assert result.returncode != 0
    assert "4m 57s" in result.stdout + result.stderr


# --- conventions --------------------------------------------------------------------------------


def _runbook_anchors() -> set[str]:
    anchors = set()
    for line in RUNBOOK.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_follows_the_conventions(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    assert re.fullmatch(r"Appraise[A-Z][A-Za-z]+", name), f"{name}: prefix Appraise, CamelCase"
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert set(annotations) >= {"summary", "description", "runbook_url"}
    assert "{{" not in annotations["summary"], "the summary is one static sentence"
    assert "{{" in annotations["description"], "the description names the labels and value"
    path, _, anchor = annotations["runbook_url"].partition("#")
    assert (ROOT / path).is_file(), f"{name}: runbook {path} missing"
    assert anchor == name.lower(), f"{name}: runbook_url should point at its own section"
    assert anchor in _runbook_anchors(), f"{name}: RUNBOOK.md has no section {name}"
    assert rule.get("for"), f"{name}: a for: duration rides out one noisy window"


def test_alert_names_are_unique() -> None:
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names))


def test_issue_alerts_exist() -> None:
    names = {rule["alert"] for rule in alert_rules()}
    assert names >= {
        "AppraiseScorerDown",
        "AppraiseScorerNotReady",
        "AppraiseNoPredictions",
        "AppraiseHighErrorRatio",
        "AppraiseConsumerLagGrowing",
        "AppraiseEventLagHigh",
        "AppraisePredictionDrift",
        "AppraisePredictionMedianShift",
        "AppraiseFeatureDrift",
        "AppraiseDatasetDrift",
        "AppraiseRealisedErrorHigh",
        "AppraiseAggregateDown",
        "AppraiseAggregateBehind",
        "AppraiseNoData",
        "AppraiseApiDown",
        "AppraiseHttpErrorRatioHigh",
        "AppraiseHttpRejectedRatioHigh",
        "AppraiseHttpLatencyHigh",
        "AppraiseHttpTrafficUnmonitored",
        "AppraiseHistoryDown",
        "AppraiseHistoryBehind",
        "AppraiseHistoryDatabaseDown",
        "AppraiseHistoryRecordsSkipped",
    }


#: Gauges of how long a consumer has had records waiting (0 once a measurement finds it caught
#: up): a burst that drains resets them, as it leaves a lag's growth at 0, so they stand in for
#: deriv(lag) > 0 (see AppraiseHistoryBehind).
WAITING_GAUGES = ("appraise_history_behind_seconds",)


def test_lag_alerts_look_at_growth() -> None:
    for rule in alert_rules():
        if ("Lag" in rule["alert"] and "Event" not in rule["alert"]) or "Behind" in rule["alert"]:
            waits = any(name in rule["expr"] for name in WAITING_GAUGES)
            assert "deriv(" in rule["expr"] or waits, (
                f"{rule['alert']}: alert on growth, or on how long records waited, not a value"
            )


def test_the_history_backlog_alert_holds_for_its_10_minutes() -> None:
    # The decision's duration is the for: (which the demo profile scales), not a threshold of
    # seconds in the expression (which it does not).
    (rule,) = [r for r in alert_rules() if r["alert"] == "AppraiseHistoryBehind"]
    assert rule["expr"].strip() == 'appraise_history_behind_seconds{job="appraise-history"} > 0'
    assert rule["for"] == "10m"


@pytest.mark.parametrize("rule", recording_rules(), ids=lambda rule: rule["record"])
def test_recording_rule_name_is_level_metric_operations(rule: dict[str, Any]) -> None:
    assert RECORD_NAME.fullmatch(rule["record"]), rule["record"]
    assert ":appraise_" in rule["record"]


def _rule_tests() -> list[dict[str, Any]]:
    return [case for path in RULE_TEST_FILES for case in load_yaml(path)["tests"]]


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for case in _rule_tests():
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - firing == set(), "alerts without a case where they fire"
    assert names - silent == set(), "alerts without a case where they stay silent"


def test_every_recording_rule_is_tested() -> None:
    tested = set()
    for case in _rule_tests():
        for check in case.get("promql_expr_test", []):
            tested |= {name for name in recorded_names() if name in check["expr"]}
    assert recorded_names() - tested == set(), "recording rules without a promql_expr_test"


# --- the embedded run's config ------------------------------------------------------------------


def test_embedded_config_rewrites_targets_and_keeps_the_rules(tmp_path: Path) -> None:
    text = (PROMETHEUS_DIR / "prometheus.yml").read_text()
    rendered = embedded_prometheus_config(
        text,
        {
            "appraise-scorer": ["127.0.0.1:9400"],
            "appraise-aggregate": ["127.0.0.1:9401"],
            "appraise-api": ["127.0.0.1:8000"],
            "appraise-history": ["127.0.0.1:9402"],
            "prometheus": ["127.0.0.1:9090"],
            "alertmanager": [],
        },
        alertmanagers=["127.0.0.1:9093"],
        rules_dir=RULES_DIR,
    )
    config = yaml.safe_load(rendered)
    jobs = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
    }
    assert jobs == {
        "appraise-scorer": ["127.0.0.1:9400"],
        "appraise-aggregate": ["127.0.0.1:9401"],
        "appraise-api": ["127.0.0.1:8000"],
        "appraise-history": ["127.0.0.1:9402"],
        "prometheus": ["127.0.0.1:9090"],
    }
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "127.0.0.1:9093"
    ]
    assert config["rule_files"] == [str(RULES_DIR / "*.yml")]
    path = tmp_path / "prometheus.yml"
    path.write_text(rendered)
    result = run(_promtool(), "check", "config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in result.stdout


def test_embedded_config_refuses_a_missing_or_unknown_job() -> None:
    text = (PROMETHEUS_DIR / "prometheus.yml").read_text()
    with pytest.raises(
        ValueError, match=r"missing \['alertmanager', 'appraise-api', 'appraise-history'\]"
    ):
        embedded_prometheus_config(
            text, {"appraise-scorer": [], "appraise-aggregate": [], "prometheus": []}
        )
    with pytest.raises(ValueError, match=r"unknown \['nope'\]"):
        embedded_prometheus_config(
            text,
            {"appraise-scorer": [], "appraise-aggregate": [], "appraise-api": [],
             "appraise-history": [], "prometheus": [], "alertmanager": [], "nope": []},
        )  # fmt: skip


def test_the_api_job_scrapes_the_compose_service_on_its_port() -> None:
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "appraise-api"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"] == [{"targets": ["api:8000"]}]
    assert ServeSettings().port == 8000


def test_the_history_job_scrapes_the_compose_service_on_its_port() -> None:
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "appraise-history"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job["static_configs"] == [{"targets": [f"history:{MetricsSettings().history_port}"]}]
    assert MetricsSettings().history_port == 9402


@pytest.mark.parametrize("history", [None, "127.0.0.1:19402"], ids=["without", "with"])
def test_appraise_up_scrapes_the_history_sink_only_when_the_run_has_one(
    history: str | None, tmp_path: Path
) -> None:
    endpoints = Endpoints(
        scorer="127.0.0.1:19400",
        aggregate="127.0.0.1:19401",
        prometheus="127.0.0.1:19090",
        alertmanager="127.0.0.1:19093",
        webhook="127.0.0.1:19095",
        history=history,
    )
    files = write_configs(tmp_path, endpoints, PROFILES["default"])
    config = load_yaml(files.prometheus)
    jobs = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
    }
    assert jobs.get("appraise-history") == ([history] if history else None)
    assert "appraise-api" not in jobs
    assert jobs["appraise-scorer"] == ["127.0.0.1:19400"]
    checked = run(_promtool(), "check", "config", str(files.prometheus))
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("api", [None, "127.0.0.1:18000"], ids=["without", "with"])
def test_appraise_up_scrapes_the_api_only_when_the_run_has_one(
    api: str | None, tmp_path: Path
) -> None:
    endpoints = Endpoints(
        scorer="127.0.0.1:19400",
        aggregate="127.0.0.1:19401",
        prometheus="127.0.0.1:19090",
        alertmanager="127.0.0.1:19093",
        webhook="127.0.0.1:19095",
        api=api,
    )
    files = write_configs(tmp_path, endpoints, PROFILES["default"])
    config = load_yaml(files.prometheus)
    jobs = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
    }
    assert jobs.get("appraise-api") == ([api] if api else None)
    assert jobs["appraise-scorer"] == ["127.0.0.1:19400"]
