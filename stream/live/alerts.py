"""The active alerts the live view shows: :class:`Alert` (name, state, severity and its
distinguishing labels), read from Prometheus's ``/api/v1/alerts`` answer
(:func:`parse_prometheus_alerts`, firing and pending) or Alertmanager's ``/api/v2/alerts`` one
(:func:`parse_alertmanager_alerts`, active), sorted firing first, then by severity and name.
Pure: the fetching is in :mod:`stream.live.run`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

AlertState = Literal["firing", "pending"]
_SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
#: Labels every alert has, or that say nothing on one line.
_QUIET_LABELS = frozenset({"alertname", "severity", "instance", "job", "model_version"})


@dataclass(frozen=True, slots=True)
class Alert:
    """One active alert."""

    name: str
    state: AlertState
    severity: str = ""
    detail: str = ""  # its distinguishing labels, e.g. "feature=zoning window=5m"


def parse_prometheus_alerts(payload: object) -> tuple[Alert, ...]:
    """Firing and pending alerts from Prometheus's ``/api/v1/alerts`` JSON (ValueError if it is
    not that)."""
    data = _dict(_dict(payload, "answer").get("data"), "data")
    alerts = []
    for item in _list(data.get("alerts", []), "alerts"):
        alert = _dict(item, "alert")
        state = alert.get("state")
        if state == "firing" or state == "pending":
            alerts.append(_alert(_dict(alert.get("labels", {}), "labels"), state))
    return _sorted(alerts)


def parse_alertmanager_alerts(payload: object) -> tuple[Alert, ...]:
    """Active (not silenced, not inhibited) alerts from Alertmanager's ``/api/v2/alerts`` JSON
    (ValueError if it is not that)."""
    alerts = []
    for item in _list(payload, "answer"):
        alert = _dict(item, "alert")
        if _dict(alert.get("status", {}), "status").get("state") == "active":
            alerts.append(_alert(_dict(alert.get("labels", {}), "labels"), "firing"))
    return _sorted(alerts)


def _dict(value: object, what: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise ValueError(f"expected an object as {what}, got {type(value).__name__}")
    return value


def _list(value: object, what: str) -> list[object]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list as {what}, got {type(value).__name__}")
    return value


def _alert(labels: Mapping[str, object], state: AlertState) -> Alert:
    detail = " ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in _QUIET_LABELS)
    return Alert(str(labels.get("alertname", "?")), state, str(labels.get("severity", "")), detail)


def _sorted(alerts: Iterable[Alert]) -> tuple[Alert, ...]:
    return tuple(
        sorted(
            alerts,
            key=lambda a: (a.state != "firing", _SEVERITY_ORDER.get(a.severity, 3), a.name),
        )
    )
