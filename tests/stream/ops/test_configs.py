"""What ``appraise up`` runs for monitoring: the generated configs pass the real promtool and
amtool in both profiles, the demo profile scales every duration, and the webhook receiver records
what the real Alertmanager sends."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import yaml

from stream.errors import ConfigError
from stream.ops.alerts import WebhookReceiver, read_notifications
from stream.ops.configs import (
    SCORERS_FILE,
    Endpoints,
    alertmanager_argv,
    format_duration,
    parse_duration,
    prometheus_argv,
    rules_for,
    write_configs,
)
from stream.ops.profiles import PROFILES, profile_named, with_profile
from stream.settings import load_settings
from tests.needs import binary, until
from tests.tools import (
    RULES_DIR,
    alert_rules,
    exited,
    free_port,
    http_get,
    post_alerts,
    process,
    run,
)
from tests.tools import wait_until as wait_until_sync

ENDPOINTS = Endpoints(
    scorer="127.0.0.1:19400",
    aggregate="127.0.0.1:19401",
    prometheus="127.0.0.1:19090",
    alertmanager="127.0.0.1:19093",
    webhook="127.0.0.1:19095",
    history="127.0.0.1:19402",
)


@pytest.mark.parametrize(
    ("text", "seconds"), [("5m", 300), ("1h30m", 5400), ("250ms", 0.25), ("10s", 10)]
)
def test_durations_parse_and_format_back(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


def test_a_bad_duration_is_refused() -> None:
    with pytest.raises(ValueError, match="5 minutes"):
        parse_duration("5 minutes")


def test_demo_rules_divide_every_for_and_range_by_ten() -> None:
    source = alert_rules()
    scaled = [
        rule
        for path in sorted(RULES_DIR.glob("*.yml"))
        for group in yaml.safe_load(rules_for(path.read_text(), 10))["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]
    assert [r["alert"] for r in scaled] == [r["alert"] for r in source]
    for before, after in zip(source, scaled, strict=True):
        assert parse_duration(after["for"]) == parse_duration(before["for"]) / 10
        assert after["expr"].count("[") == before["expr"].count("[")
    lag = next(r for r in scaled if r["alert"] == "AppraiseConsumerLagGrowing")
    assert "[60s]" in lag["expr"]
    assert "[10m]" not in lag["expr"]
    # The history sink's backlog: its 10 minutes are the for:, so the demo waits 1 minute.
    behind = next(r for r in scaled if r["alert"] == "AppraiseHistoryBehind")
    assert behind["for"] == "60s"


@pytest.mark.parametrize(
    "rule",
    [
        "- alert: A\n  expr: rate(x[5m] offset 10m) > 0\n  for: 5m",
        "- alert: A\n  expr: max_over_time(rate(x[1m])[5m:1m]) > 0",
        "- alert: A\n  expr: x > 0\n  keep_firing_for: 5m",
    ],
)
def test_durations_the_scaling_does_not_know_are_refused(rule: str) -> None:
    text = "groups:\n- name: g\n  rules:\n" + "\n".join("  " + line for line in rule.split("\n"))
    with pytest.raises(ValueError, match="rule A: keep_firing_for, offset and subqueries"):
        rules_for(text, 10)


def test_the_default_profile_leaves_the_rules_as_written() -> None:
    for path in RULES_DIR.glob("*.yml"):
        assert rules_for(path.read_text(), 1) == path.read_text()


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_generated_configs_pass_promtool_and_amtool(name: str, tmp_path: Path) -> None:
    files = write_configs(tmp_path, ENDPOINTS, PROFILES[name])
    rules = sorted(files.rules_dir.glob("*.yml"))
    assert [p.name for p in rules] == [p.name for p in sorted(RULES_DIR.glob("*.yml"))]
    checked = run(binary("promtool"), "check", "config", str(files.prometheus))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules)} rule files found" in checked.stdout
    checked = run(binary("amtool"), "check-config", str(files.alertmanager))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = yaml.safe_load(files.prometheus.read_text())
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
    }
    assert targets["appraise-scorer"] == [ENDPOINTS.scorer]
    assert targets["appraise-aggregate"] == [ENDPOINTS.aggregate]
    assert targets["appraise-history"] == [ENDPOINTS.history]
    assert "appraise-api" not in targets  # a run without the HTTP service
    am = yaml.safe_load(files.alertmanager.read_text())
    urls = [w["url"] for r in am["receivers"] for w in r.get("webhook_configs", [])]
    assert urls
    assert all(u.startswith(f"http://{ENDPOINTS.webhook}/alerts/") for u in urls)


def test_demo_profile_sets_fields_the_environment_leaves_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APPRAISE_AGGREGATE__MIN_EVENTS", "123")
    settings = with_profile(load_settings(), profile_named("demo"))
    assert settings.aggregate.min_events == 123  # the environment wins
    assert settings.aggregate.tumbling_seconds == 10
    assert settings.scorer.pane_seconds == 2
    assert with_profile(load_settings(), profile_named("default")) == load_settings()


def test_a_profile_that_clashes_with_the_environment_names_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APPRAISE_AGGREGATE__HOP_SECONDS", "60")  # demo's hopping window: 30 s
    with pytest.raises(ConfigError, match=r"profile 'demo' sets aggregate .*hopping_seconds"):
        with_profile(load_settings(), profile_named("demo"))


def test_an_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"'fast'.*default, demo"):
        profile_named("fast")


@pytest.mark.integration
async def test_the_receiver_records_what_the_real_alertmanager_sends(tmp_path: Path) -> None:
    printed: list[str] = []
    record = tmp_path / "alerts.jsonl"
    async with WebhookReceiver(
        "127.0.0.1", 0, record, on_notification=lambda n: printed.append(n.line())
    ) as receiver:
        endpoints = Endpoints(
            scorer="127.0.0.1:1",
            aggregate="127.0.0.1:1",
            prometheus="127.0.0.1:1",
            alertmanager=f"127.0.0.1:{free_port()}",
            webhook=f"127.0.0.1:{receiver.port}",
        )
        files = write_configs(tmp_path / "config", endpoints, PROFILES["demo"])
        argv = alertmanager_argv(
            binary("prometheus-alertmanager"),
            files.alertmanager,
            tmp_path / "data",
            endpoints.alertmanager,
        )
        log = tmp_path / "alertmanager.log"
        with process(argv, log) as child:
            url = f"http://{endpoints.alertmanager}"
            wait_until_sync(
                lambda: True if (http_get(f"{url}/-/ready") or (0, b""))[0] == 200 else None,
                timeout=30,
                what="Alertmanager ready",
                alive=exited(child, log),
            )
            labels = {
                "alertname": "AppraiseFeatureDrift",
                "severity": "warning",
                "job": "appraise-aggregate",
                "feature": "living_area_sqft",
                "window": "10s",
            }
            annotations = {"summary": "s", "description": "PSI is  3.1\n (0.25)"}
            post_alerts(url, [{"labels": labels, "annotations": annotations}])
            await until(lambda: bool(read_notifications(record)), 30, "a notification")

    (notification,) = read_notifications(record)
    assert notification.kind == "ticket"  # severity warning routes to the ticket receiver
    assert notification.status == "firing"
    assert notification.labels["feature"] == "living_area_sqft"
    assert notification.description == "PSI is 3.1 (0.25)"
    assert printed == [notification.line()]
    assert "FIRING   AppraiseFeatureDrift [warning] feature=living_area_sqft" in printed[0]
    assert receiver.recent() == (notification,)


async def test_the_receiver_refuses_what_is_not_a_webhook_payload(tmp_path: Path) -> None:
    import aiohttp

    record = tmp_path / "alerts.jsonl"
    async with (
        WebhookReceiver("127.0.0.1", 0, record) as receiver,
        aiohttp.ClientSession() as session,
    ):
        for body in (b"not json", b'{"version": "3", "alerts": []}', b"[1, 2]"):
            async with session.post(f"{receiver.url}/alerts/page", data=body) as response:
                assert response.status == 400, body
    assert record.read_text() == ""


def _scorers_run(tmp_path: Path) -> tuple[Endpoints, Path]:
    scorers = {"scorer": "127.0.0.1:19400", "scorer-2": "127.0.0.1:19403"}
    endpoints = Endpoints(
        scorer="unused:1",
        aggregate="127.0.0.1:19401",
        prometheus=f"127.0.0.1:{free_port()}",
        alertmanager="127.0.0.1:19093",
        webhook="127.0.0.1:19095",
        scorers=scorers,
    )
    return endpoints, tmp_path / "config"


def test_the_scorers_of_a_run_are_a_file_sd_file_promtool_accepts(tmp_path: Path) -> None:
    endpoints, out = _scorers_run(tmp_path)
    files = write_configs(out, endpoints, PROFILES["demo"])
    assert files.scorers == out / SCORERS_FILE
    assert orjson.loads(files.scorers.read_bytes()) == [
        {"targets": ["127.0.0.1:19400"], "labels": {"part": "scorer"}},
        {"targets": ["127.0.0.1:19403"], "labels": {"part": "scorer-2"}},
    ]
    config = yaml.safe_load(files.prometheus.read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "appraise-scorer"]
    assert job["file_sd_configs"] == [{"files": [str(files.scorers.resolve())]}]
    assert "static_configs" not in job
    assert "dns_sd_configs" not in job
    checked = run(binary("promtool"), "check", "config", str(files.prometheus))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


@pytest.mark.integration
def test_a_real_prometheus_discovers_every_scorer_from_the_file(tmp_path: Path) -> None:
    endpoints, out = _scorers_run(tmp_path)
    files = write_configs(out, endpoints, PROFILES["demo"])
    argv = prometheus_argv(
        binary("prometheus"), files.prometheus, tmp_path / "data", endpoints.prometheus
    )
    log = tmp_path / "prometheus.log"
    url = f"http://{endpoints.prometheus}/api/v1/targets"

    def scorers() -> dict[str, str] | None:
        answer = http_get(url)
        if answer is None or answer[0] != 200:
            return None
        found = {
            t["labels"]["part"]: t["labels"]["instance"]
            for t in orjson.loads(answer[1])["data"]["activeTargets"]
            if t["labels"]["job"] == "appraise-scorer"
        }
        return found if len(found) == 2 else None

    with process(argv, log) as child:
        found = wait_until_sync(
            scorers, timeout=30, what="two scorer targets", alive=exited(child, log)
        )
    assert found == {"scorer": "127.0.0.1:19400", "scorer-2": "127.0.0.1:19403"}
