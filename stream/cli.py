"""The ``appraise`` command: the one place that reads the settings and wires the parts together."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console

from stream.errors import AppraiseError
from stream.events import EVENT_TYPES, json_schema
from stream.settings import load_settings

app = typer.Typer(
    name="appraise",
    help="Streaming price-model scoring with drift monitoring.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


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
        int | None, typer.Option(help="listen port [default: APPRAISE_BROKER__PORT, 9092]")
    ] = None,
    log: Annotated[Path | None, typer.Option(help="write the broker's own log here")] = None,
) -> None:
    """Run the embedded Kafka-compatible broker (Tansu, memory only) with the project's topics.

    Stops on Ctrl-C. Everything it holds is gone when it stops.
    """
    from stream.broker import EmbeddedBroker

    settings = load_settings()

    async def serve(stopping: asyncio.Event) -> None:
        embedded = EmbeddedBroker(
            settings.broker.host,
            settings.broker.port if port is None else port,
            topics=settings.topics,
            startup_timeout_s=settings.broker.startup_timeout_s,
            log_path=log,
        )
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
        typer.Option("--out", help="model directory [default: APPRAISE_MODEL_DIR, models/current]"),
    ] = None,
) -> None:
    """Train the price model on the 2006-2007 sales and write it with its reference profile.

    Writes model.skops, reference_profile.json and model_card.json (hold-out metrics on the
    2008-2010 sales). Deterministic: the same data gives the same model_version.
    """
    from stream.model import train as train_model

    settings = load_settings()
    target = settings.model_dir if out_dir is None else out_dir
    with err.status("training…") as status:
        card = train_model(target, progress=lambda step: status.update(f"training: {step}"))
    holdout = card.holdout
    out.print(
        f"model {card.model_version} written to {target}\n"
        f"hold-out {holdout.period} ({holdout.rows} sales): "
        f"R² {holdout.r2:.3f}, MAE ${holdout.mae:,.0f}, MAPE {holdout.mape:.3f}"
    )


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
