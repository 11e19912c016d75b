"""docs/metrics.md is the one list of metric names: every series a rule or a dashboard panel
selects is listed there (or is a recorded series)."""

from __future__ import annotations

import pytest

from tests.tools import (
    alert_rules,
    dashboards,
    documented_metrics,
    metric_family,
    panels,
    promql_series_names,
    recorded_names,
    recording_rules,
)


def _histograms() -> set[str]:
    return {name for name, (kind, _) in documented_metrics().items() if kind == "histogram"}


def rule_and_panel_series() -> dict[str, set[str]]:
    """Where each selected series name is used: name -> {rule or panel titles}."""
    used: dict[str, set[str]] = {}
    for rule in recording_rules() + alert_rules():
        where = rule.get("record") or rule["alert"]
        for name in promql_series_names(rule["expr"]):
            used.setdefault(name, set()).add(where)
    for file_name, dashboard in dashboards().items():
        for panel in panels(dashboard):
            for target in panel["targets"]:
                if "rawSql" in target:
                    continue  # SQL (a PostgreSQL panel, the history's) selects no series
                for name in promql_series_names(target["expr"]):
                    used.setdefault(name, set()).add(f"{file_name}: {panel['title']}")
        for variable in dashboard.get("templating", {}).get("list", []):
            query = variable.get("definition", "")
            if query.startswith("label_values("):
                name = query.removeprefix("label_values(").split(",")[0].strip()
                used.setdefault(name, set()).add(f"{file_name}: ${variable['name']}")
    return used


def test_every_metric_of_the_rules_and_dashboards_is_documented() -> None:
    documented = documented_metrics()
    histograms = _histograms()
    undocumented = {
        name: sorted(where)
        for name, where in rule_and_panel_series().items()
        if name not in recorded_names() and metric_family(name, histograms) not in documented
    }
    assert not undocumented, f"add these to docs/metrics.md: {undocumented}"


def test_the_reference_lists_each_metric_once_with_a_known_status() -> None:
    documented = documented_metrics()
    assert len(documented) > 30
    assert {status for _, status in documented.values()} <= {"exported", "assumed", "builtin"}


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (job, le) (rate(appraise_x_bucket{job="a", le=~"1e+07"}[$__rate_interval]))',
            {"appraise_x_bucket"},
        ),
        (
            "a_total / on (job) group_left () b:c:d offset 5m > bool 0.2",
            {"a_total", "b:c:d"},
        ),
        ('count(ALERTS{alertstate="firing"}) or vector(0)', {"ALERTS"}),
        ("histogram_quantile(0.99, x_bucket) > 1e3 unless up == 0", {"x_bucket", "up"}),
    ],
)
def test_series_names_are_found_in_promql(expr: str, names: set[str]) -> None:
    assert promql_series_names(expr) == names
