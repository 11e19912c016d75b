"""The real Prometheus scrapes a real scorer, stream app and HTTP price service on the embedded
broker, fed by the real producer and requester; every dashboard panel's expression, with
``$__rate_interval`` and the variables substituted, must succeed and return data; every metric
the reference lists as exported must be on a ``/metrics`` page, and the rules must load and
evaluate without errors."""

from __future__ import annotations

import json
import os
import re
import sys
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stream.kafka.broker import EmbeddedBroker
from stream.ops.configs import embedded_prometheus_config
from tests.needs import binary
from tests.tools import (
    PROMETHEUS_DIR,
    RULES_DIR,
    dashboards,
    documented_metrics,
    exited,
    free_port,
    http_get,
    metric_family,
    panels,
    process,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SCRAPE = "1s"
#: Grafana's $__rate_interval: max(4 x scrape interval, step + scrape interval).
RATE_INTERVAL = "4s"
#: Panels that may rightly be empty on a healthy run: no alert fires or is pending.
MAY_BE_EMPTY = {"Alerts firing and pending"}


@dataclass
class Stack:
    prometheus: str
    scorer: str
    aggregate: str
    api: str


def _query(base: str, expr: str) -> dict[str, Any]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    answer = http_get(url, timeout=10)
    assert answer is not None, f"Prometheus did not answer {expr}"
    body: dict[str, Any] = json.loads(answer[1])
    return body


def _has_data(base: str, expr: str) -> bool | None:
    body = _query(base, expr)
    return True if body["status"] == "success" and body["data"]["result"] else None


@pytest.fixture(scope="module")
def stack(
    broker: EmbeddedBroker, model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """Scorer, stream app and producer as processes on the session's broker, with their own
    topics and groups, and Prometheus scraping them every second with the project's rules."""
    run_dir = tmp_path_factory.mktemp("ops-stack")
    tag = uuid.uuid4().hex[:8]
    scorer_port, aggregate_port, prometheus_port = free_port(), free_port(), free_port()
    api_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("APPRAISE_")}
    env.update(
        {
            "APPRAISE_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "APPRAISE_MODEL_DIR": str(model_dir),
            "APPRAISE_METRICS__HOST": "127.0.0.1",
            "APPRAISE_METRICS__SCORER_PORT": str(scorer_port),
            "APPRAISE_METRICS__AGGREGATE_PORT": str(aggregate_port),
            "APPRAISE_SERVE__PORT": str(api_port),
            "APPRAISE_SCORER__GROUP_ID": f"ops-scorer-{tag}",
            "APPRAISE_AGGREGATE__APP_ID": f"ops-aggregate-{tag}",
            # Short windows (multiples of the scorer's 10 s panes) so some close in the test.
            "APPRAISE_AGGREGATE__TUMBLING_SECONDS": "10",
            "APPRAISE_AGGREGATE__HOPPING_SECONDS": "20",
            "APPRAISE_AGGREGATE__HOP_SECONDS": "10",
            "APPRAISE_AGGREGATE__ALLOWED_LATENESS_SECONDS": "0",
            "APPRAISE_AGGREGATE__MIN_EVENTS": "20",
        }
    )
    for name in ("listings", "predictions", "dlq", "sales", "panes", "windows"):
        env[f"APPRAISE_TOPICS__{name.upper()}"] = f"ops-{tag}-{name}"
    env["APPRAISE_TOPICS__PARTITIONS"] = "2"

    config = run_dir / "prometheus.yml"
    config.write_text(
        embedded_prometheus_config(
            (PROMETHEUS_DIR / "prometheus.yml").read_text(),
            {
                "appraise-scorer": [f"127.0.0.1:{scorer_port}"],
                "appraise-aggregate": [f"127.0.0.1:{aggregate_port}"],
                "appraise-api": [f"127.0.0.1:{api_port}"],
                # No history sink (it needs a PostgreSQL): see _NOT_IN_THIS_STACK.
                "appraise-history": [],
                "prometheus": [f"127.0.0.1:{prometheus_port}"],
                "alertmanager": [],
            },
            rules_dir=RULES_DIR,
            scrape_interval=SCRAPE,
        )
    )
    python = sys.executable
    scorer_log, aggregate_log = run_dir / "scorer.log", run_dir / "aggregate.log"
    producer_log, prometheus_log = run_dir / "producer.log", run_dir / "prometheus.log"
    api_log, requester_log = run_dir / "serve.log", run_dir / "requester.log"
    produce = ["produce", "--loop", "--event-time", "live", "--rate", "100"]
    produce += ["--with-sales", "--sale-delay", "1"]
    # One feature far off (lot areas 50 times too large), so the series that exist only while
    # something drifts (the likely causes) are on the pages too.
    produce += ["--scenario", "scale:feature=lot_area_sqft,factor=50"]
    # The same stream as requests to the HTTP price service, a few of them malformed.
    request = ["produce", "--loop", "--event-time", "live", "--rate", "20"]
    request += ["--http", f"http://127.0.0.1:{api_port}", "--concurrency", "4"]
    request += ["--scenario", "malformed:share=0.1"]
    prometheus_argv = [
        binary("prometheus"),
        f"--config.file={config}",
        f"--storage.tsdb.path={run_dir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{prometheus_port}",
    ]
    with (
        process([python, "-m", "stream", "score"], scorer_log, env=env) as scorer,
        process([python, "-m", "stream", "aggregate"], aggregate_log, env=env) as aggregate,
        process([python, "-m", "stream", "serve"], api_log, env=env) as api,
        process(prometheus_argv, prometheus_log) as prometheus,
    ):
        scorer_url = f"http://127.0.0.1:{scorer_port}"
        wait_until(
            lambda: True if (http_get(f"{scorer_url}/readyz") or (0, b""))[0] == 200 else None,
            timeout=90,
            what="the scorer's /readyz",
            alive=exited(scorer, scorer_log),
        )
        aggregate_url = f"http://127.0.0.1:{aggregate_port}"
        wait_until(
            lambda: True if (http_get(f"{aggregate_url}/readyz") or (0, b""))[0] == 200 else None,
            timeout=90,
            what="the stream app's /readyz",
            alive=exited(aggregate, aggregate_log),
        )
        api_url = f"http://127.0.0.1:{api_port}"
        wait_until(
            lambda: True if (http_get(f"{api_url}/readyz") or (0, b""))[0] == 200 else None,
            timeout=90,
            what="the price service's /readyz",
            alive=exited(api, api_log),
        )
        with (
            process([python, "-m", "stream", *produce], producer_log, env=env) as producer,
            process([python, "-m", "stream", *request], requester_log, env=env) as requester,
        ):
            base = f"http://127.0.0.1:{prometheus_port}"

            def alive() -> str | None:
                for child, log in (
                    (scorer, scorer_log),
                    (aggregate, aggregate_log),
                    (producer, producer_log),
                    (api, api_log),
                    (requester, requester_log),
                    (prometheus, prometheus_log),
                ):
                    dead = exited(child, log)()
                    if dead is not None:
                        return dead
                return None

            # Data all the way through: predictions, closed windows with drift values, and
            # realised error from joined sales, as Prometheus sees them.
            for expr in (
                "sum(rate(appraise_predictions_total[4s])) > 0",
                "appraise_feature_psi",
                "appraise_drift_cause_score",
                "appraise_prediction_quantile_dollars",
                "appraise_realised_error_mape_ratio",
                # Refreshed by a 1 s timer once the first window of a version has closed.
                "appraise_window_watermark_timestamp_seconds",
                # Answered and refused HTTP requests, and the latency quantiles recorded.
                'appraise_http_requests_total{status="422"} > 0',
                "job_quantile:appraise_http_request_duration_seconds:histogram_quantile1m",
            ):
                wait_until(
                    lambda expr=expr: _has_data(base, expr),  # type: ignore[misc]
                    timeout=150,
                    what=f"Prometheus to have {expr}",
                    interval=0.5,
                    alive=alive,
                )
            yield Stack(prometheus=base, scorer=scorer_url, aggregate=aggregate_url, api=api_url)


def _variables(base: str, dashboard: dict[str, Any]) -> dict[str, str]:
    values = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        match = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable["definition"])
        assert match, f"unsupported variable query {variable['definition']}"
        metric, label = match.groups()
        url = f"{base}/api/v1/label/{label}/values?" + urllib.parse.urlencode({"match[]": metric})
        answer = http_get(url)
        assert answer is not None
        found = sorted(json.loads(answer[1])["data"])
        assert found, f"${variable['name']}: no value of {label} on {metric}"
        values[variable["name"]] = found[0]
    return values


def _substitute(expr: str, variables: dict[str, str]) -> str:
    expr = expr.replace("$__rate_interval", RATE_INTERVAL)
    for name, value in variables.items():
        expr = expr.replace(f"${{{name}}}", value).replace(f"${name}", value)
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


def test_every_dashboard_panel_returns_data(stack: Stack) -> None:
    failures = []
    checked = 0
    for file_name, dashboard in dashboards().items():
        if any("rawSql" in t for panel in panels(dashboard) for t in panel["targets"]):
            continue  # a PostgreSQL dashboard (the history's): no PromQL, tests/grafana/ runs it
        variables = _variables(stack.prometheus, dashboard)
        for panel in panels(dashboard):
            for target in panel["targets"]:
                expr = _substitute(target["expr"], variables)
                body = _query(stack.prometheus, expr)
                checked += 1
                where = f"{file_name} / {panel['title']} / {target['refId']}: {expr}"
                if body["status"] != "success":
                    failures.append(f"{where}: {body.get('error')}")
                elif not body["data"]["result"] and panel["title"] not in MAY_BE_EMPTY:
                    failures.append(f"{where}: no data")
    assert checked > 30
    assert not failures, "\n".join(failures)


def _exposed(url: str) -> set[str]:
    answer = http_get(f"{url}/metrics")
    assert answer is not None
    assert answer[0] == 200
    names = set()
    for line in answer[1].decode().splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


#: The metrics of services this stack does not run: the history sink's (it needs a
#: PostgreSQL). docs/metrics.md lists them as the catalogue has them
#: (tests/stream/contract/test_metrics.py); a real sink's page is read by
#: tests/stream/ops/test_up.py (`appraise up --history`).
_NOT_IN_THIS_STACK = "appraise_history_"


def test_documented_metrics_are_on_the_metrics_pages(stack: Stack) -> None:
    documented = documented_metrics()
    histograms = {name for name, (kind, _) in documented.items() if kind == "histogram"}
    pages = _exposed(stack.scorer) | _exposed(stack.aggregate) | _exposed(stack.api)
    exposed = {metric_family(name, histograms) for name in pages}
    exported = {
        name
        for name, (_, status) in documented.items()
        if status == "exported" and not name.startswith(_NOT_IN_THIS_STACK)
    }
    assumed = {name for name, (_, status) in documented.items() if status == "assumed"}
    assert exported - exposed == set(), "listed as exported in docs/metrics.md, not exposed"
    assert assumed & exposed == set(), "exposed now: mark them exported in docs/metrics.md"


def test_rules_evaluate_without_errors(stack: Stack) -> None:
    answer = http_get(f"{stack.prometheus}/api/v1/rules")
    assert answer is not None
    groups = json.loads(answer[1])["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) > 30
    broken = {rule["name"]: rule.get("lastError") for rule in rules if rule["health"] == "err"}
    assert not broken
    # The recorded series the dashboards and alerts lean on are being written.
    for record in (
        "job:appraise_predictions:rate1m",
        "job_quantile:appraise_scoring_latency_seconds:histogram_quantile5m",
        "job_window_model_version:appraise_prediction_median_shift:ratio",
    ):
        wait_until(
            lambda record=record: _has_data(stack.prometheus, record),  # type: ignore[misc]
            timeout=30,
            what=f"recorded series {record}",
        )


def test_scorer_aggregate_and_api_targets_are_up(stack: Stack) -> None:
    body = _query(stack.prometheus, 'up{job=~"appraise-.*"}')
    values = {r["metric"]["job"]: r["value"][1] for r in body["data"]["result"]}
    assert values == {"appraise-scorer": "1", "appraise-aggregate": "1", "appraise-api": "1"}
