"""The live view of ``appraise up``: throughput, lag, dead letters, drift and alerts at a glance.

Every ``interval_s`` it reads the scorer's and the stream app's ``/metrics`` pages and the alerts
(Prometheus, else Alertmanager), all at once with short timeouts; a source that does not answer
is shown as down, never raised. On a terminal the view is a ``rich.live.Live`` table; elsewhere
(logs, CI, tests) one plain status line every ``plain_every_s`` seconds.

Most of it is pure: :meth:`Snapshot.from_families` (parsed metric pages in), :func:`compute_rates`
(two snapshots and the time between them), :func:`render` and :func:`plain_line` (a :class:`View`
in). Only :func:`run_live_view` does I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import defaultdict, deque
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, TypeVar

import aiohttp
import orjson
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from stream.settings import AggregateSettings

#: The stream app's default ``psi_threshold`` (``appraise up`` passes the one in force).
DEFAULT_PSI_THRESHOLD: float = float(AggregateSettings.model_fields["psi_threshold"].default)
#: "Recent" dead letters are those of the last minute: long enough to see a burst at a 2 s refresh.
RECENT_S = 60.0
#: Worst-drifting features shown.
TOP_FEATURES = 5
#: Alert notifications shown (the newest).
SHOWN_NOTIFICATIONS = 5
#: Every request's whole budget, in seconds: all sources are local, a healthy one answers in ms.
FETCH_TIMEOUT_S = 1.0

T = TypeVar("T")

SCORER = "scorer metrics"
STREAM = "stream metrics"
PROMETHEUS = "prometheus"
ALERTMANAGER = "alertmanager"


@dataclass(frozen=True, slots=True)
class LiveSources:
    """Where the live view reads from."""

    scorer_metrics_url: str  # e.g. http://127.0.0.1:9400/metrics
    stream_metrics_url: str  # e.g. http://127.0.0.1:9401/metrics
    prometheus_url: str | None = None  # base URL; firing+pending alerts from /api/v1/alerts
    alertmanager_url: str | None = None  # base URL; active alerts (/api/v2/alerts) if no prometheus
    urls: Mapping[str, str] = field(default_factory=dict)  # label -> URL, shown as is
    notifications: Callable[[], Sequence[str]] = lambda: ()  # newest last, one line each
    psi_threshold: float = DEFAULT_PSI_THRESHOLD  # the stream app's, to mark drifting features


# -- what the pages say ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WindowState:
    """The stream app's gauges of the last closed window of one kind and model version."""

    window: str
    model_version: str
    end: float | None = None  # Unix seconds (event time)
    events: float | None = None
    quantiles: Mapping[str, float] = field(default_factory=dict)  # "0.5" -> US dollars
    reference: Mapping[str, float] = field(default_factory=dict)  # same quantiles, reference
    prediction_psi: float | None = None
    drifting_share: float | None = None  # 0..1
    feature_psi: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the two metric pages said at one moment (``None``/empty where a page was down)."""

    scorer_up: bool = False
    stream_up: bool = False
    model_version: str | None = None
    events_consumed: float | None = None
    predictions: float | None = None  # summed over model versions
    dead_letters: Mapping[str, float] = field(default_factory=dict)  # reason -> total
    event_lag_buckets: tuple[tuple[float, float], ...] = ()  # (upper bound s, cumulative count)
    consumer_lag: Mapping[tuple[str, str], float] = field(default_factory=dict)  # (who, topic)
    windows: tuple[WindowState, ...] = ()

    @classmethod
    def from_families(
        cls, scorer: Iterable[Metric] | None, stream: Iterable[Metric] | None
    ) -> Snapshot:
        """Read the families of each page (``None``: that page did not answer)."""
        s = _samples(scorer or ())
        a = _samples(stream or ())
        predictions = s.get("appraise_predictions_total")
        lag: dict[tuple[str, str], float] = defaultdict(float)
        for who, samples in (("scorer", s), ("stream", a)):
            for labels, value in samples.get("appraise_consumer_lag_records", ()):
                lag[who, labels.get("topic", "?")] += value
        buckets = sorted(
            (float(labels["le"]), value)
            for labels, value in s.get("appraise_event_lag_seconds_bucket", ())
            if "le" in labels
        )
        return cls(
            scorer_up=scorer is not None,
            stream_up=stream is not None,
            model_version=next(
                (lb["version"] for lb, _ in s.get("appraise_model_info", ()) if "version" in lb),
                None,
            ),
            events_consumed=_single(s, "appraise_events_consumed_total"),
            predictions=None if predictions is None else sum(v for _, v in predictions),
            dead_letters={
                labels.get("reason", "?"): value
                for labels, value in s.get("appraise_scoring_errors_total", ())
            },
            event_lag_buckets=tuple(buckets),
            consumer_lag=dict(lag),
            windows=_windows(a),
        )


_Samples = dict[str, list[tuple[dict[str, str], float]]]


def _samples(families: Iterable[Metric]) -> _Samples:
    out: _Samples = defaultdict(list)
    for family in families:
        for sample in family.samples:
            if sample.name.startswith("appraise_"):
                out[sample.name].append((sample.labels, sample.value))
    return out


def _single(samples: _Samples, name: str) -> float | None:
    found = samples.get(name)
    return None if not found else found[0][1]


def _windows(samples: _Samples) -> tuple[WindowState, ...]:
    def key(labels: Mapping[str, str]) -> tuple[str, str]:
        return labels.get("window", ""), labels.get("model_version", "")

    def scalar(name: str) -> dict[tuple[str, str], float]:
        return {key(labels): value for labels, value in samples.get(name, ())}

    def keyed(name: str, label: str) -> dict[tuple[str, str], dict[str, float]]:
        out: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
        for labels, value in samples.get(name, ()):
            out[key(labels)][labels.get(label, "")] = value
        return out

    events = scalar("appraise_window_events")
    end = scalar("appraise_window_end_timestamp_seconds")
    psi = scalar("appraise_prediction_psi")
    share = scalar("appraise_drifting_features_ratio")
    quantiles = keyed("appraise_prediction_quantile_dollars", "quantile")
    features = keyed("appraise_feature_psi", "feature")
    reference: dict[str, dict[str, float]] = defaultdict(dict)
    for labels, value in samples.get("appraise_reference_prediction_quantile_dollars", ()):
        reference[labels.get("model_version", "")][labels.get("quantile", "")] = value
    return tuple(
        WindowState(
            window=k[0],
            model_version=k[1],
            end=end.get(k),
            events=events.get(k),
            quantiles=quantiles.get(k, {}),
            reference=reference.get(k[1], {}),
            prediction_psi=psi.get(k),
            drifting_share=share.get(k),
            feature_psi=features.get(k, {}),
        )
        for k in sorted({*events, *end, *quantiles, *features})
    )


def latest_window(snapshot: Snapshot) -> WindowState | None:
    """The last closed window: the latest end among those with quantiles (else among all); on a
    tie (a 1 m tumbling and a 5 m hopping window close together) the one with more events."""
    candidates = [w for w in snapshot.windows if w.quantiles] or list(snapshot.windows)
    if not candidates:
        return None
    return max(candidates, key=lambda w: (w.end or -math.inf, w.events or 0.0, w.window))


def worst_features(window: WindowState, n: int = TOP_FEATURES) -> list[tuple[str, float]]:
    """The ``n`` features with the highest PSI, highest first (ties by name)."""
    return sorted(window.feature_psi.items(), key=lambda item: (-item[1], item[0]))[:n]


# -- rates -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rates:
    """What changed between two snapshots (``None`` where the scorer was down in either)."""

    elapsed_s: float
    events_in: float | None = None  # consumed per second
    predictions_out: float | None = None  # per second
    dead_letters: float | None = None  # per second
    dead_letters_by_reason: Mapping[str, float] = field(default_factory=dict)  # counts in span
    lag_p50_s: float | None = None  # event lag of the predictions made in the span
    lag_p99_s: float | None = None


def compute_rates(before: Snapshot, after: Snapshot, elapsed_s: float) -> Rates:
    """Rates over ``elapsed_s`` seconds, and event-lag quantiles from the bucket increases.

    A counter that went down was reset (the scorer restarted): its new value is the increase,
    as Prometheus's ``rate`` does.
    """
    if not elapsed_s > 0:
        raise ValueError(f"elapsed_s must be positive seconds, got {elapsed_s!r}")
    if not (before.scorer_up and after.scorer_up):
        return Rates(elapsed_s)
    by_reason = {
        reason: _increase(before.dead_letters.get(reason, 0.0), total)
        for reason, total in after.dead_letters.items()
    }
    lag = _bucket_increase(before.event_lag_buckets, after.event_lag_buckets)
    return Rates(
        elapsed_s,
        events_in=_per_s(before.events_consumed, after.events_consumed, elapsed_s),
        predictions_out=_per_s(before.predictions, after.predictions, elapsed_s),
        dead_letters=sum(by_reason.values()) / elapsed_s if by_reason else None,
        dead_letters_by_reason=by_reason,
        lag_p50_s=None if lag is None else histogram_quantile(0.5, lag),
        lag_p99_s=None if lag is None else histogram_quantile(0.99, lag),
    )


def _increase(before: float, after: float) -> float:
    return after - before if after >= before else after


def _per_s(before: float | None, after: float | None, elapsed_s: float) -> float | None:
    if before is None or after is None:
        return None
    return _increase(before, after) / elapsed_s


def _bucket_increase(
    before: Sequence[tuple[float, float]], after: Sequence[tuple[float, float]]
) -> list[tuple[float, float]] | None:
    if not after or [b for b, _ in before] != [b for b, _ in after]:
        return None  # no histogram, or its edges changed with a restart
    if any(a < b for (_, b), (_, a) in zip(before, after, strict=True)):
        return list(after)  # reset
    return [(bound, a - b) for (bound, b), (_, a) in zip(before, after, strict=True)]


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus's ``histogram_quantile`` of cumulative ``(upper bound, count)`` buckets sorted
    by bound (the last ``+Inf``): linear inside the bucket; in the ``+Inf`` bucket the highest
    finite bound. ``None`` when there are no observations."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower if len(buckets) > 1 else None
            if count <= below:
                return lower
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


# -- alerts ------------------------------------------------------------------------------------

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


# -- the view ----------------------------------------------------------------------------------


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
    psi_threshold: float = DEFAULT_PSI_THRESHOLD


def plain_line(view: View) -> str:
    """One status line, e.g. ``12:00:05 in 49.8/s out 49.8/s dlq 0.0/s lag p99 0.21 s | pred p50
    $172k (ref $165k) | worst psi living_area_sqft 0.03 | alerts: none``."""
    r = view.rates or Rates(1.0)
    parts = [
        f"{view.at:%H:%M:%S} in {_rate(r.events_in)} out {_rate(r.predictions_out)} "
        f"dlq {_rate(r.dead_letters)} lag p99 {_duration(r.lag_p99_s)}"
    ]
    window = latest_window(view.snapshot)
    if window is not None and "0.5" in window.quantiles:
        parts.append(
            f"pred p50 {_dollars(window.quantiles['0.5'])} "
            f"(ref {_dollars(window.reference.get('0.5'))})"
        )
    elif view.snapshot.stream_up:
        parts.append("pred: no window closed yet")
    if window is not None and window.feature_psi:
        name, psi = worst_features(window, 1)[0]
        drifting = f", drifting {window.drifting_share:.0%}" if window.drifting_share else ""
        parts.append(f"worst psi {name} {psi:.2f}{drifting}")
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

    window = latest_window(snap)
    preds = _table("predictions", "quantile", "window", "reference", "shift")
    if window is not None:
        end = window.end
        ended = f"{datetime.fromtimestamp(end):%H:%M:%S}" if end and math.isfinite(end) else "?"
        preds.title = (
            f"predictions: {window.window} window ended {ended}, "
            f"{window.events or 0:,.0f} events ({window.model_version})"
        )
        for q, value in sorted(window.quantiles.items(), key=lambda kv: float(kv[0])):
            ref = window.reference.get(q)
            shift = "" if not ref else f"{value / ref - 1:+.1%}"
            preds.add_row(f"p{float(q) * 100:g}", _dollars(value), _dollars(ref), shift)
        if window.prediction_psi is not None:
            preds.caption = f"prediction PSI {window.prediction_psi:.3f}"

    share = None if window is None else window.drifting_share
    drifting = "" if share is None else f", drifting {share:.0%}"
    drift = _table(
        f"worst features (PSI > {view.psi_threshold:g} drifts){drifting}", "feature", "PSI"
    )
    for name, psi in [] if window is None else worst_features(window):
        drift.add_row(name, Text(f"{psi:.3f}", style="red" if psi > view.psi_threshold else ""))

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
    for alert in view.alerts or ():
        style = "red" if alert.state == "firing" else "yellow"
        alerts.add_row(alert.name, Text(alert.state, style=style), alert.detail)

    notes = _table("last notifications", cells=1)
    for line in view.notifications[-SHOWN_NOTIFICATIONS:]:
        notes.add_row(line)

    links = _table("urls")
    for label, url in view.urls.items():
        links.add_row(label, url)
    for source, why in view.down.items():
        links.add_row(Text(source, style="red"), Text(f"down: {why}", style="red"))

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


# -- running -----------------------------------------------------------------------------------


class _History:
    """Snapshots of the last ``span_s`` seconds: rates over the last refresh and the span."""

    def __init__(self, span_s: float = RECENT_S) -> None:
        self._span_s = span_s
        self._items: deque[tuple[float, Snapshot]] = deque()

    def add(self, now: float, snapshot: Snapshot) -> tuple[Rates | None, Rates | None]:
        last = self._items[-1] if self._items else None
        while self._items and now - self._items[0][0] > self._span_s:
            self._items.popleft()
        first = self._items[0] if self._items else last
        self._items.append((now, snapshot))
        if last is None or first is None or now <= last[0]:
            return None, None
        return (
            compute_rates(last[1], snapshot, now - last[0]),
            compute_rates(first[1], snapshot, now - first[0]),
        )


class _Down(Exception):
    """A source that did not answer usefully; the message says why, for the view."""


async def _get(session: aiohttp.ClientSession, url: str) -> bytes:
    try:
        async with session.get(url) as response:
            if response.status != 200:
                raise _Down(f"HTTP {response.status}")
            return await response.read()
    except TimeoutError:
        raise _Down("timeout") from None
    except aiohttp.ClientConnectionError:
        raise _Down("no answer") from None
    except aiohttp.ClientError as exc:
        raise _Down(type(exc).__name__) from None


async def _metrics(session: aiohttp.ClientSession, url: str) -> list[Metric]:
    body = await _get(session, url)
    try:
        return list(text_string_to_metric_families(body.decode("utf-8", "replace")))
    except ValueError:
        raise _Down("not a metrics page") from None


async def _alerts(session: aiohttp.ClientSession, sources: LiveSources) -> tuple[Alert, ...]:
    try:
        if sources.prometheus_url is not None:
            body = await _get(session, sources.prometheus_url.rstrip("/") + "/api/v1/alerts")
            return parse_prometheus_alerts(orjson.loads(body))
        if sources.alertmanager_url is not None:
            query = "/api/v2/alerts?active=true&silenced=false&inhibited=false"
            body = await _get(session, sources.alertmanager_url.rstrip("/") + query)
            return parse_alertmanager_alerts(orjson.loads(body))
    except ValueError:
        raise _Down("unreadable answer") from None
    return ()


def _alert_source(sources: LiveSources) -> str | None:
    if sources.prometheus_url is not None:
        return PROMETHEUS
    return None if sources.alertmanager_url is None else ALERTMANAGER


def _outcome(name: str, result: T | BaseException, down: dict[str, str]) -> T | None:
    if isinstance(result, _Down):
        down[name] = str(result)
        return None
    if isinstance(result, BaseException):
        raise result  # a bug or a cancellation, not a source that is down
    return result


async def _refresh(session: aiohttp.ClientSession, sources: LiveSources, history: _History) -> View:
    """Read every source at once (gather cancels them all if this is cancelled)."""
    scorer, stream, alerts = await asyncio.gather(
        _metrics(session, sources.scorer_metrics_url),
        _metrics(session, sources.stream_metrics_url),
        _alerts(session, sources),
        return_exceptions=True,
    )
    down: dict[str, str] = {}
    alert_source = _alert_source(sources)
    snapshot = Snapshot.from_families(
        _outcome(SCORER, scorer, down), _outcome(STREAM, stream, down)
    )
    alerts_now = _outcome(alert_source or "alerts", alerts, down)
    rates, recent = history.add(time.monotonic(), snapshot)
    try:
        notifications = tuple(sources.notifications())
    except Exception as exc:  # noqa: BLE001 -- someone else's callback must not end the view
        notifications = ()
        down["notifications"] = type(exc).__name__
    return View(
        at=datetime.now().astimezone(),
        snapshot=snapshot,
        rates=rates,
        recent=recent,
        alerts=alerts_now if alert_source is not None else None,
        alerts_configured=alert_source is not None,
        notifications=notifications,
        urls=sources.urls,
        down=down,
        psi_threshold=sources.psi_threshold,
    )


async def run_live_view(
    sources: LiveSources,
    stop: asyncio.Event,
    *,
    console: Console | None = None,
    interval_s: float = 2.0,
    plain_every_s: float = 10.0,
) -> None:
    """Refresh until stop is set; never raises on a source that does not answer (show it as down).

    Args:
        sources: the metric pages, alert APIs, URLs and notifications to show.
        stop: set it to end the view (at once: a refresh under way is abandoned).
        console: where to draw (default: a new ``Console()`` on stdout). A terminal gets a
            ``rich.live.Live`` view; anything else one plain line every ``plain_every_s``.
        interval_s: seconds between refreshes (2 s by default).
        plain_every_s: seconds between plain lines (10 s by default); the first comes once rates
            are known, at the second refresh.
    """
    console = console if console is not None else Console()
    history = _History()
    timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        if console.is_terminal:
            waiting = Text("appraise up: reading the metrics...", style="dim")
            with Live(waiting, console=console, auto_refresh=False) as live:
                while not stop.is_set():
                    started = time.monotonic()
                    view = await _unless_stopped(stop, _refresh(session, sources, history))
                    if view is None:
                        break
                    live.update(render(view), refresh=True)
                    await _pause(stop, interval_s - (time.monotonic() - started))
            return
        last_line = -math.inf
        while not stop.is_set():
            started = time.monotonic()
            view = await _unless_stopped(stop, _refresh(session, sources, history))
            if view is None:
                break
            if view.rates is not None and started - last_line >= plain_every_s:
                last_line = started
                console.out(plain_line(view), highlight=False)
            await _pause(stop, interval_s - (time.monotonic() - started))


async def _unless_stopped(stop: asyncio.Event, work: Coroutine[object, object, T]) -> T | None:
    """``work``'s result, or None once ``stop`` is set first (``work`` is then cancelled), so
    Ctrl-C does not wait out a request to a hung source."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, stopped):
            pending.cancel()  # no-op when done
        await asyncio.gather(task, stopped, return_exceptions=True)
    return None if task.cancelled() else task.result()


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max(seconds, 0.0))
