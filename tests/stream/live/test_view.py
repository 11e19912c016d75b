"""The plain status line and the terminal view of one refresh."""

from __future__ import annotations

import dataclasses
import io
from datetime import datetime
from typing import Any

from rich.console import Console

from stream.live.alerts import parse_prometheus_alerts
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
        "12:00:05 in 50.0/s out 48.0/s dlq 2.0/s lag p99 0.25 s | pred p50 $172k (ref $165k) "
        "| worst psi zoning 0.41, drifting 10% "
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
    assert plain_line(_view(alerts_configured=False, alerts=None)).endswith("drifting 10%")


def _text(view: View) -> str:
    console = Console(file=io.StringIO(), width=160, record=True)
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
        "drifting 10%",
        "zoning",
        "lot_area_sqft",
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
    assert "Alert1" not in text  # only the newest five notifications
    assert "model_error" not in text  # reasons never seen are left out
