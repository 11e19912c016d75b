"""``appraise`` commands as child processes in tests: their log collected, their exit awaited,
killed on the way out if they still run."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field

from stream.service.process import die_with_parent_fn


@dataclass
class AppraiseProcess:
    """An ``appraise`` command as a child process; its log lines are collected as they come."""

    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None

    async def wait_for_line(self, needle: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            for line in self.lines:
                if needle in line:
                    return line
            if self.process.returncode is not None or time.monotonic() > deadline:
                raise AssertionError(f"no log line with {needle!r}; log:\n" + "".join(self.lines))
            await asyncio.sleep(0.05)

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    async def wait(self, timeout_s: float) -> int:
        async with asyncio.timeout(timeout_s):
            code = await self.process.wait()
        if self._reader is not None:
            await self._reader
        return code


@contextlib.asynccontextmanager
async def appraise_process(
    args: Sequence[str], env: Mapping[str, str]
) -> AsyncIterator[AppraiseProcess]:
    """Start ``appraise <args>`` (``python -m stream``); kill it on exit if it still runs."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "stream",
        *args,
        env=dict(env),
        preexec_fn=die_with_parent_fn(),  # a killed test run takes it with it
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    child = AppraiseProcess(process)

    async def collect() -> None:
        assert process.stderr is not None
        async for line in process.stderr:
            child.lines.append(line.decode(errors="replace"))

    child._reader = asyncio.create_task(collect())
    try:
        yield child
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await child._reader


def scorer_process(
    env: Mapping[str, str],
) -> contextlib.AbstractAsyncContextManager[AppraiseProcess]:
    """``appraise score`` as a child process (see :func:`appraise_process`)."""
    return appraise_process(["score"], env)
