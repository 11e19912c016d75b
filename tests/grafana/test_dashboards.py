"""Grafana provisioning and dashboards: the JSON checks the issue asks for (uids, datasource
uid matches the provisioned one, units, every target has an expression, rates use
$__rate_interval) and the panels the seed service had."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.tools import (
    DATASOURCES_DIR,
    ROOT,
    dashboards,
    load_yaml,
    panels,
)

DASHBOARDS = dashboards()


def _is_sql(target: dict[str, Any]) -> bool:
    """A SQL target (the history dashboard's PostgreSQL): ``rawSql``, not a PromQL ``expr``;
    tests/grafana/test_history_dashboard.py runs its queries."""
    return "rawSql" in target


def _is_sql_dashboard(dashboard: dict[str, Any]) -> bool:
    return any(_is_sql(t) for p in panels(dashboard) for t in p["targets"])


def _datasource_uids() -> set[str]:
    uids = set()
    for path in DATASOURCES_DIR.glob("*.yml"):
        for source in load_yaml(path)["datasources"]:
            assert source.get("uid"), f"{path.name}: {source['name']} needs a fixed uid"
            uids.add(source["uid"])
    return uids


def test_there_is_a_dashboard() -> None:
    assert "appraise-live.json" in DASHBOARDS


def test_the_provider_loads_the_dashboards_folder() -> None:
    provider = load_yaml(ROOT / "grafana" / "provisioning" / "dashboards" / "appraise.yml")
    (entry,) = provider["providers"]
    assert entry["type"] == "file"
    compose = load_yaml(ROOT / "docker-compose.yml")
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{entry['options']['path']}:ro" in mounts


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_header(name: str) -> None:
    dashboard = DASHBOARDS[name]
    assert dashboard["id"] is None, "id must be null: Grafana assigns it"
    assert re.fullmatch(r"[a-z0-9-]{1,40}", dashboard["uid"]), "a stable, short uid"
    # Live (Prometheus) dashboards refresh every 5 s; a SQL dashboard's own test says its rate.
    if not _is_sql_dashboard(dashboard):
        assert dashboard["refresh"] == "5s"
    assert dashboard["title"]
    uids = [d["uid"] for d in DASHBOARDS.values()]
    assert uids.count(dashboard["uid"]) == 1


def _all_datasources(node: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        source = node.get("datasource")
        if isinstance(source, dict) and source.get("type") != "grafana":
            found.append(source)
        elif isinstance(source, str):
            found.append({"uid": source})
        for value in node.values():
            found.extend(_all_datasources(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_all_datasources(item))
    return found


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_datasource_is_the_provisioned_uid(name: str) -> None:
    uids = _datasource_uids()
    sources = _all_datasources(DASHBOARDS[name])
    assert sources
    for source in sources:
        assert source.get("uid") in uids, source
        assert "${" not in str(source.get("uid")), "placeholders break provisioning"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_panel_has_a_unit_and_expressions(name: str) -> None:
    ids = []
    for panel in panels(DASHBOARDS[name]):
        title = panel["title"]
        ids.append(panel["id"])
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{title}: no unit"
        assert panel["description"], f"{title}: no description"
        assert panel["targets"], f"{title}: no target"
        for target in panel["targets"]:
            if _is_sql(target):
                assert target["rawSql"].strip(), f"{title} {target.get('refId')}: empty SQL"
                continue
            expr = target.get("expr", "")
            assert expr.strip(), f"{title} {target.get('refId')}: empty expression"
            for match in re.finditer(r"\brate\(|\bincrease\(|\birate\(", expr):
                tail = expr[match.end() :]
                window = re.search(r"\[([^\]]+)\]", tail)
                assert window, f"{title}: no range in {expr}"
                assert window.group(1) == "$__rate_interval", (
                    f"{title}: use [$__rate_interval] in rate/increase, not [{window.group(1)}]"
                )
    assert len(ids) == len(set(ids)), "panel ids must be unique"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_panels_do_not_overlap(name: str) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in DASHBOARDS[name]["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def _exprs(panel: dict[str, Any]) -> str:
    return "\n".join(t["expr"] for t in panel["targets"])


def test_the_issue_panels_and_the_seed_counterparts_are_there() -> None:
    live = list(panels(DASHBOARDS["appraise-live.json"]))
    by_kind = {p["type"] for p in live}
    everything = "\n".join(_exprs(p) for p in live)
    wanted = {
        "throughput": "rate(appraise_predictions_total",
        "request count": "sum(appraise_events_consumed_total)",
        "scoring latency": "appraise_scoring_latency_seconds_bucket",
        "event lag": "appraise_event_lag_seconds_bucket",
        "prediction heatmap": "appraise_predicted_price_dollars_bucket",
        "big-price bands": 'appraise_predicted_price_dollars_bucket{le="1e+07"}',
        "mean prediction": "appraise_predicted_price_dollars_sum",
        "rolling quantiles": "appraise_prediction_quantile_dollars",
        "reference quantiles": "appraise_reference_prediction_quantile_dollars",
        "PSI per feature": "appraise_feature_psi",
        "drift score per feature": "appraise_feature_drift_score",
        "prediction drift score": "appraise_prediction_drift_score",
        "feature importance": "appraise_feature_importance",
        "likely causes": "appraise_drift_cause_score",
        "target drift score": "appraise_target_drift_score",
        "outside the training range": "appraise_feature_out_of_range_ratio",
        "drifting share": "appraise_drifting_features_ratio",
        "realised MAPE": "appraise_realised_error_mape_ratio",
        "errors by reason": "sum by (reason) (rate(appraise_scoring_errors_total",
        "consumer lag": "appraise_consumer_lag_records",
        "memory": "process_resident_memory_bytes",
        "firing alerts": "ALERTS",
    }
    missing = {what for what, needle in wanted.items() if needle not in everything}
    assert not missing, missing
    assert {"heatmap", "gauge", "bargauge", "stat", "timeseries"} <= by_kind
    heatmap = next(p for p in live if p["type"] == "heatmap")
    assert heatmap["targets"][0]["format"] == "heatmap"
    memory = _panel("Memory")
    assert "process_resident_memory_bytes" in _exprs(memory)
    assert memory["type"] == "gauge"
    assert memory["fieldConfig"]["defaults"]["unit"] == "bytes"


def _panel(title: str) -> dict[str, Any]:
    return next(p for p in panels(DASHBOARDS["appraise-live.json"]) if p["title"] == title)


@pytest.mark.parametrize(
    "title", ["Drift score per feature", "Prediction drift score", "Target drift score"]
)
def test_drift_scores_are_drawn_against_the_decision_line_at_1(title: str) -> None:
    panel = _panel(title)
    assert "drift_score" in _exprs(panel)
    defaults = panel["fieldConfig"]["defaults"]
    assert defaults["custom"]["thresholdsStyle"]["mode"] == "line"
    steps = defaults["thresholds"]["steps"]
    assert [step["value"] for step in steps] == [None, 1]
    assert steps[-1]["color"] == "red"


def test_the_drift_panels_sit_together() -> None:
    scores = _panel("Drift score per feature")
    importance = _panel("Feature importance")
    causes = _panel("Likely causes")
    assert importance["type"] == "bargauge"
    assert causes["type"] == "table"
    assert causes["targets"][0]["format"] == "table"
    assert "by (rank, feature)" in _exprs(causes)
    # Side by side in one row: the score, the importance, the causes.
    assert {p["gridPos"]["y"] for p in (scores, importance, causes)} == {scores["gridPos"]["y"]}
    mae, mape, target = (
        _panel("Realised MAE"),
        _panel("Realised MAPE"),
        _panel("Target drift score"),
    )
    assert {p["gridPos"]["y"] for p in (mae, mape, target)} == {mae["gridPos"]["y"]}
    assert _panel("Events outside the training range")["fieldConfig"]["defaults"]["unit"] == (
        "percentunit"
    )


def test_variables_come_from_the_provisioned_datasource() -> None:
    uids = _datasource_uids()
    for dashboard in DASHBOARDS.values():
        for variable in dashboard.get("templating", {}).get("list", []):
            if variable["type"] == "query":
                assert variable["datasource"]["uid"] in uids


def _row_panels(title: str) -> list[dict[str, Any]]:
    """The panels between the row ``title`` and the next row, in the dashboard's order."""
    found: list[dict[str, Any]] = []
    inside, row_y = False, 0
    for panel in DASHBOARDS["appraise-live.json"]["panels"]:
        if panel["type"] == "row":
            if inside:
                break
            inside = panel["title"] == title
            if inside:
                assert panel["collapsed"] is False, f"row {title} must be open"
                row_y = panel["gridPos"]["y"]
        elif inside:
            assert panel["gridPos"]["y"] > row_y, f"{panel['title']} sits above its row"
            found.append(panel)
    assert found, f"no row {title} with panels"
    return found


def test_the_http_price_service_has_its_row() -> None:
    http = _row_panels("HTTP price service")
    everything = "\n".join(_exprs(p) for p in http)
    wanted = {
        "requests per second, recorded": "job:appraise_http_requests:rate1m",
        "latency quantiles, recorded": (
            "job_quantile:appraise_http_request_duration_seconds:histogram_quantile1m"
        ),
        "mean latency, recorded": "job:appraise_http_request_duration_seconds:mean1m",
        "requests by status": "sum by (status) (job_status:appraise_http_requests:rate1m)",
        "errors by reason": "sum by (reason) (rate(appraise_http_prediction_errors_total",
        "10 M band": 'appraise_http_predicted_price_dollars_bucket{le="1e+07"}',
        "20 M band": 'appraise_http_predicted_price_dollars_bucket{le="2e+07"}',
        "predictions in total": "rate(appraise_http_predicted_price_dollars_count",
        "batch size": "appraise_http_batch_size_listings_sum",
        "in-flight requests": "appraise_http_requests_in_progress",
        "publish buffer": "appraise_http_publish_buffer_records",
        "unpublished records": "appraise_http_unpublished_total",
        "API memory": 'process_resident_memory_bytes{job="appraise-api"}',
    }
    missing = {what for what, needle in wanted.items() if needle not in everything}
    assert not missing, missing
    latency = _panel("HTTP latency")
    assert {t["legendFormat"] for t in latency["targets"]} == {"p50", "p95", "p99", "mean"}
    assert latency["fieldConfig"]["defaults"]["unit"] == "s"
    # The line at AppraiseHttpLatencyHigh's threshold.
    steps = latency["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [step["value"] for step in steps] == [None, 0.25]
    assert _panel("API memory")["fieldConfig"]["defaults"]["unit"] == "bytes"
