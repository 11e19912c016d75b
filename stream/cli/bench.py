"""``appraise bench``: the scorer and the aggregation benchmarks, alone or together, the history
sink's, the HTTP price service's, and the drift detector's (offline)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer

from stream.bench.aggregate import bench_aggregate
from stream.bench.aggregate import format_result as format_aggregate
from stream.bench.scorer import bench_scorer
from stream.bench.scorer import format_result as format_scorer
from stream.cli.app import err, out
from stream.cli.progress import progress
from stream.kafka.broker import EmbeddedBroker
from stream.kafka.topics import topic_specs
from stream.model.card import CARD_FILE
from stream.model.train import train
from stream.settings import Settings, load_settings

_T = TypeVar("_T")

EventsOption = Annotated[
    int, typer.Option(min=1_000, metavar="N", help="listing events to publish")
]
EmbeddedOption = Annotated[
    bool, typer.Option(help="run on a fresh embedded broker instead of the configured one")
]
JsonOption = Annotated[bool, typer.Option("--json", help="print one JSON object")]


def bench_all(
    ctx: typer.Context,
    events: EventsOption = 200_000,
    embedded: EmbeddedOption = False,
    as_json: JsonOption = False,
) -> None:
    """Run the scorer and the aggregation benchmarks and print one report, ratios first."""
    if ctx.invoked_subcommand is not None:
        return
    settings = load_settings()

    async def run(here: Settings) -> tuple[Any, Any]:
        scored = await bench_scorer(here, here.scorer, events=events, progress=err.print)
        aggregated = await bench_aggregate(here, here.scorer, events=events, progress=err.print)
        return scored, aggregated

    scored, aggregated = asyncio.run(_on_broker(settings, embedded, run))
    if as_json:
        both = {
            "scorer": orjson.loads(scored.to_json()),
            "aggregate": orjson.loads(aggregated.to_json()),
        }
        sys.stdout.write(orjson.dumps(both, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    out.print(
        f"ratios: scorer/pipe {scored.ratio_to_pipe:.2f} (target ≥ 0.5), "
        f"scorer/per-event {scored.speedup_vs_per_event:,.0f}x (≥ 50), "
        f"aggregation/scorer {aggregated.ratio_to_scorer:,.1f} (≥ 1.0)\n",
        markup=False,
    )
    out.print(format_scorer(scored, settings.scorer), markup=False)
    out.print(format_aggregate(aggregated), markup=False)


def bench_scorer_cmd(
    events: EventsOption = 200_000,
    rate: Annotated[
        float,
        typer.Option(metavar="RATE", min=1, help="offered events/s of the lag run"),
    ] = 5_000.0,
    embedded: EmbeddedOption = False,
    as_json: JsonOption = False,
) -> None:
    """The scorer against the raw pipe and a per-event price service, on the same broker."""
    settings = load_settings()

    async def run(here: Settings) -> Any:
        return await bench_scorer(here, here.scorer, events=events, rate=rate, progress=err.print)

    result = asyncio.run(_on_broker(settings, embedded, run))
    out.print(
        result.to_json().decode() if as_json else format_scorer(result, settings.scorer),
        markup=False,
    )


def bench_aggregate_cmd(
    events: EventsOption = 200_000,
    join_events: Annotated[
        int, typer.Option(metavar="N", min=100, help="sales sent through the join")
    ] = 5_000,
    embedded: EmbeddedOption = False,
    as_json: JsonOption = False,
) -> None:
    """The stream app's aggregation against the scorer's rate, measured in the same run."""
    settings = load_settings()

    async def run(here: Settings) -> Any:
        return await bench_aggregate(
            here, here.scorer, events=events, join_events=join_events, progress=err.print
        )

    result = asyncio.run(_on_broker(settings, embedded, run))
    out.print(result.to_json().decode() if as_json else format_aggregate(result), markup=False)


def bench_history_cmd(
    events: Annotated[
        int, typer.Option(min=1_000, metavar="N", help="listings in the stream app's backlog")
    ] = 50_000,
    window_events: Annotated[
        int,
        typer.Option(
            min=1, metavar="N", help="listings per minute of event time (per 1-minute window)"
        ),
    ] = 100,
    records: Annotated[
        int,
        typer.Option(
            min=2, metavar="N", help="window records the sink writes (drift and realised error)"
        ),
    ] = 20_000,
    years: Annotated[
        float,
        typer.Option(
            min=0.0001, max=5, metavar="Y", help="years of 1-minute windows for the 30-day query"
        ),
    ] = 1.0,
    skip_query: Annotated[
        bool, typer.Option("--skip-query", help="skip the generated year and the query")
    ] = False,
    query_runs: Annotated[
        int, typer.Option(min=1, metavar="N", help="runs of each query (the slowest counts)")
    ] = 5,
    embedded: Annotated[
        bool, typer.Option(help="run on a fresh embedded broker (else on the configured one)")
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """The history sink against the stream app's window rate, both measured in the same run, on
    a PostgreSQL of its own; then the dashboard's 30-day query over a generated year."""
    from stream.bench.history import bench_history, format_result, steps

    settings = load_settings()

    async def run(here: Settings) -> Any:
        with progress(err, "history bench", steps(years, skip_query), "steps") as report:
            return await bench_history(
                here,
                here.scorer,
                events=events,
                window_events=window_events,
                records=records,
                years=years,
                skip_query=skip_query,
                query_runs=query_runs,
                progress=report,
            )

    result = asyncio.run(_on_broker(settings, embedded, run))
    out.print(result.to_json().decode() if as_json else format_result(result), markup=False)


def bench_serve_cmd(
    concurrency: Annotated[
        str, typer.Option(metavar="C,C,...", help="concurrent clients, one run each")
    ] = "1,16,64",
    seconds: Annotated[
        float, typer.Option(metavar="S", min=1, help="measured seconds per run (after 2 s warm-up)")
    ] = 10.0,
    as_json: JsonOption = False,
) -> None:
    """The HTTP price service (appraise serve) against FastAPI calling the model once per
    request, at each concurrency, with the load generator in its own process; then with the
    broker stopped. On a fresh embedded broker."""
    from stream.bench.serve import bench_serve, format_result, steps

    settings = load_settings()
    levels = _sizes(concurrency)
    _ensure_model(settings)
    with progress(err, "serve bench", steps(levels), "runs") as report:
        figures = asyncio.run(
            bench_serve(settings, concurrencies=levels, seconds=seconds, progress=report)
        )
    out.print(
        orjson.dumps(figures).decode() if as_json else format_result(figures, levels),
        markup=False,
    )


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part.replace("_", "")) for part in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"{text!r}: give whole numbers separated by commas") from None
    if not sizes or min(sizes) < 1:
        raise typer.BadParameter(f"{text!r}: every size must be at least 1")
    return sizes


def bench_detection_cmd(
    sizes: Annotated[
        str, typer.Option(metavar="M,M,...", help="events per tumbling window, one run each")
    ] = "100,400,2000,10000",
    windows: Annotated[
        int, typer.Option(metavar="N", min=10, help="stable tumbling windows per size")
    ] = 10_000,
    runs: Annotated[
        int, typer.Option(metavar="N", min=1, help="runs per scenario case and size")
    ] = 10,
    before: Annotated[
        int, typer.Option(metavar="N", min=1, help="stable windows before each drift onset")
    ] = 4,
    drift: Annotated[
        int, typer.Option(metavar="N", min=1, help="drifted windows after each onset")
    ] = 10,
    jobs: Annotated[
        int, typer.Option(metavar="N", min=0, help="worker processes (0: the usable CPUs)")
    ] = 0,
    seed: Annotated[int, typer.Option(help="seed of the resampling and scenarios")] = 0,
    scenarios: Annotated[
        str, typer.Option(metavar="NAME,...", help="only these scenarios (default: all)")
    ] = "",
    plot_path: Annotated[
        Path | None, typer.Option("--plot", metavar="PATH", help="draw the figures (.svg, .png)")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The drift detector on resampled stable data and every drift scenario, against baselines
    (offline: no broker)."""
    # Loaded here: scipy.stats and the bench's modules are for this command only.
    from stream.bench.detection import DetectionPlan, prepare_detection, run_detection
    from stream.bench.detection_report import format_result, plot

    settings = load_settings()
    _ensure_model(settings)
    plan = DetectionPlan(
        sizes=_sizes(sizes),
        windows=windows,
        runs=runs,
        before=before,
        drift=drift,
        seed=seed,
        jobs=jobs or len(os.sched_getaffinity(0)),
        scenarios=tuple(filter(None, (n.strip() for n in scenarios.split(",")))),
    )
    prepared = prepare_detection(settings, plan, progress=err.print)
    with progress(err, "detection bench", prepared.total, "windows") as report:
        result = run_detection(prepared, report)
    if plot_path is not None:
        plot(result, plot_path)
        err.print(f"plot written to {plot_path}")
    out.print(result.to_json().decode() if as_json else format_result(result), markup=False)


def _ensure_model(settings: Settings) -> None:
    """Train a model into the model directory if it has none."""
    if not (settings.model_dir / CARD_FILE).is_file():
        err.print(f"no model in {settings.model_dir}: training one")
        train(settings.model_dir)


async def _on_broker(
    settings: Settings, embedded: bool, run: Callable[[Settings], Awaitable[_T]]
) -> _T:
    """Run ``run`` on the configured broker, or on a fresh embedded one; train a model first
    if the model directory has none."""
    await asyncio.to_thread(_ensure_model, settings)
    if not embedded:
        return await run(settings)
    async with EmbeddedBroker(port=0, topics=topic_specs(settings)) as broker:
        return await run(settings.model_copy(update={"kafka": broker.kafka}))
