"""The ``appraise`` Typer app, its two consoles, and how a long-running command stops.

Help is Click's plain text (``rich_markup_mode=None``): flags show no metavar, and help texts
wrap at word boundaries to the terminal, at most 100 columns.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Final

import stamina.instrumentation
import typer
from rich.console import Console

from stream.service.runtime import FORCED_EXIT

#: The signals that stop a command: Ctrl-C, ``kill``, and a closed terminal.
STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

app = typer.Typer(
    name="appraise",
    help="Streaming price-model scoring with drift monitoring.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"max_content_width": 100},
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def run_until_signal(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``main`` until it returns or SIGINT/SIGTERM/SIGHUP sets its stop event; a second
    signal exits at once."""

    async def runner() -> None:
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()

        def on_signal() -> None:
            if stopping.is_set():
                err.print("second signal: exiting now")
                raise SystemExit(FORCED_EXIT)
            stopping.set()

        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, on_signal)
        await main(stopping)

    asyncio.run(runner())


def parse_rate(text: str | None) -> float | None:
    """``--rate``: events per second, ``2000`` or ``2000/s``; None for as fast as possible."""
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


def configure_logging() -> None:
    """Log lines with a time for the services (``appraise score``, ``appraise aggregate``)."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def quiet_retries() -> None:
    """stamina's retries (waiting for a broker, re-committing) are logged at debug level: the
    code that retries says what matters itself, and a broker that is still starting is no
    warning. Its Prometheus counter would land in a registry no service exports."""
    log = logging.getLogger("stream.retries")

    def on_retry(details: stamina.instrumentation.RetryDetails) -> None:
        log.debug(
            "retry %d of %s in %.2f s after %r",
            details.retry_num,
            details.name,
            details.wait_for,
            details.caused_by,
        )

    stamina.instrumentation.set_on_retry_hooks([on_retry])
