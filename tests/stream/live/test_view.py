"""The plain status line and the terminal view of one refresh."""

from __future__ import annotations

import dataclasses
import io
from datetime import datetime
from typing import Any

from rich.console import Console

from stream.live.alerts import Alert, parse_prometheus_alerts
from stream.live.rates import compute_rates
from stream.live.snapshot import Snapshot
from stream.live.view import View, plain_line, render
from tests.stream.live.helpers import PROMETHEUS_ALERTS, two_scorer_snapshots


def _view(**changes: Any) -> View:
    """A view 2 s after the first snapshot, two alerts firing and one pending."""
    before, after, _ = two_scorer_snapshots()
    view = View(
        at=datetime(2024, 1, 1, 12, 0, 5),
        snapshot=after,
        rates=compute_rates(before, after, 2.0),
        recent=compute_rates(before, after, 2.0),
        alerts=parse_prometheus_alerts(PROMETHEUS_ALERTS),
        alerts_configured=True,
        notifications=tuple(f"12:00:0{i} [FIRING:1] Alert{i}" for i in range(7)),
        urls={"Prometheus": "http://127.0.0.1:9090", "Alertmanager": "http://127.0.0.1:9093"},
    )
    return dataclasses.replace(view, **changes)


def test_the_plain_line() -> None:
    assert plain_line(_view()) == (
        "12:00:05 in 50.0/s out 48.0/s dlq 2.0/s lag p99 0.25 s "
        "| pred p50 $172k (ref $165k) score 0.10 "
        "| worst zoning score 2.05 psi 0.41, drifting 10%, likely causes neighbourhood, zoning "
        "| alerts: AppraiseFeatureDrift firing x2, AppraisePredictionDrift pending"
    )


def test_the_plain_line_says_what_is_down_and_what_is_unknown() -> None:
    _, _, aggregate_only = two_scorer_snapshots()
    line = plain_line(
        _view(
            snapshot=Snapshot(),
            rates=compute_rates(aggregate_only, Snapshot(), 2.0),
            alerts=None,
            down={"scorer metrics": "no answer", "aggregate metrics": "timeout"},
        )
    )
    assert line == (
        "12:00:05 in ?/s out ?/s dlq ?/s lag p99 ? | alerts: ? "
        "| down: scorer metrics (no answer), aggregate metrics (timeout)"
    )
    assert plain_line(_view(alerts_configured=False, alerts=None)).endswith("neighbourhood, zoning")


def _text(view: View, width: int = 160) -> str:
    console = Console(file=io.StringIO(), width=width, height=25, record=True)
    console.print(render(view))
    return console.export_text()


def test_the_terminal_view_shows_every_part() -> None:
    text = _text(_view(down={"prometheus": "timeout"}))
    for expected in (
        "50.0/s",
        "0.05 s / 0.25 s",  # event lag p50 / p99
        "consumer lag (scorer)",
        "consumer lag (aggregate)",
        "4 records, most on prediction-panes",  # the stream app's topics in one row
        "5m window ended",
        "$172k",
        "+4.2%",  # p50 against the reference
        "3,000 events, drift score 0.10 (PSI 0.020)",  # the prediction's
        "worst features (score > 1 drifts), drifting 10%",
        "zoning",
        "lot_area_sqft",
        "likely causes: neighbourhood 1.35, zoning 2.05",
        "invalid_json",
        "AppraiseFeatureDrift",
        "feature=neighbourhood window=5m",
        "pending",
        "Alert6",  # the newest notification
        "http://127.0.0.1:9093",
        "down: timeout",
    ):
        assert expected in text, expected
    assert "garage_cars" not in text  # sixth worst
    rows = {line.split()[0]: line.split()[1:3] for line in _drift_rows(text)}
    assert rows == {
        "zoning": ["2.05", "0.410"],
        "neighbourhood": ["1.35", "0.270"],
        "living_area_sqft": ["0.60", "0.120"],
        "lot_area_sqft": ["0.40", "0.080"],
        "year_built": ["0.30", "0.120"],
    }
    assert list(rows) == [
        "zoning",
        "neighbourhood",
        "living_area_sqft",
        "lot_area_sqft",
        "year_built",
    ]
    assert "Alert1" not in text  # only the newest five notifications
    assert "model_error" not in text  # reasons never seen are left out


def _drift_rows(text: str) -> list[str]:
    """The worst-features table's rows: the right half of the lines after its header."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if "worst features" in line)
    half = lines[start].index("worst features")
    return [line[half:] for line in lines[start + 3 : start + 8]]


def test_the_terminal_view_fits_100_by_25() -> None:
    text = _text(_view(down={"prometheus": "timeout"}), width=100)
    lines = text.rstrip("\n").splitlines()
    assert len(lines) <= 25, text
    assert max(len(line.rstrip()) for line in lines) <= 100
    for expected in ("likely causes: neighbourhood 1.35", "drift score 0.10", "Alert6"):
        assert expected in text, expected


def test_a_drift_incident_s_many_alerts_still_fit_100_by_25() -> None:
    names = ["AppraiseFeatureDrift"] * 3 + ["AppraisePredictionDrift", "AppraiseDatasetDrift"]
    names += ["AppraiseHighErrorRatio", "AppraiseTargetDrift", "AppraiseFeatureOutOfRange"]
    alerts = tuple(
        Alert(name, "firing" if i % 3 else "pending", "warning", f"feature=f{i} window=5m")
        for i, name in enumerate(names)
    )
    text = _text(_view(alerts=alerts, down={"prometheus": "timeout"}), width=100)
    lines = text.rstrip("\n").splitlines()
    assert len(lines) <= 25, text
    assert max(len(line.rstrip()) for line in lines) <= 100
    assert "+ 4 more" in text
    alert_rows = [line[:48] for line in lines if line.startswith("Appraise")]
    assert len(alert_rows) == 4
    assert all("firing" in row for row in alert_rows)  # firing ones first, one line each


def test_drifting_scores_are_red() -> None:
    console = Console(file=io.StringIO(), width=160, force_terminal=True, color_system="standard")
    console.print(render(_view()))
    out = console.file.getvalue()  # type: ignore[attr-defined]
    red = "\x1b[31m"
    assert f"{red}2.05" in out  # zoning
    assert f"{red}1.35" in out  # neighbourhood
    assert f"{red}0.60" not in out  # living_area_sqft: under 1
    assert f"{red}0.10" not in out  # the prediction's score
