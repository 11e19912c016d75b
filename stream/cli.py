"""The ``appraise`` command: the one place that reads the settings and wires the parts together."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import orjson
import typer
from rich.console import Console

from stream.errors import AppraiseError
from stream.events import EVENT_TYPES, json_schema
from stream.progress import progress
from stream.settings import Settings, load_settings

_T = TypeVar("_T")

if TYPE_CHECKING:
    from producers.replay import Comparison, ReplayProgress

app = typer.Typer(
    name="appraise",
    help="Streaming price-model scoring with drift monitoring.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


@app.command()
def schema(
    kind: Annotated[str, typer.Argument(help="listing, prediction or sale")],
) -> None:
    """Print the JSON Schema of an event, for teams that publish without reading Python."""
    if kind not in EVENT_TYPES:
        raise typer.BadParameter(f"{kind!r}: expected one of {', '.join(EVENT_TYPES)}")
    sys.stdout.write(orjson.dumps(json_schema(kind), option=orjson.OPT_INDENT_2).decode() + "\n")


@app.command("settings")
def show_settings() -> None:
    """Print the settings in force (from APPRAISE_* variables and defaults; secrets hidden)."""
    settings = load_settings()
    sys.stdout.write(settings.model_dump_json(indent=2) + "\n")


@app.command()
def broker(
    port: Annotated[
        int | None, typer.Option(help="listen port \\[default: APPRAISE_BROKER__PORT, 9092]")
    ] = None,
    log: Annotated[Path | None, typer.Option(help="write the broker's own log here")] = None,
) -> None:
    """Run the embedded Kafka-compatible broker (Tansu, memory only) with the project's topics.

    Stops on Ctrl-C. Everything it holds is gone when it stops.
    """
    from stream.broker import EmbeddedBroker

    settings = load_settings()

    async def serve(stopping: asyncio.Event) -> None:
        chosen = settings if port is None else _with_broker_port(settings, port)
        embedded = EmbeddedBroker.from_settings(chosen, log_path=log)
        async with embedded:
            topics = ", ".join(f"{t}({settings.topics.partitions})" for t in settings.topics.all())
            out.print(
                f"broker ready on {embedded.bootstrap_servers} "
                f"(Tansu {embedded.version}, memory only); topics: {topics}. Ctrl-C stops it."
            )
            await stopping.wait()
        out.print("broker stopped")

    _run_until_signal(serve)


@app.command()
def train(
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", help="model directory \\[default: APPRAISE_MODEL_DIR, models/current]"
        ),
    ] = None,
    years: Annotated[
        str, typer.Option(help="training years, FIRST-LAST; the other years are the hold-out")
    ] = "2006-2007",
) -> None:
    """Train the price model on the 2006-2007 sales and write it with its reference profile.

    Writes model.skops, reference_profile.json and model_card.json (hold-out metrics on the
    2008-2010 sales). Deterministic: the same data gives the same model_version.
    """
    from stream.model import train as train_model

    first, sep, last = years.partition("-")
    if not (sep and first.isdigit() and last.isdigit() and int(first) <= int(last)):
        raise typer.BadParameter(
            f"{years!r}: expected FIRST-LAST, e.g. 2006-2007", param_hint="--years"
        )
    settings = load_settings()
    target = settings.model_dir if out_dir is None else out_dir
    with err.status("training…") as status:
        card = train_model(
            target,
            progress=lambda step: status.update(f"training: {step}"),
            years=(int(first), int(last)),
        )
    holdout = card.holdout
    out.print(
        f"model {card.model_version} written to {target}\n"
        f"hold-out {holdout.period.start:%Y-%m-%d} to {holdout.period.end:%Y-%m-%d} "
        f"({holdout.rows} sales): "
        f"R² {holdout.r2:.3f}, MAE ${holdout.mae:,.0f}, MAPE {holdout.mape:.3f}"
    )


@app.command()
def produce(
    source: Annotated[
        str, typer.Option(help="'holdout' (the bundled 2008-2010 sales), a JSONL file, or -")
    ] = "holdout",
    rate: Annotated[
        str | None, typer.Option(help="events per second, e.g. 2000 or 2000/s \\[default: max]")
    ] = None,
    count: Annotated[int | None, typer.Option(min=1, help="stop after this many")] = None,
    loop: Annotated[bool, typer.Option(help="start the source again when it ends")] = False,
    event_time: Annotated[
        str, typer.Option(help="'history' (the sale date) or 'live' (now)")
    ] = "history",
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            help="a drift scenario, name:key=value,... (repeatable; see --list-scenarios)"
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of the scenarios: same seed, same output")] = 0,
    with_sales: Annotated[
        bool, typer.Option(help="also publish each listing's real sale price to the sales topic")
    ] = False,
    sale_delay: Annotated[
        float, typer.Option(min=0, help="seconds between a listing and its sale label")
    ] = 30.0,
    list_scenarios: Annotated[
        bool, typer.Option("--list-scenarios", help="describe the scenarios and exit")
    ] = False,
) -> None:
    """Publish listings to the listings topic: the real hold-out stream by default, at a steady
    rate, with drift scenarios and sale labels if asked."""
    from producers.run import ProduceOptions
    from producers.run import produce as run_produce
    from producers.scenarios import describe_scenarios, parse_scenario
    from stream.dataset import holdout_rows, load_ames

    if list_scenarios:
        out.print(describe_scenarios(), markup=False)
        return
    if event_time not in ("history", "live"):
        raise typer.BadParameter(
            f"{event_time!r}: expected 'history' or 'live'", param_hint="--event-time"
        )
    settings = load_settings()
    options = ProduceOptions(
        source=source,
        rate=_parse_rate(rate),
        count=count,
        loop=loop,
        event_time="live" if event_time == "live" else "history",
        scenarios=[parse_scenario(text) for text in scenario or []],
        seed=seed,
        with_sales=with_sales,
        sale_delay_s=sale_delay,
    )
    holdout_size = len(holdout_rows(load_ames())) if source == "holdout" and not loop else None
    total = count if count is not None else holdout_size

    async def run(stopping: asyncio.Event) -> None:
        with progress(err, f"producing to {settings.topics.listings}", total) as report:
            stats = await run_produce(
                settings,
                options,
                stop=stopping,
                on_progress=lambda s: report(
                    s.listings, f"{s.sales:,} sales" if with_sales else ""
                ),
            )
        stopped = " (stopped early)" if stopping.is_set() else ""
        out.print(
            f"published {stats.listings:,} listings"
            + (f" and {stats.sales:,} sales" if with_sales else "")
            + f" in {stats.elapsed_s:,.1f} s ({stats.rate:,.0f}/s){stopped}"
        )

    _run_until_signal(run)


@app.command()
def replay(
    topic: Annotated[
        str | None, typer.Option(help="topic to read \\[default: the listings topic]")
    ] = None,
    partition: Annotated[
        list[int] | None, typer.Option(help="only these partitions (repeatable) \\[default: all]")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--from", help="first record time: RFC 3339, 'now', or relative like -2h"),
    ] = None,
    until: Annotated[str | None, typer.Option(help="end of the time range (exclusive)")] = None,
    from_offset: Annotated[
        int | None, typer.Option(min=0, help="first offset per partition")
    ] = None,
    until_offset: Annotated[
        int | None, typer.Option(min=0, help="end offset per partition (exclusive)")
    ] = None,
    to: Annotated[str | None, typer.Option(help="re-publish the records to this topic")] = None,
    speed: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="with --to: pace as it happened, this many times faster \\[default: max]",
        ),
    ] = None,
    rescore: Annotated[
        Path | None, typer.Option(help="score the listings with this candidate model and compare")
    ] = None,
    champion: Annotated[
        Path | None,
        typer.Option(
            help="with --rescore: the model to compare against \\[default: APPRAISE_MODEL_DIR]"
        ),
    ] = None,
    move_pct: Annotated[
        float,
        typer.Option(
            min=0, help="with --rescore: a price 'moves' when it changes by more than this %"
        ),
    ] = 10.0,
    as_json: Annotated[bool, typer.Option("--json", help="with --rescore: print JSON")] = False,
) -> None:
    """Read a range of a topic again: re-publish it (--to) or score it with a candidate model
    and compare with the champion (--rescore)."""
    from producers.replay import ReplayRange, parse_time, republish
    from producers.replay import rescore as run_rescore

    if (to is None) == (rescore is None):
        raise typer.BadParameter("give exactly one of --to TOPIC or --rescore MODEL_DIR")
    settings = load_settings()
    selection = ReplayRange(
        topic=topic or settings.topics.listings,
        partitions=tuple(partition or ()),
        start_ms=None if since is None else parse_time(since),
        end_ms=None if until is None else parse_time(until),
        start_offset=from_offset,
        end_offset=until_offset,
    )

    async def run(stopping: asyncio.Event) -> None:
        with progress(err, f"replaying {selection.topic}", None, "records") as report:

            def on_progress(p: ReplayProgress) -> None:
                report(p.done)

            if to is not None:
                done = await republish(
                    settings, selection, to, speed=speed, stop=stopping, on_progress=on_progress
                )
                verb = "stopped after" if stopping.is_set() else "replayed"
                out.print(
                    f"{verb} {done.done:,} records of {selection.describe()} to {to!r}; "
                    f"next offsets per partition: {done.where()}"
                )
                return
            assert rescore is not None  # noqa: S101 - checked above
            result = await run_rescore(
                settings,
                selection,
                rescore,
                champion_dir=champion,
                move_threshold=move_pct / 100,
                stop=stopping,
                on_progress=on_progress,
            )
        if as_json:
            sys.stdout.write(
                orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n"
            )
        else:
            _print_comparison(result)

    _run_until_signal(run)


def _print_comparison(result: Comparison) -> None:
    from rich.table import Table

    def money(value: float | None) -> str:
        return "n/a" if value is None else f"${value:,.0f}"

    def share(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    table = Table(title=f"champion vs candidate on {result.scored:,} listings ({result.range})")
    table.add_column("")
    table.add_column(f"champion {result.champion.version}", justify="right")
    table.add_column(f"candidate {result.candidate.version}", justify="right")
    for name in result.champion.quantiles:
        table.add_row(
            f"price {name}",
            money(result.champion.quantiles[name]),
            money(result.candidate.quantiles[name]),
        )
    table.add_row(
        f"MAE ({result.labelled:,} sold)", money(result.champion.mae), money(result.candidate.mae)
    )
    table.add_row(
        f"MAPE ({result.labelled:,} sold)",
        share(result.champion.mape),
        share(result.candidate.mape),
    )
    out.print(table)
    out.print(
        f"absolute difference: mean {money(result.mean_abs_diff)}, "
        f"p95 {money(result.p95_abs_diff)}; "
        f"{result.moved_share:.1%} of listings move by more than {result.move_threshold:.0%}; "
        f"{result.invalid:,} invalid records skipped"
    )


@app.command()
def up(
    rate: Annotated[
        float | None,
        typer.Option(min=0.1, help="listings per second \\[default: the profile's, 20 or 50]"),
    ] = None,
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            help="a drift scenario for the producer, e.g. scale:feature=living_area_sqft,"
            "factor=1.6,after_s=60 (see appraise produce --list-scenarios); repeatable"
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of the scenarios")] = 0,
    profile: Annotated[
        str,
        typer.Option(
            help="time scales: 'default' (1 and 5 min windows, alerts after minutes) or 'demo' "
            "(10 and 30 s windows, rule durations / 10: a drift alert within about a minute)"
        ),
    ] = "default",
    bootstrap_servers: Annotated[
        str | None,
        typer.Option(help="use this Kafka cluster instead of starting the embedded broker"),
    ] = None,
    prometheus_url: Annotated[
        str | None,
        typer.Option(
            help="use this Prometheus (which scrapes the scorer and stream app itself) instead "
            "of starting Prometheus and Alertmanager"
        ),
    ] = None,
    monitoring: Annotated[
        bool, typer.Option(help="run Prometheus, Alertmanager and the alert webhook receiver")
    ] = True,
    live: Annotated[
        bool, typer.Option(help="show the live view (off a terminal: a status line every 10 s)")
    ] = True,
    run_dir: Annotated[
        Path | None,
        typer.Option(help="where logs, configs and alerts.jsonl go \\[default: runs/<UTC time>]"),
    ] = None,
) -> None:
    """Run appraise on this machine: broker, model, scorer, stream app, Prometheus, Alertmanager,
    an alert webhook receiver and a producer, with a live view, until Ctrl-C."""
    from producers.scenarios import parse_scenario
    from stream.monitoring import profile_named
    from stream.up import UpOptions, run_up

    for text in scenario or []:
        parse_scenario(text)  # a bad scenario stops here, before anything starts
    chosen = profile_named(profile)
    settings = load_settings()
    options = UpOptions(
        rate=rate,
        scenarios=tuple(scenario or ()),
        seed=seed,
        bootstrap_servers=bootstrap_servers,
        prometheus_url=prometheus_url.rstrip("/") if prometheus_url else None,
        monitoring=monitoring,
        profile=chosen,
        live=live,
    )
    if run_dir is not None:
        options = dataclasses.replace(options, run_dir=run_dir)

    async def run(stopping: asyncio.Event) -> None:
        await run_up(
            settings, options, stopping, lambda line: out.print(line, markup=False), console=out
        )
        out.print("stopped")

    _run_until_signal(run)


@app.command()
def score() -> None:
    """Run the scorer: consume listings, publish predictions, dead letters and pane partials.

    Metrics and health on APPRAISE_METRICS__HOST:APPRAISE_METRICS__SCORER_PORT (/metrics,
    /healthz, /readyz). SIGTERM or Ctrl-C drains: the batch in hand is finished, delivered and
    committed; a second signal exits at once.
    """
    from consumers.__main__ import main as run_scorer

    raise SystemExit(run_scorer())


@app.command()
def aggregate() -> None:
    """Run the stream app: pane partials into event-time windows of quantiles and drift, sale
    labels into realised error. Metrics on APPRAISE_METRICS__STREAM_PORT (9401)."""
    from stream.aggregate.service import run_aggregate

    settings = load_settings()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    async def run(stopping: asyncio.Event) -> None:
        def ready(aggregator: Any, server: Any) -> None:
            out.print(
                f"stream app ready in {aggregator.ready_after_s:.1f} s; "
                f"metrics on {server.url}/metrics"
            )

        await run_aggregate(settings, stopping, on_ready=ready)

    _run_until_signal(run)


@app.command()
def report(
    windows: Annotated[int, typer.Option(min=1, help="how many of the newest windows")] = 30,
    window: Annotated[
        str | None,
        typer.Option(help="which window kind, e.g. 1m or 5m \\[default: the tumbling one]"),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="directory to write to \\[default: reports/<UTC time>]"),
    ] = None,
    json_only: Annotated[bool, typer.Option("--json-only", help="write report.json only")] = False,
) -> None:
    """Write an HTML report (report.html, plots inline) and report.json of the newest windows on
    the windows topic: reference vs current distributions, PSI/KS per feature, prediction
    quantiles, drift share and realised error, as the stream app computed them."""
    from datetime import UTC, datetime

    from stream.aggregate.windows import window_specs
    from stream.report import load_report, write_report

    settings = load_settings()
    now = datetime.now(UTC)
    name = window or window_specs(settings.aggregate)[0].name
    target = out_dir or Path("reports") / now.strftime("%Y%m%dT%H%M%SZ")
    built = asyncio.run(
        load_report(
            settings.kafka,
            settings.topics.windows,
            window=name,
            last=windows,
            psi_threshold=settings.aggregate.psi_threshold,
            generated=now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        )
    )
    for path in write_report(built, target, html_page=not json_only):
        out.print(str(path), markup=False)
    out.print(built.summary_line(), markup=False)


bench_app = typer.Typer(
    help="Benchmarks: figures and ratios against baselines measured in the same run.",
    no_args_is_help=False,
)
app.add_typer(bench_app, name="bench")

EventsOption = Annotated[int, typer.Option(min=1_000, help="listing events to publish")]
EmbeddedOption = Annotated[
    bool, typer.Option(help="run on a fresh embedded broker instead of the configured one")
]
JsonOption = Annotated[bool, typer.Option("--json", help="print one JSON object")]


@bench_app.callback(invoke_without_command=True)
def bench_all(
    ctx: typer.Context,
    events: EventsOption = 200_000,
    embedded: EmbeddedOption = False,
    as_json: JsonOption = False,
) -> None:
    """Run the scorer and the aggregation benchmarks and print one report, ratios first."""
    if ctx.invoked_subcommand is not None:
        return
    from consumers.bench import bench_scorer, format_result
    from stream.aggregate.bench import bench_aggregate
    from stream.aggregate.bench import format_result as format_aggregate

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
    out.print(format_result(scored, settings.scorer), markup=False)
    out.print(format_aggregate(aggregated), markup=False)


@bench_app.command("scorer")
def bench_scorer_cmd(
    events: EventsOption = 200_000,
    rate: Annotated[float, typer.Option(min=1, help="offered events/s of the lag run")] = 5_000.0,
    embedded: EmbeddedOption = False,
    as_json: JsonOption = False,
) -> None:
    """The scorer against the raw pipe and a per-event price service, on the same broker."""
    from consumers.bench import bench_scorer, format_result

    settings = load_settings()

    async def run(here: Settings) -> Any:
        return await bench_scorer(here, here.scorer, events=events, rate=rate, progress=err.print)

    result = asyncio.run(_on_broker(settings, embedded, run))
    out.print(
        result.to_json().decode() if as_json else format_result(result, settings.scorer),
        markup=False,
    )


@bench_app.command("aggregate")
def bench_aggregate_cmd(
    events: EventsOption = 200_000,
    join_events: Annotated[int, typer.Option(min=100, help="sales sent through the join")] = 5_000,
    embedded: EmbeddedOption = False,
    as_json: JsonOption = False,
) -> None:
    """The stream app's aggregation against the scorer's rate, measured in the same run."""
    from stream.aggregate.bench import bench_aggregate, format_result

    settings = load_settings()

    async def run(here: Settings) -> Any:
        return await bench_aggregate(
            here, here.scorer, events=events, join_events=join_events, progress=err.print
        )

    result = asyncio.run(_on_broker(settings, embedded, run))
    out.print(result.to_json().decode() if as_json else format_result(result), markup=False)


async def _on_broker(
    settings: Settings, embedded: bool, run: Callable[[Settings], Awaitable[_T]]
) -> _T:
    """Run ``run`` on the configured broker, or on a fresh embedded one; train a model first
    if the model directory has none."""
    from stream.broker import EmbeddedBroker
    from stream.model import CARD_FILE, train

    if not (settings.model_dir / CARD_FILE).is_file():
        err.print(f"no model in {settings.model_dir}: training one")
        await asyncio.to_thread(train, settings.model_dir)
    if not embedded:
        return await run(settings)
    async with EmbeddedBroker(port=0, topics=settings.topics) as broker:
        return await run(settings.model_copy(update={"kafka": broker.kafka}))


def _with_broker_port(settings: Settings, port: int) -> Settings:
    """The settings with the embedded broker, and the clients, on ``port``."""
    broker = settings.broker.model_copy(update={"port": port})
    kafka = settings.kafka.model_copy(update={"bootstrap_servers": f"{broker.host}:{port}"})
    return settings.model_copy(update={"broker": broker, "kafka": kafka})


def _parse_rate(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.removesuffix("/s"))
    except ValueError:
        value = 0.0
    if not value > 0:
        raise typer.BadParameter(
            f"{text!r}: expected events per second above 0, e.g. 2000/s", param_hint="--rate"
        )
    return value


def _run_until_signal(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``main`` until it returns or SIGINT/SIGTERM sets its stop event; a second signal
    exits at once."""

    async def runner() -> None:
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()

        def on_signal() -> None:
            if stopping.is_set():
                err.print("second signal: exiting now")
                raise SystemExit(130)
            stopping.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        await main(stopping)

    asyncio.run(runner())


def main() -> None:
    """Console entry point: expected errors print one clear message and exit 2, no traceback."""
    try:
        app()
    except AppraiseError as exc:
        err.print(f"error: {exc}", style="red", markup=False, soft_wrap=True)
        raise SystemExit(2) from None
