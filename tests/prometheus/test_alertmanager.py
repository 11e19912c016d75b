"""alertmanager.yml: amtool checks it and resolves a route per severity; a real Alertmanager
delivers a webhook (payload version 4) and applies the inhibit rules."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from stream.ops.configs import alertmanager_config
from tests.needs import binary
from tests.tools import (
    PROMETHEUS_DIR,
    exited,
    free_port,
    http_get,
    load_yaml,
    post_alerts,
    process,
    run,
    wait_until,
)

CONFIG = PROMETHEUS_DIR / "alertmanager.yml"


def test_config_is_valid() -> None:
    result = run(binary("amtool"), "check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=critical", "alertname=AppraiseScorerDown", "job=appraise-scorer"], "page"),
        (
            ["severity=warning", "alertname=AppraiseFeatureDrift", "job=appraise-aggregate"],
            "ticket",
        ),
        (["severity=info", "alertname=AppraiseUnseenCategories", "job=appraise-aggregate"], "null"),
        (["severity=warning", "alertname=AppraiseNoData", "silent=listings"], "ticket"),
        # The HTTP price service is paged like the scorer; its traffic gap is a ticket.
        (["severity=critical", "alertname=AppraiseApiDown", "job=appraise-api"], "page"),
        (
            ["severity=warning", "alertname=AppraiseHttpTrafficUnmonitored", "job=appraise-api"],
            "ticket",
        ),
        # The history sink's alerts are tickets: nothing is priced or alerted through it.
        (["severity=warning", "alertname=AppraiseHistoryDown", "job=appraise-history"], "ticket"),
        (
            ["severity=warning", "alertname=AppraiseHistoryBehind", "job=appraise-history"],
            "ticket",
        ),
        # No or an unknown severity still reaches someone: the root's receiver.
        (["alertname=Watchdog"], "webhook"),
        (["severity=page", "alertname=Something"], "webhook"),
    ],
    ids=[
        "critical",
        "warning",
        "info",
        "no-data",
        "api-down",
        "http-unmonitored",
        "history-down",
        "history-behind",
        "no-severity",
        "unknown-severity",
    ],
)
def test_route_per_severity(labels: list[str], receiver: str) -> None:
    result = run(
        binary("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG}",
        f"--verify.receivers={receiver}",
        *labels,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_a_wrong_receiver_is_refused() -> None:
    result = run(
        binary("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG}",
        "--verify.receivers=ticket",
        "severity=critical",
        "alertname=AppraiseScorerDown",
    )
    assert result.returncode != 0


def test_grouping_and_timers_are_set_on_purpose() -> None:
    route = load_yaml(CONFIG)["route"]
    assert route["group_by"] == ["alertname", "job"]
    for key in ("group_wait", "group_interval", "repeat_interval"):
        assert key in route, key
    severities = [child["matchers"] for child in route["routes"]]
    assert severities == [['severity="critical"'], ['severity="warning"'], ['severity="info"']]


def test_example_receivers_read_their_secrets_from_files() -> None:
    receivers = {r["name"]: r for r in load_yaml(CONFIG)["receivers"]}
    slack = receivers["slack-example"]["slack_configs"][0]
    email = receivers["email-example"]["email_configs"][0]
    assert "api_url" not in slack
    assert slack["api_url_file"].startswith("/")
    assert "auth_password" not in email
    assert email["auth_password_file"].startswith("/")


# --- a real Alertmanager --------------------------------------------------------------------------


class _Sink(ThreadingHTTPServer):
    received: queue.Queue[tuple[str, dict[str, Any]]]


class _Handler(BaseHTTPRequestHandler):
    server: _Sink

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.put((self.path, json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def webhook_sink() -> Iterator[_Sink]:
    """An HTTP server on a free port that queues every (path, JSON body) POSTed to it."""
    server = _Sink(("127.0.0.1", 0), _Handler)
    server.received = queue.Queue()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def alertmanager(webhook_sink: _Sink, tmp_path: Path) -> Iterator[str]:
    """The real Alertmanager with the project's config (webhooks to the sink, 1 s grouping
    timers) on a free port; its base URL."""
    port = free_port()
    sink_url = f"http://127.0.0.1:{webhook_sink.server_address[1]}"
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        alertmanager_config(CONFIG.read_text(), sink_url, group_wait="1s", group_interval="1s")
    )
    log = tmp_path / "alertmanager.log"
    argv = [
        binary("prometheus-alertmanager"),
        f"--config.file={config}",
        f"--storage.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # no gossip: one instance
    ]
    with process(argv, log) as child:
        url = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: True if (http_get(f"{url}/-/ready") or (0, b""))[0] == 200 else None,
            timeout=30,
            what="Alertmanager ready",
            alive=exited(child, log),
        )
        yield url


@pytest.mark.integration
def test_a_critical_alert_reaches_the_page_webhook_as_version_4(
    alertmanager: str, webhook_sink: _Sink
) -> None:
    post_alerts(
        alertmanager,
        [
            {
                "labels": {
                    "alertname": "AppraiseNoPredictions",
                    "severity": "critical",
                    "job": "appraise-scorer",
                },
                "annotations": {"summary": "s", "description": "d", "runbook_url": "r"},
            }
        ],
    )
    path, payload = webhook_sink.received.get(timeout=30)
    assert path == "/alerts/page"
    assert payload["version"] == "4"
    assert payload["status"] == "firing"
    assert payload["receiver"] == "page"
    assert payload["groupLabels"] == {
        "alertname": "AppraiseNoPredictions",
        "job": "appraise-scorer",
    }
    assert "groupKey" in payload
    (alert,) = payload["alerts"]
    assert alert["labels"]["alertname"] == "AppraiseNoPredictions"
    assert alert["annotations"]["runbook_url"] == "r"
    assert {"startsAt", "endsAt", "fingerprint", "status"} <= set(alert)


@pytest.mark.integration
def test_scorer_down_inhibits_lag_and_drift_alerts(alertmanager: str) -> None:
    def alert(name: str, severity: str, job: str, deployment: str = "appraise") -> dict[str, Any]:
        return {
            "labels": {
                "alertname": name,
                "severity": severity,
                "job": job,
                "deployment": deployment,
            }
        }

    post_alerts(
        alertmanager,
        [
            alert("AppraiseScorerDown", "critical", "appraise-scorer"),
            alert("AppraiseConsumerLagGrowing", "warning", "appraise-scorer"),
            alert("AppraiseFeatureDrift", "warning", "appraise-aggregate"),
            # Not inhibited: a drift alert of another deployment, and the stream app's own
            # outage (unrelated to the scorer).
            alert("AppraiseFeatureDrift", "warning", "appraise-aggregate", deployment="other"),
            alert("AppraiseAggregateDown", "warning", "appraise-aggregate"),
            # Nor the HTTP service's traffic gap: the API answers without the scorer.
            alert("AppraiseHttpTrafficUnmonitored", "warning", "appraise-api"),
        ],
    )

    def states() -> dict[tuple[str, str], str] | None:
        found = _states(alertmanager)
        # Inhibition is applied once the source alert is known: wait for the suppressed ones.
        return found if found and len(found) == 6 and "suppressed" in found.values() else None

    found = wait_until(states, timeout=30, what="the inhibition to apply")
    assert found == {
        ("AppraiseScorerDown", "appraise"): "active",
        ("AppraiseConsumerLagGrowing", "appraise"): "suppressed",
        ("AppraiseFeatureDrift", "appraise"): "suppressed",
        ("AppraiseFeatureDrift", "other"): "active",
        ("AppraiseAggregateDown", "appraise"): "active",
        ("AppraiseHttpTrafficUnmonitored", "appraise"): "active",
    }


def _states(alertmanager: str) -> dict[tuple[str, str], str] | None:
    """Each alert's state by name and deployment, as Alertmanager's API gives it (None while it
    does not answer)."""
    answer = http_get(f"{alertmanager}/api/v2/alerts")
    if answer is None or answer[0] != 200:
        return None
    return {
        (a["labels"]["alertname"], a["labels"]["deployment"]): a["status"]["state"]
        for a in json.loads(answer[1])
    }


#: The alerts AppraiseNoData mutes: every drift alert, target drift and out-of-range included.
NO_DATA_MUTES = (
    "AppraisePredictionMedianShift",
    "AppraisePredictionDrift",
    "AppraiseFeatureDrift",
    "AppraiseDatasetDrift",
    "AppraiseUnseenCategories",
    "AppraiseTargetDrift",
    "AppraiseFeatureOutOfRange",
)


@pytest.mark.integration
def test_no_data_inhibits_the_drift_alerts(alertmanager: str) -> None:
    def alert(name: str, deployment: str = "appraise", **labels: str) -> dict[str, Any]:
        common = {"severity": "warning", "deployment": deployment, "job": "appraise-aggregate"}
        return {"labels": {"alertname": name, **common, **labels}}

    post_alerts(
        alertmanager,
        [
            alert("AppraiseNoData", silent="listings"),
            *(alert(name) for name in NO_DATA_MUTES),
            # Not inhibited: a drift alert of another deployment, and what is not drift.
            alert("AppraiseFeatureDrift", deployment="other"),
            alert("AppraiseHighErrorRatio"),
            alert("AppraiseAggregateBehind"),
            alert("AppraiseHttpTrafficUnmonitored", job="appraise-api"),
        ],
    )
    expected = {(name, "appraise"): "suppressed" for name in NO_DATA_MUTES}
    expected |= {
        ("AppraiseNoData", "appraise"): "active",
        ("AppraiseFeatureDrift", "other"): "active",
        ("AppraiseHighErrorRatio", "appraise"): "active",
        ("AppraiseAggregateBehind", "appraise"): "active",
        ("AppraiseHttpTrafficUnmonitored", "appraise"): "active",
    }

    def states() -> dict[tuple[str, str], str] | None:
        found = _states(alertmanager)
        if found is None:
            return None
        done = list(found.values()).count("suppressed") == len(NO_DATA_MUTES)
        return found if len(found) == len(expected) and done else None

    assert wait_until(states, timeout=30, what="the inhibition to apply") == expected


@pytest.mark.integration
def test_the_history_database_down_inhibits_the_backlog_of_the_same_sink(
    alertmanager: str,
) -> None:
    def alert(name: str, instance: str = "history:9402") -> dict[str, Any]:
        labels = {"severity": "warning", "deployment": "appraise", "job": "appraise-history"}
        return {"labels": {"alertname": name, "instance": instance, **labels}}

    post_alerts(
        alertmanager,
        [
            alert("AppraiseHistoryDatabaseDown"),
            alert("AppraiseHistoryBehind"),
            # Not inhibited: the backlog of another sink (its database answers), what the
            # database being away does not explain, and the stream app's own backlog.
            alert("AppraiseHistoryBehind", instance="history-2:9402"),
            alert("AppraiseHistoryRecordsSkipped"),
            {
                "labels": {
                    "alertname": "AppraiseAggregateBehind",
                    "severity": "warning",
                    "deployment": "appraise",
                    "job": "appraise-aggregate",
                }
            },
        ],
    )

    def states() -> dict[tuple[str, str], str] | None:
        answer = http_get(f"{alertmanager}/api/v2/alerts")
        if answer is None or answer[0] != 200:
            return None
        found = {
            (a["labels"]["alertname"], a["labels"].get("instance", "")): a["status"]["state"]
            for a in json.loads(answer[1])
        }
        return found if len(found) == 5 and "suppressed" in found.values() else None

    assert wait_until(states, timeout=30, what="the inhibition to apply") == {
        ("AppraiseHistoryDatabaseDown", "history:9402"): "active",
        ("AppraiseHistoryBehind", "history:9402"): "suppressed",
        ("AppraiseHistoryBehind", "history-2:9402"): "active",
        ("AppraiseHistoryRecordsSkipped", "history:9402"): "active",
        ("AppraiseAggregateBehind", ""): "active",
    }
