"""``appraise report``: the newest windows on the windows topic as report.json and report.html."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from stream.aggregate.windows import window_specs
from stream.cli.app import out
from stream.contract.times import compact_stamp, now_rfc3339
from stream.ops.configs import parse_duration
from stream.report.read import load_history_report, load_report
from stream.report.write import write_report
from stream.settings import load_settings


def report(
    windows: Annotated[
        int, typer.Option(metavar="N", min=1, help="how many of the newest windows")
    ] = 30,
    window: Annotated[
        str | None,
        typer.Option(
            metavar="KIND", help="which window kind, e.g. 1m or 5m [default: the tumbling one]"
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", metavar="DIR", help="directory to write to [default: reports/<UTC time>]"
        ),
    ] = None,
    json_only: Annotated[bool, typer.Option("--json-only", help="write report.json only")] = False,
    since: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION",
            help="the windows ending within this long of the newest one, e.g. 30d, 12h, 90m "
            "(instead of --windows); read from the history database when APPRAISE_HISTORY__DSN "
            "is set, else from the topic",
        ),
    ] = None,
) -> None:
    """Write an HTML report (report.html, plots inline) and report.json of the newest windows on
    the windows topic: drift score, PSI and KS with their critical values per feature, the
    likely causes, reference vs current distributions, prediction quantiles, drift share,
    realised error and target drift, as the stream app computed and decided them."""
    settings = load_settings()
    specs = {spec.name: spec for spec in window_specs(settings.aggregate)}
    name = window or next(iter(specs))
    since_s = None if since is None else _duration(since)
    target = out_dir or Path("reports") / compact_stamp()
    if since_s is not None and settings.history.dsn is not None:
        built = asyncio.run(
            load_history_report(
                settings.history, window=name, since_s=since_s, generated=now_rfc3339()
            )
        )
    else:
        built = asyncio.run(
            load_report(
                settings.kafka,
                settings.topics.windows,
                window=name,
                last=windows,
                generated=now_rfc3339(),
                broker_wait_s=settings.service.broker_wait_s,
                since_s=since_s,
                window_s=specs[name].hop if name in specs else None,
            )
        )
    for path in write_report(built, target, html_page=not json_only):
        out.print(str(path), markup=False)
    out.print(built.summary_line(), markup=False)


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r}: expected a duration such as 30d, 12h, 90m", param_hint="--since"
        ) from None
