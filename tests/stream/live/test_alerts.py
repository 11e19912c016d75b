"""The alerts of Prometheus's and Alertmanager's answers: which are shown, in what order."""

from __future__ import annotations

import pytest

from stream.live.alerts import Alert, parse_alertmanager_alerts, parse_prometheus_alerts
from tests.stream.live.helpers import PROMETHEUS_ALERTS


def test_prometheus_alerts_firing_first_then_pending() -> None:
    alerts = parse_prometheus_alerts(PROMETHEUS_ALERTS)
    assert alerts == (
        Alert("AppraiseFeatureDrift", "firing", "warning", "feature=zoning window=5m"),
        Alert("AppraiseFeatureDrift", "firing", "warning", "feature=neighbourhood window=5m"),
        Alert("AppraisePredictionDrift", "pending", "warning", ""),
    )
    with pytest.raises(ValueError, match="data"):
        parse_prometheus_alerts({"status": "error"})


def _am_alert(name: str, state: str) -> dict[str, object]:
    return {
        "labels": {"alertname": name, "severity": "critical"},
        "annotations": {},
        "status": {"state": state, "silencedBy": [], "inhibitedBy": []},
        "startsAt": "2024-01-01T12:00:00Z",
        "fingerprint": "abc",
    }


def test_alertmanager_alerts_only_the_active_ones() -> None:
    payload = [_am_alert("AppraiseScorerDown", "active"), _am_alert("Muted", "suppressed")]
    assert parse_alertmanager_alerts(payload) == (
        Alert("AppraiseScorerDown", "firing", "critical", ""),
    )
    with pytest.raises(ValueError, match="list"):
        parse_alertmanager_alerts({"alerts": []})
