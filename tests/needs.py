"""What tests need from the machine and from time: real tools, and conditions to await."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest

from stream.ops.postgres import find_postgres_bin

#: The Debian package that brings each tool the tests run.
PACKAGES = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
    "openssl": "openssl",
    "initdb": "postgresql",
    "postgres": "postgresql",
}


def missing(message: str) -> NoReturn:
    """A required tool is missing: fail under CI (``CI`` set), skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def binary(name: str) -> str:
    """The path of a real binary. Missing: the test fails under CI and is skipped elsewhere,
    with the command that installs it."""
    found = shutil.which(name)
    if found is not None:
        return found
    return missing(f"{name} is not installed: apt-get install -y {PACKAGES.get(name, name)}")


def postgres_bin() -> Path:
    """The directory of PostgreSQL's server programs (``initdb``, ``postgres``), as
    ``stream.ops.postgres.LocalPostgres`` finds it. Missing: the test fails under CI and is
    skipped elsewhere, with the command that installs it."""
    found = find_postgres_bin()
    if found is not None and (found / "postgres").is_file():
        return found
    return missing(
        "PostgreSQL's server is not installed (no initdb and postgres in "
        f"/usr/lib/postgresql/*/bin or on PATH): apt-get install -y {PACKAGES['initdb']}"
    )


async def until(
    condition: Callable[[], bool],
    timeout_s: float,
    what: str,
    state: Callable[[], object] | None = None,
) -> None:
    """Await ``condition()`` (checked every 50 ms), or fail naming ``what`` and, if given, what
    ``state()`` says then."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            seen = "" if state is None else f" (state: {state()!r})"
            raise AssertionError(f"not within {timeout_s} s: {what}{seen}")
        await asyncio.sleep(0.05)
