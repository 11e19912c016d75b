"""The ops tests' own helpers: a missing binary fails under CI and skips elsewhere; configs
for the embedded run and the Alertmanager test profile are derived correctly."""

from __future__ import annotations

import pytest
import yaml

from stream.ops.configs import alertmanager_config
from tests.needs import binary
from tests.tools import PROMETHEUS_DIR, promql_series_names


def test_a_missing_binary_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="is not installed: apt-get install -y"):
        binary("promtool-that-does-not-exist")


def test_a_missing_binary_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        binary("amtool-that-does-not-exist")


def test_alertmanager_test_profile_moves_webhooks_and_shortens_timers() -> None:
    text = (PROMETHEUS_DIR / "alertmanager.yml").read_text()
    config = yaml.safe_load(alertmanager_config(text, "http://127.0.0.1:1234/", group_wait="1s"))
    urls = [
        hook["url"]
        for receiver in config["receivers"]
        for hook in receiver.get("webhook_configs", [])
    ]
    assert urls == [
        "http://127.0.0.1:1234/alerts/other",
        "http://127.0.0.1:1234/alerts/page",
        "http://127.0.0.1:1234/alerts/ticket",
    ]
    route = config["route"]
    assert route["group_wait"] == "1s"
    assert route["group_interval"] == "5m"  # not asked: unchanged
    critical = route["routes"][0]
    assert critical["group_wait"] == "1s"
    assert "group_wait" not in route["routes"][1]  # inherits the root's


def test_promql_comments_and_strings_select_no_series() -> None:
    expr = """
      sum(rate(appraise_a_total[5m]))  # a comment naming words, "quoted" and {braces}
        / on () sum(appraise_b{job="x # not a comment"})
    """
    assert promql_series_names(expr) == {"appraise_a_total", "appraise_b"}
