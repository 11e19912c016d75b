"""The live view itself: a :class:`View` is everything one refresh shows (snapshot, rates,
alerts, notifications, URLs and what is down); :func:`render` draws it as two columns of small
``rich`` tables for a terminal, :func:`plain_line` as one status line for logs, CI and tests.
Pure: the refreshing is in :mod:`stream.live.run`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from stream.live.alerts import Alert
from stream.live.rates import RECENT_S, Rates
from stream.live.snapshot import (
    DRIFT_SCORE_LINE,
    Snapshot,
    WindowState,
    latest_window,
    worst_features,
)

#: Alert notifications shown (the newest).
SHOWN_NOTIFICATIONS = 5
#: Alerts listed one a line; more are counted on one more line (the view fits 100 x 25).
SHOWN_ALERTS = 4


@dataclass(frozen=True, slots=True)
class View:
    """Everything one refresh shows."""

    at: datetime  # wall clock of the refresh
    snapshot: Snapshot
    rates: Rates | None = None  # over the last refresh interval; None on the first
    recent: Rates | None = None  # over up to the last RECENT_S seconds
    alerts: tuple[Alert, ...] | None = None  # None: no alert source configured, or it is down
    alerts_configured: bool = False
    notifications: tuple[str, ...] = ()
    urls: Mapping[str, str] = field(default_factory=dict)
    down: Mapping[str, str] = field(default_factory=dict)  # source -> why


def plain_line(view: View) -> str:
    """One status line, e.g. ``12:00:05 in 49.8/s out 49.8/s dlq 0.0/s lag p99 0.21 s | pred p50
    $172k (ref $165k) score 0.12 | worst living_area_sqft score 0.35 psi 0.03 | alerts: none``;
    with drift, the drifting share and the likely causes follow the worst feature."""
    r = view.rates or Rates(1.0)
    parts = [
        f"{view.at:%H:%M:%S} in {_rate(r.events_in)} out {_rate(r.predictions_out)} "
        f"dlq {_rate(r.dead_letters)} lag p99 {_duration(r.lag_p99_s)}"
    ]
    window = latest_window(view.snapshot)
    if window is not None and "0.5" in window.quantiles:
        score = window.prediction_score
        parts.append(
            f"pred p50 {_dollars(window.quantiles['0.5'])} "
            f"(ref {_dollars(window.reference.get('0.5'))})"
            + ("" if score is None else f" score {score:.2f}")
        )
    elif view.snapshot.aggregate_up:
        parts.append("pred: no window closed yet")
    worst = [] if window is None else worst_features(window, 1)
    if window is not None and worst:
        text = f"worst {worst[0].feature} score {_score(worst[0].score)}"
        if worst[0].psi is not None:
            text += f" psi {worst[0].psi:.2f}"
        if window.drifting_share:
            text += f", drifting {window.drifting_share:.0%}"
        if window.causes:
            text += ", likely causes " + ", ".join(name for name, _ in window.causes)
        parts.append(text)
    each = scorer_lags(view.snapshot)
    if each is not None:
        parts.append(f"lag {each}")
    if view.alerts_configured:
        parts.append(f"alerts: {_alert_summary(view.alerts)}")
    if view.down:
        parts.append("down: " + ", ".join(f"{k} ({v})" for k, v in view.down.items()))
    return " | ".join(parts)


def _alert_summary(alerts: Sequence[Alert] | None) -> str:
    if alerts is None:
        return "?"
    if not alerts:
        return "none"
    counts: dict[tuple[str, str], int] = {}
    for alert in alerts:
        counts[alert.name, alert.state] = counts.get((alert.name, alert.state), 0) + 1
    return ", ".join(
        f"{name} {state}" + (f" x{n}" if n > 1 else "") for (name, state), n in counts.items()
    )


def scorer_lags(snapshot: Snapshot) -> str | None:
    """Each scorer's lag, when there are several: ``scorer 8, scorer-2 0 (idle), scorer-3
    down`` (idle: it holds no partition, a standby)."""
    if not snapshot.scorer_lag:
        return None

    def one(name: str, records: float | None) -> str:
        if records is None:
            return f"{name} down"
        idle = " (idle)" if snapshot.scorer_partitions.get(name) == 0 else ""
        return f"{name} {records:,.0f}{idle}"

    return ", ".join(one(name, records) for name, records in snapshot.scorer_lag.items())


def render(view: View) -> RenderableType:
    """The terminal view: two columns of small tables."""
    snap, r = view.snapshot, view.rates or Rates(1.0)
    title = Text(f"appraise up  {view.at:%H:%M:%S}", style="bold")
    if snap.model_version:
        title.append(f"  model {snap.model_version}", style="dim")

    flow = _table("throughput")
    flow.add_row("events in", _rate(r.events_in))
    flow.add_row("predictions out", _rate(r.predictions_out))
    flow.add_row("dead letters", _rate(r.dead_letters))
    flow.add_row("event lag p50 / p99", f"{_duration(r.lag_p50_s)} / {_duration(r.lag_p99_s)}")
    # One row per service (the stream app has faust's internal topics too): the sum, and the
    # topic that lags most.
    by_service: dict[str, list[tuple[float, str]]] = {}
    for (who, topic), records in snap.consumer_lag.items():
        by_service.setdefault(who, []).append((records, topic))
    for who, lags in sorted(by_service.items()):
        records, topic = max(lags)
        most = f", most on {topic}" if len(lags) > 1 and records > 0 else ""
        flow.add_row(f"consumer lag ({who})", f"{sum(r for r, _ in lags):,.0f} records{most}")
    each = scorer_lags(snap)
    if each is not None:
        flow.add_row("lag by scorer", each)

    window = latest_window(snap)
    preds = _table("predictions", "quantile", "window", "reference", "shift")
    if window is not None:
        end = window.end
        ended = f"{datetime.fromtimestamp(end):%H:%M:%S}" if end and math.isfinite(end) else "?"
        other = "" if window.model_version == snap.model_version else f" ({window.model_version})"
        preds.title = f"predictions: {window.window} window ended {ended}{other}"
        for q, value in sorted(window.quantiles.items(), key=lambda kv: float(kv[0])):
            ref = window.reference.get(q)
            shift = "" if not ref else f"{value / ref - 1:+.1%}"
            preds.add_row(f"p{float(q) * 100:g}", _dollars(value), _dollars(ref), shift)
        preds.caption = _prediction_caption(window)

    share = None if window is None else window.drifting_share
    drifting = "" if share is None else f", drifting {share:.0%}"
    drift = _table(
        f"worst features (score > {DRIFT_SCORE_LINE:g} drifts){drifting}",
        "feature",
        "score",
        "PSI",
    )
    for row in [] if window is None else worst_features(window):
        score = Text(_score(row.score), style="red" if row.drifting else "")
        drift.add_row(row.feature, score, "?" if row.psi is None else f"{row.psi:.3f}")
    if window is not None and window.causes:
        causes = ", ".join(f"{name} {score:.2f}" for name, score in window.causes)
        drift.caption = f"likely causes: {causes}"

    dlq = _table(f"dead letters (total, last {RECENT_S:g} s)", "reason", "total", "recent")
    recent = view.recent.dead_letters_by_reason if view.recent else {}
    for reason, total in sorted(snap.dead_letters.items(), key=lambda kv: -kv[1]):
        if total > 0:
            dlq.add_row(reason, f"{total:,.0f}", f"{recent.get(reason, 0.0):,.0f}")
    if snap.scorer_up and not any(snap.dead_letters.values()):
        dlq.add_row("none", "", "")

    alerts = _table("alerts", "alert", "state", "detail")
    if not view.alerts_configured:
        alerts.add_row("no Prometheus or Alertmanager configured", "", "")
    elif view.alerts is None:
        alerts.add_row("unknown", "", "")
    elif not view.alerts:
        alerts.add_row("none", "", "")
    # Firing first; one line each (a drift incident raises several at once), the rest counted.
    ordered = sorted(view.alerts or (), key=lambda a: (a.state != "firing", a.name, a.detail))
    for alert in ordered[:SHOWN_ALERTS]:
        style = "red" if alert.state == "firing" else "yellow"
        alerts.add_row(alert.name, Text(alert.state, style=style), alert.detail)
    if len(ordered) > SHOWN_ALERTS:
        alerts.add_row(f"+ {len(ordered) - SHOWN_ALERTS} more", "", "")
    for column in alerts.columns:
        column.no_wrap, column.overflow = True, "ellipsis"
    alerts.columns[1].min_width = len("pending")

    notes = _table("last notifications", cells=1)
    for line in view.notifications[-SHOWN_NOTIFICATIONS:]:
        notes.add_row(line)

    # One line (wrapped if need be): the view must fit 100 x 25.
    links = Text("urls", style="bold")
    for label, url in view.urls.items():
        links.append(f"  {label} {url}")
    for source, why in view.down.items():
        links.append(f"  {source} down: {why}", style="red")

    grid = Table.grid(expand=True, padding=(0, 2, 1, 0))
    grid.add_column(ratio=1)
    grid.add_column(ratio=1)
    grid.add_row(flow, preds)
    grid.add_row(alerts, drift)
    grid.add_row(dlq, notes)
    return Group(title, grid, links)


def _table(title: str, *columns: str, cells: int = 2) -> Table:
    # No borders: the whole view must fit a laptop terminal (about 40 rows) beside the logs.
    table = Table(
        title=title,
        title_justify="left",
        title_style="bold",
        caption_justify="left",
        box=box.SIMPLE_HEAD if columns else None,
        show_edge=False,
        show_header=bool(columns),
        header_style="dim",
        pad_edge=False,
        expand=True,
    )
    for column in columns or ("",) * cells:
        table.add_column(column, overflow="fold")
    return table


def _prediction_caption(window: WindowState) -> Text:
    """``3,000 events, drift score 0.10 (PSI 0.020)``: the score red above 1."""
    text = Text(f"{window.events or 0:,.0f} events")
    score, psi = window.prediction_score, window.prediction_psi
    if score is not None:
        text.append(", drift score ")
        text.append(_score(score), style="red" if score > DRIFT_SCORE_LINE else "")
    if psi is not None:
        text.append(f" (PSI {psi:.3f})" if score is not None else f", PSI {psi:.3f}")
    return text


def _score(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f}"


def _rate(value: float | None) -> str:
    return "?/s" if value is None else f"{value:.1f}/s"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    for limit, unit, size in ((120.0, "s", 1.0), (7_200.0, "min", 60.0), (172_800.0, "h", 3600.0)):
        if seconds < limit:
            return f"{seconds / size:.2f} {unit}" if unit == "s" else f"{seconds / size:.1f} {unit}"
    return f"{seconds / 86_400.0:.1f} d"


def _dollars(value: float | None) -> str:
    if value is None:
        return "?"
    if abs(value) >= 1e6:
        return f"${value / 1e6:.2f}M"
    if abs(value) >= 1e3:
        return f"${value / 1e3:.0f}k"
    return f"${value:.0f}"
