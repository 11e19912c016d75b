"""``appraise train``, ``appraise produce`` and ``appraise replay``: the model and the data."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.table import Table

from producers.http import DEFAULT_CONCURRENCY, HttpStats, predict_url
from producers.replay import republish
from producers.run import ProduceOptions, produce_http
from producers.run import produce as run_produce
from producers.scenarios import describe_scenarios, parse_scenario
from stream.cli.app import err, out, parse_rate, run_until_signal
from stream.cli.progress import progress
from stream.contract.times import parse_time
from stream.kafka.ranges import RangeProgress, TopicRange
from stream.model.dataset import holdout_rows, load_ames
from stream.model.rescore import Comparison
from stream.model.rescore import rescore as run_rescore
from stream.model.train import train as train_model
from stream.settings import Settings, load_settings


def train(
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="DIR",
            help="model directory [default: APPRAISE_MODEL_DIR, models/current]",
        ),
    ] = None,
    years: Annotated[
        str,
        typer.Option(
            metavar="FIRST-LAST",
            help="training years, FIRST-LAST; the other years are the hold-out",
        ),
    ] = "2006-2007",
) -> None:
    """Train the price model on the 2006-2007 sales and write it with its reference profile.

    Writes model.skops, reference_profile.json and model_card.json (hold-out metrics on the
    2008-2010 sales). Deterministic: the same data gives the same model_version.
    """
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


def produce(
    source: Annotated[
        str,
        typer.Option(
            metavar="SOURCE", help="'holdout' (the bundled 2008-2010 sales), a JSONL file, or -"
        ),
    ] = "holdout",
    rate: Annotated[
        str | None,
        typer.Option(metavar="RATE", help="events per second, e.g. 2000 or 2000/s [default: max]"),
    ] = None,
    count: Annotated[
        int | None, typer.Option(metavar="N", min=1, help="stop after this many")
    ] = None,
    loop: Annotated[bool, typer.Option(help="start the source again when it ends")] = False,
    event_time: Annotated[
        str, typer.Option(metavar="history|live", help="'history' (the sale date) or 'live' (now)")
    ] = "history",
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME:KEY=VALUE,...",
            help="a drift scenario, name:key=value,... (repeatable; see --list-scenarios)",
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(metavar="N", help="seed of the scenarios: same seed, same output")
    ] = 0,
    with_sales: Annotated[
        bool, typer.Option(help="also publish each listing's real sale price to the sales topic")
    ] = False,
    sale_delay: Annotated[
        float,
        typer.Option(metavar="SECONDS", min=0, help="seconds between a listing and its sale label"),
    ] = 30.0,
    list_scenarios: Annotated[
        bool, typer.Option("--list-scenarios", help="describe the scenarios and exit")
    ] = False,
    http: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="send each listing as POST URL/predict to the price service (appraise serve) "
            "instead of the listings topic; sale labels still go to the sales topic",
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            min=1,
            help=f"with --http: most requests in flight [default: {DEFAULT_CONCURRENCY}]",
        ),
    ] = None,
) -> None:
    """Publish listings to the listings topic: the real hold-out stream by default, at a steady
    rate, with drift scenarios and sale labels if asked. With --http, send them to the HTTP
    price service instead and count its answers by status code."""
    if list_scenarios:
        out.print(describe_scenarios(), markup=False)
        return
    if event_time not in ("history", "live"):
        raise typer.BadParameter(
            f"{event_time!r}: expected 'history' or 'live'", param_hint="--event-time"
        )
    if http is not None:
        try:
            predict_url(http)
        except ValueError as exc:
            raise typer.BadParameter(f"{http!r}: {exc}", param_hint="--http") from None
    elif concurrency is not None:
        raise typer.BadParameter("only with --http URL", param_hint="--concurrency")
    settings = load_settings()
    options = ProduceOptions(
        source=source,
        rate=parse_rate(rate),
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
    if http is not None:
        _produce_http(settings, options, http, concurrency or DEFAULT_CONCURRENCY, total)
        return

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

    run_until_signal(run)


def _produce_http(
    settings: Settings, options: ProduceOptions, url: str, concurrency: int, total: int | None
) -> None:
    """``produce --http``: send, show progress, say how the service answered; exit 1 when it
    answered nothing at all."""
    sales = options.with_sales
    answered = True

    def status(stats: HttpStats) -> str:
        return stats.describe_statuses() + (f"; {stats.sales:,} sales" if sales else "")

    async def run(stopping: asyncio.Event) -> None:
        nonlocal answered
        with progress(err, f"sending to {url}", total, "requests") as report:
            stats = await produce_http(
                settings,
                options,
                url=url,
                concurrency=concurrency,
                stop=stopping,
                on_progress=lambda s: report(s.done, status(s)),
            )
        stopped = " (stopped early)" if stopping.is_set() else ""
        out.print(
            f"sent {stats.done:,} listings to {stats.url}"
            + (f" and {stats.sales:,} sales to {settings.topics.sales}" if sales else "")
            + f" in {stats.elapsed_s:,.1f} s ({stats.rate:,.0f}/s){stopped}: "
            + f"{stats.describe_statuses() or 'nothing sent'}; {stats.describe_latency()}"
        )
        if stats.done and not stats.answered:
            answered = False
            err.print(
                f"error: no answer from {stats.url} ({stats.last_error}); "
                "is the price service (appraise serve) running there?",
                style="red",
                markup=False,
            )

    run_until_signal(run)
    if not answered:
        raise typer.Exit(1)


def replay(
    topic: Annotated[
        str | None,
        typer.Option(metavar="TOPIC", help="topic to read [default: the listings topic]"),
    ] = None,
    partition: Annotated[
        list[int] | None,
        typer.Option(metavar="N", help="only these partitions (repeatable) [default: all]"),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="TIME",
            help="first record time: RFC 3339, 'now', or relative like -2h",
        ),
    ] = None,
    until: Annotated[
        str | None, typer.Option(metavar="TIME", help="end of the time range (exclusive)")
    ] = None,
    from_offset: Annotated[
        int | None, typer.Option(metavar="OFFSET", min=0, help="first offset per partition")
    ] = None,
    until_offset: Annotated[
        int | None,
        typer.Option(metavar="OFFSET", min=0, help="end offset per partition (exclusive)"),
    ] = None,
    to: Annotated[
        str | None, typer.Option(metavar="TOPIC", help="re-publish the records to this topic")
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option(
            metavar="FACTOR",
            min=0.001,
            help="with --to: pace as it happened, this many times faster [default: max]",
        ),
    ] = None,
    rescore: Annotated[
        Path | None,
        typer.Option(
            metavar="MODEL_DIR", help="score the listings with this candidate model and compare"
        ),
    ] = None,
    champion: Annotated[
        Path | None,
        typer.Option(
            metavar="MODEL_DIR",
            help="with --rescore: the model to compare against [default: APPRAISE_MODEL_DIR]",
        ),
    ] = None,
    move_pct: Annotated[
        float,
        typer.Option(
            metavar="PERCENT",
            min=0,
            help="with --rescore: a price 'moves' when it changes by more than this %",
        ),
    ] = 10.0,
    as_json: Annotated[bool, typer.Option("--json", help="with --rescore: print JSON")] = False,
) -> None:
    """Read a range of a topic again: re-publish it (--to) or score it with a candidate model
    and compare with the champion (--rescore)."""
    if (to is None) == (rescore is None):
        raise typer.BadParameter("give exactly one of --to TOPIC or --rescore MODEL_DIR")
    settings = load_settings()
    selection = TopicRange(
        topic=topic or settings.topics.listings,
        partitions=tuple(partition or ()),
        start_ms=None if since is None else parse_time(since),
        end_ms=None if until is None else parse_time(until),
        start_offset=from_offset,
        end_offset=until_offset,
    )

    async def run(stopping: asyncio.Event) -> None:
        with progress(err, f"replaying {selection.topic}", None, "records") as report:

            def on_progress(p: RangeProgress) -> None:
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

    run_until_signal(run)


def _print_comparison(result: Comparison) -> None:
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
