"""The live view of ``appraise up``: snapshots of the real metric pages, rates and lag quantiles
from two snapshots, the plain line and the terminal view, and a run against live servers."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from consumers.metrics import ScorerMetrics
from consumers.settings import ScorerSettings
from stream.aggregate.metrics import AggregateMetrics
from stream.aggregate.summary import Distribution, Drift, FeatureDrift, WindowSummary
from stream.aggregate.windows import Window
from stream.features import CATEGORICAL_FEATURES, FEATURES
from stream.live import (
    Alert,
    LiveSources,
    Snapshot,
    View,
    compute_rates,
    histogram_quantile,
    latest_window,
    parse_alertmanager_alerts,
    parse_prometheus_alerts,
    plain_line,
    render,
    run_live_view,
    worst_features,
)
from tests.needs import until

#: End of the last closed 5 m window of the stream page (Unix seconds).
WINDOW_END = 1_700_000_100.0
#: The PSI of the worst features; every other feature has 0.01.
WORST_PSI = {
    "zoning": 0.41,
    "neighbourhood": 0.27,
    "living_area_sqft": 0.12,
    "year_built": 0.12,
    "lot_area_sqft": 0.08,
    "garage_cars": 0.05,  # sixth: not shown
}
QUANTILES = {0.1: 120_000.0, 0.5: 172_000.0, 0.9: 260_000.0, 0.99: 410_000.0}
REFERENCE = {0.1: 118_000.0, 0.5: 165_000.0, 0.9: 250_000.0, 0.99: 400_000.0}


def _families(registry: CollectorRegistry) -> list[Metric]:
    return list(text_string_to_metric_families(generate_latest(registry).decode()))


def _scorer() -> ScorerMetrics:
    metrics = ScorerMetrics(CollectorRegistry(), ScorerSettings(), process_collectors=False)
    metrics.set_model("v1")
    return metrics


def _summary(
    name: str, end: float, version: str, events: int, *, drift: bool = True
) -> WindowSummary:
    size = 300.0 if name == "5m" else 60.0
    features = {
        feature: FeatureDrift(
            psi=WORST_PSI.get(feature, 0.01),
            ks=float("nan") if feature in CATEGORICAL_FEATURES else 0.05,
            missing_rate=0.0,
            unseen_rate=0.0 if feature in CATEGORICAL_FEATURES else float("nan"),
        )
        for feature in FEATURES
    }
    return WindowSummary(
        window=Window(end, name, end - size, version),
        reference_version=version,
        events=events,
        panes=events // 10,
        min_events=200,
        quantiles=QUANTILES if drift else None,
        reference_quantiles=REFERENCE,
        drift=Drift(
            prediction_psi=0.02,
            prediction_ks=0.03,
            features=features,
            drifting=("zoning", "neighbourhood"),
            prediction_distribution=Distribution(reference=(0.5, 0.5), current=(0.5, 0.5)),
            distributions={},
        )
        if drift
        else None,
    )


def _stream() -> AggregateMetrics:
    """The stream app after: an old model's window, the 5 m window that is the latest with
    values, and a later 1 m window with too few events (counts, no quantiles)."""
    metrics = AggregateMetrics(CollectorRegistry(), ["1m", "5m"], process_collectors=False)
    metrics.window_closed(_summary("1m", WINDOW_END - 600, "v0", 900))
    metrics.window_closed(_summary("1m", WINDOW_END, "v1", 600))
    metrics.window_closed(_summary("5m", WINDOW_END, "v1", 3_000))
    metrics.window_closed(_summary("1m", WINDOW_END + 60, "v1", 12, drift=False))
    metrics.set_lag({("prediction-panes", 0): 4, ("sales", 0): 0})
    return metrics


def _two_scorer_snapshots() -> tuple[Snapshot, Snapshot, Snapshot]:
    """Before, after (2 s later) and a stream-only snapshot's worth of pages."""
    scorer, stream = _scorer(), _stream()
    scorer.events_consumed.inc(1_000)
    scorer.predictions.labels("v1").inc(980)
    scorer.scoring_errors.labels("invalid_json").inc(15)
    scorer.scoring_errors.labels("missing_field").inc(5)
    scorer.observe_event_lags(np.full(1_000, 5.0))  # old: must not weigh on the recent quantiles
    scorer.set_lag("listings", 0, 7)
    scorer.set_lag("listings", 1, 5)
    stream_families = _families(stream.registry)
    before = Snapshot.from_families(_families(scorer.registry), stream_families)
    scorer.events_consumed.inc(100)
    scorer.predictions.labels("v1").inc(96)
    scorer.scoring_errors.labels("invalid_json").inc(3)
    scorer.scoring_errors.labels("out_of_range").inc(1)
    scorer.observe_event_lags(np.array([0.03] * 60 + [0.2] * 40))
    scorer.set_lag("listings", 0, 3)
    after = Snapshot.from_families(_families(scorer.registry), stream_families)
    stream_only = Snapshot.from_families(None, stream_families)
    return before, after, stream_only


def test_a_snapshot_reads_both_pages() -> None:
    _, after, _ = _two_scorer_snapshots()
    assert after.scorer_up
    assert after.stream_up
    assert after.model_version == "v1"
    assert after.events_consumed == 1_100
    assert after.predictions == 1_076
    assert after.dead_letters["invalid_json"] == 18
    assert after.dead_letters["model_error"] == 0  # every reason is on the page at 0
    assert after.consumer_lag == {
        ("scorer", "listings"): 8,
        ("stream", "prediction-panes"): 4,
        ("stream", "sales"): 0,
    }
    assert after.event_lag_buckets[-1] == (float("inf"), 1_100)


def test_the_latest_closed_window_with_values_is_shown() -> None:
    _, after, _ = _two_scorer_snapshots()
    window = latest_window(after)
    assert window is not None
    # The later 1 m window has no quantiles; the 5 m one ties the other 1 m one and has more
    # events; the old model's window is older.
    assert (window.window, window.model_version, window.end) == ("5m", "v1", WINDOW_END)
    assert window.events == 3_000
    assert window.quantiles == {f"{q:g}": v for q, v in QUANTILES.items()}
    assert window.reference == {f"{q:g}": v for q, v in REFERENCE.items()}
    assert window.drifting_share == pytest.approx(2 / len(FEATURES))
    assert worst_features(window) == [
        ("zoning", 0.41),
        ("neighbourhood", 0.27),
        ("living_area_sqft", 0.12),
        ("year_built", 0.12),
        ("lot_area_sqft", 0.08),
    ]


def test_rates_and_lag_quantiles_come_from_the_increase_between_snapshots() -> None:
    before, after, _ = _two_scorer_snapshots()
    rates = compute_rates(before, after, 2.0)
    assert rates.events_in == pytest.approx(50.0)
    assert rates.predictions_out == pytest.approx(48.0)
    assert rates.dead_letters == pytest.approx(2.0)
    assert {k: v for k, v in rates.dead_letters_by_reason.items() if v} == {
        "invalid_json": 3,
        "out_of_range": 1,
    }
    # 60 lags in (0.025, 0.05], 40 in (0.1, 0.25]; the 1,000 older ones at 5 s do not count.
    assert rates.lag_p50_s == pytest.approx(0.025 + 0.025 * 50 / 60)
    assert rates.lag_p99_s == pytest.approx(0.1 + 0.15 * 39 / 40)


def test_a_restarted_scorer_counts_from_zero_and_a_down_one_has_no_rates() -> None:
    _, after, stream_only = _two_scorer_snapshots()
    restarted = _scorer()
    restarted.events_consumed.inc(30)
    restarted.observe_event_lags(np.full(10, 0.2))
    fresh = Snapshot.from_families(_families(restarted.registry), None)
    rates = compute_rates(after, fresh, 2.0)
    assert rates.events_in == pytest.approx(15.0)
    assert rates.predictions_out == 0.0
    assert rates.lag_p50_s == pytest.approx(0.1 + 0.15 * 0.5)
    down = compute_rates(after, stream_only, 2.0)
    assert (down.events_in, down.dead_letters, down.lag_p99_s) == (None, None, None)
    with pytest.raises(ValueError, match="elapsed_s must be positive"):
        compute_rates(after, after, 0.0)


def test_histogram_quantile_follows_prometheus() -> None:
    inf = float("inf")
    assert histogram_quantile(0.5, [(1.0, 0.0), (inf, 0.0)]) is None
    assert histogram_quantile(0.5, [(1.0, 10.0), (2.0, 30.0), (inf, 30.0)]) == pytest.approx(1.25)
    # In the +Inf bucket: the highest finite bound.
    assert histogram_quantile(0.99, [(1.0, 10.0), (2.0, 10.0), (inf, 20.0)]) == 2.0


PROMETHEUS_ALERTS = {
    "status": "success",
    "data": {
        "alerts": [
            {
                "labels": {"alertname": "AppraisePredictionDrift", "severity": "warning"},
                "annotations": {"summary": "s"},
                "state": "pending",
                "activeAt": "2024-01-01T12:00:00Z",
                "value": "3e-01",
            },
            *(
                {
                    "labels": {
                        "alertname": "AppraiseFeatureDrift",
                        "severity": "warning",
                        "feature": feature,
                        "window": "5m",
                        "job": "appraise-stream",
                    },
                    "annotations": {},
                    "state": "firing",
                    "activeAt": "2024-01-01T11:58:00Z",
                    "value": "4.1e-01",
                }
                for feature in ("zoning", "neighbourhood")
            ),
            {
                "labels": {"alertname": "AppraiseScorerDown", "severity": "critical"},
                "state": "inactive",
            },
        ]
    },
}


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


def _view(**changes: Any) -> View:
    """A view 2 s after the first snapshot, two alerts firing and one pending."""
    before, after, _ = _two_scorer_snapshots()
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
    _, _, stream_only = _two_scorer_snapshots()
    line = plain_line(
        _view(
            snapshot=Snapshot(),
            rates=compute_rates(stream_only, Snapshot(), 2.0),
            alerts=None,
            down={"scorer metrics": "no answer", "stream metrics": "timeout"},
        )
    )
    assert line == (
        "12:00:05 in ?/s out ?/s dlq ?/s lag p99 ? | alerts: ? "
        "| down: scorer metrics (no answer), stream metrics (timeout)"
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


@asynccontextmanager
async def _serve(routes: Mapping[str, Callable[[], bytes]]) -> AsyncIterator[str]:
    """A tiny aiohttp server on a free port answering each path with ``routes[path]()``."""

    def handler(body: Callable[[], bytes]) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(_request: web.Request) -> web.Response:
            return web.Response(body=body(), content_type="text/plain")

        return handle

    app = web.Application()
    for path, body in routes.items():
        app.router.add_get(path, handler(body))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def _silent_server() -> AsyncIterator[str]:
    """Accepts connections and never answers (a hung process), until the client hangs up."""
    handlers: list[asyncio.Task[None]] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.append(task)
        await reader.read()
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()
        await asyncio.wait_for(asyncio.gather(*handlers), timeout=5)


def _scraped_scorer() -> tuple[ScorerMetrics, Callable[[], bytes]]:
    """The scorer page, with 100 more events (lag 0.2 s) behind each scrape."""
    scorer = _scorer()

    def page() -> bytes:
        scorer.events_consumed.inc(100)
        scorer.predictions.labels("v1").inc(100)
        scorer.observe_event_lags(np.full(100, 0.2))
        return generate_latest(scorer.registry)

    return scorer, page


async def test_plain_lines_from_live_servers_with_one_source_down() -> None:
    _, scorer_page = _scraped_scorer()
    stream = _stream()
    out = io.StringIO()
    console = Console(file=out)
    assert not console.is_terminal
    async with (
        _serve({"/metrics": scorer_page}) as scorer_url,
        _serve({"/metrics": lambda: generate_latest(stream.registry)}) as stream_url,
        _silent_server() as silent_url,
    ):
        sources = LiveSources(
            scorer_metrics_url=f"{scorer_url}/metrics",
            stream_metrics_url=f"{stream_url}/metrics",
            prometheus_url=silent_url,
        )
        stop = asyncio.Event()
        view = asyncio.create_task(
            run_live_view(sources, stop, console=console, interval_s=0.05, plain_every_s=0.0)
        )
        await until(lambda: "\n" in out.getvalue() or view.done(), 15, "a plain line", out.getvalue)
        stop.set()
        await asyncio.wait_for(view, timeout=5)  # returns: it raised nothing
        assert view.exception() is None
    line = out.getvalue().splitlines()[0]
    match = re.fullmatch(
        r"\d\d:\d\d:\d\d in (\d+\.\d)/s out (\d+\.\d)/s dlq 0\.0/s lag p99 0\.25 s "
        r"\| pred p50 \$172k \(ref \$165k\) \| worst psi zoning 0\.41, drifting 10% "
        r"\| alerts: \? \| down: prometheus \(timeout\)",
        line,
    )
    assert match is not None, line
    assert float(match[1]) > 0
    assert float(match[2]) > 0


async def test_the_terminal_view_from_live_servers_with_alertmanager() -> None:
    _, scorer_page = _scraped_scorer()
    stream = _stream()
    alerts = b'[{"labels": {"alertname": "AppraiseFeatureDrift"}, "status": {"state": "active"}}]'
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160)

    def notifications() -> list[str]:
        raise RuntimeError("the receiver is gone")

    async with (
        _serve({"/metrics": scorer_page}) as scorer_url,
        _serve(
            {"/metrics": lambda: generate_latest(stream.registry), "/api/v2/alerts": lambda: alerts}
        ) as stream_url,
    ):
        sources = LiveSources(
            scorer_metrics_url=f"{scorer_url}/metrics",
            stream_metrics_url=f"{stream_url}/nope",
            alertmanager_url=stream_url,
            notifications=notifications,
        )
        stop = asyncio.Event()
        view = asyncio.create_task(run_live_view(sources, stop, console=console, interval_s=0.05))
        await until(
            lambda: "AppraiseFeatureDrift" in out.getvalue() or view.done(),
            15,
            "the alert on the terminal view",
            out.getvalue,
        )
        stop.set()
        await asyncio.wait_for(view, timeout=5)  # returns: it raised nothing
        assert view.exception() is None
    text = out.getvalue()
    assert "HTTP 404" in text  # the stream page's wrong path: down, not raised
    assert "RuntimeError" in text  # the failing notifications callback: down, not raised
