"""What tests of PostgreSQL's users need: a database of their own (the ``postgres_db`` fixture of
tests/conftest.py), a connection with the password, and the processes of a server."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow


@dataclass(frozen=True)
class Database:
    """A fresh database of the session's local PostgreSQL, dropped after the test.

    ``dsn`` is a libpq conninfo without the password (the ``appraise`` superuser);
    ``password_file`` holds the password.
    """

    dsn: str
    password_file: Path
    name: str


def password(password_file: Path) -> str:
    """The password in a server's password file."""
    return password_file.read_text(encoding="utf-8").strip()


async def connect(
    dsn: str, password_file: Path, **kwargs: Any
) -> psycopg.AsyncConnection[TupleRow]:
    """An async connection to ``dsn`` with the password of ``password_file``."""
    return await psycopg.AsyncConnection.connect(dsn, password=password(password_file), **kwargs)


def with_dbname(dsn: str, name: str) -> str:
    """``dsn`` naming the database ``name`` instead."""
    return make_conninfo(dsn, dbname=name)


def _stat(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` after the command name: state, ppid, pgrp, ... (None: no such pid)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for whoever adopted it to reap it does not)."""
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def cluster_pids(postmaster: int) -> set[int]:
    """The postmaster, its children (each leads its own process group: PostgreSQL's children
    call setsid()) and every member of its process group and of theirs."""
    stats = {int(name): _stat(int(name)) for name in os.listdir("/proc") if name.isdigit()}
    children = {
        pid for pid, stat in stats.items() if stat is not None and int(stat[1]) == postmaster
    }
    groups = {postmaster, *children}
    members = {pid for pid, stat in stats.items() if stat is not None and int(stat[2]) in groups}
    return {postmaster, *children, *members}


def uid(pid: int) -> int:
    """The real user id of a process (``Uid:`` in ``/proc/<pid>/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for pid {pid}")
