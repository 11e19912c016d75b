"""Progress for long work: a live bar with rate and ETA on a terminal, plain lines elsewhere."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

#: Plain lines (logs, CI) come at most this often.
PLAIN_EVERY_S = 5.0


class _Rate(ProgressColumn):
    """Events per second over rich's recent window."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0:,.0f} {self.unit}/s")


class Report(Protocol):
    """Called with the amount done so far (and optionally a short status)."""

    def __call__(self, done: int, status: str = "") -> None: ...


@contextmanager
def progress(
    console: Console, what: str, total: int | None, unit: str = "events"
) -> Iterator[Report]:
    """Yield a ``report(done, status)`` callable; the display ends with the block."""
    if console.is_terminal:
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn() if total is not None else TextColumn("{task.completed:,.0f}"),
            TextColumn(unit),
            _Rate(unit),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
        ) as bar:
            task = bar.add_task(what, total=total, status="")

            def live(done: int, status: str = "") -> None:
                bar.update(task, completed=done, status=status)

            yield live
        return

    started = time.monotonic()
    last = 0.0

    def plain(done: int, status: str = "") -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < PLAIN_EVERY_S and done != total:
            return
        last = now
        elapsed = max(now - started, 1e-9)
        rate = done / elapsed
        line = f"{what}: {done:,} {unit}" + (f" of {total:,}" if total else "")
        line += f", {rate:,.0f}/s"
        if total and rate > 0:
            line += f", ETA {max(0.0, (total - done) / rate):,.0f} s"
        console.print(line + (f", {status}" if status else ""), highlight=False)

    yield plain
