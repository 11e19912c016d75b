"""Run the product's parts as child processes: start in order, watch, stop in reverse order.

Each child is the same ``appraise`` command a person (or docker compose) would run, with its
settings passed as ``APPRAISE_*`` variables and its output in ``<run dir>/<name>.log``. When one
child dies, the supervisor reports it with the tail of its log and stops the rest. No child
outlives the supervisor's process, even when that is SIGKILLed (``stream.service.process``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from stream.errors import AppraiseError
from stream.service.process import die_with_parent_fn

#: Beyond a child's own drain deadline, how long it has to exit after SIGTERM before SIGKILL.
STOP_MARGIN_S = 5.0
#: Lines of a dead child's log quoted in the report.
TAIL_LINES = 20


class ChildFailed(AppraiseError):
    """A child process exited while the run was meant to go on."""


@dataclass
class Child:
    """One running part: its command, log file and process."""

    name: str
    argv: Sequence[str]
    log_path: Path
    process: asyncio.subprocess.Process | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def tail(self, lines: int = TAIL_LINES) -> str:
        """The last lines of its log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def appraise_argv(*args: str) -> list[str]:
    """The ``appraise`` command line run by the current interpreter (works inside any venv)."""
    return [sys.executable, "-m", "stream", *args]


class Supervisor:
    """Starts children, waits for the first to die, and stops them all in reverse order.

    Args:
        run_dir: where each child's ``<name>.log`` goes.
        env: the children's environment.
        drain_deadline_s: how long a child may take to drain after SIGTERM (setting
            ``service.drain_deadline_s``); it is SIGKILLed ``STOP_MARGIN_S`` later.
    """

    def __init__(self, run_dir: Path, env: Mapping[str, str], drain_deadline_s: float) -> None:
        self.run_dir = run_dir
        self.env = dict(env)
        self.stop_grace_s = drain_deadline_s + STOP_MARGIN_S
        self.children: list[Child] = []

    async def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        ready: Callable[[], Awaitable[None]] | None = None,
        ready_timeout_s: float = 60.0,
        env: Mapping[str, str] | None = None,
    ) -> Child:
        """Launch a child and, if ``ready`` is given, wait for it (or for the child to die);
        ``env`` is laid over the run's environment for this child only."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        child = Child(name, list(argv), self.run_dir / f"{name}.log")
        child._log = child.log_path.open("ab")
        child.process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=child._log,
            stderr=asyncio.subprocess.STDOUT,
            env={**self.env, **(env or {})},
            # Own process group: a Ctrl-C in the terminal reaches only the supervisor, which then
            # stops the children in order (the scorer before the broker it commits to).
            start_new_session=True,
            preexec_fn=die_with_parent_fn(),
        )
        self.children.append(child)
        if ready is not None:
            await self._await_ready(child, ready, ready_timeout_s)
        return child

    async def _await_ready(
        self, child: Child, ready: Callable[[], Awaitable[None]], timeout_s: float
    ) -> None:
        assert child.process is not None  # noqa: S101 - set just before by start()
        readiness = asyncio.ensure_future(ready())
        death = asyncio.ensure_future(child.process.wait())
        done, _ = await asyncio.wait(
            {readiness, death}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        for task in (readiness, death):
            if task not in done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if death in done:
            raise ChildFailed(self._death_report(child))
        if readiness not in done:
            raise ChildFailed(
                f"{child.name} was not ready after {timeout_s:g} s; see {child.log_path}"
            )
        readiness.result()  # re-raise what the readiness check raised

    async def wait_for_failure(self) -> None:
        """Return when any child exits; raise ChildFailed describing it."""
        waits = {asyncio.ensure_future(c.process.wait()): c for c in self.children if c.process}
        if not waits:
            return
        done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        child = waits[next(iter(done))]
        raise ChildFailed(self._death_report(child))

    def _death_report(self, child: Child) -> str:
        code = child.process.returncode if child.process else None
        tail = child.tail()
        quoted = "\n".join(f"  | {line}" for line in tail.splitlines()) or "  | (empty log)"
        return f"{child.name} exited with code {code}; the end of {child.log_path}:\n{quoted}"

    async def stop_all(self) -> None:
        """SIGTERM each child, newest first; SIGKILL what is still there after the grace."""
        for child in reversed(self.children):
            await _stop(child, self.stop_grace_s)
        self.children.clear()


async def _stop(child: Child, grace_s: float) -> None:
    process = child.process
    if process is not None and process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    if child._log is not None:
        child._log.close()
