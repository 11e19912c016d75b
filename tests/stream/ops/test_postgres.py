"""The local PostgreSQL server against the real binaries: passwords, data across restarts and a
crash, no process left behind, and who runs it when the tests run as root (CI)."""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import stat
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from stream.errors import ConfigError
from stream.ops.postgres import LocalPostgres, PostgresPortInUse
from tests.needs import postgres_bin
from tests.postgres import Database, alive, cluster_pids, connect, password, uid

pytestmark = pytest.mark.integration

_AS_ROOT = os.geteuid() == 0
_TEMP_DIR = Path(tempfile.gettempdir()).resolve()


@contextlib.asynccontextmanager
async def _server(root: Path, **kwargs: object) -> AsyncIterator[LocalPostgres]:
    """A server of a test's own, its cluster deleted afterwards (also one outside tmp_path)."""
    server = LocalPostgres(root, bin_dir=str(postgres_bin()), **kwargs)  # type: ignore[arg-type]
    try:
        await server.start()
        yield server
    finally:
        await server.remove()


async def _rows(server: LocalPostgres) -> list[str]:
    async with await connect(server.dsn, server.password_file) as conn:
        cur = await conn.execute("SELECT note FROM notes ORDER BY id")
        return [note for (note,) in await cur.fetchall()]


async def _write(server: LocalPostgres, *notes: str) -> None:
    async with await connect(server.dsn, server.password_file) as conn:
        await conn.execute("CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, note text)")
        for note in notes:
            await conn.execute("INSERT INTO notes (note) VALUES (%s)", (note,))


def _postgres_uid() -> int:
    return pwd.getpwnam("postgres").pw_uid


async def test_answers_a_query_with_the_password(postgres_server: LocalPostgres) -> None:
    assert postgres_server.running
    assert postgres_server.port > 0
    assert postgres_server.dsn == (
        f"host=127.0.0.1 port={postgres_server.port} dbname=appraise user=appraise"
    )
    async with await connect(postgres_server.dsn, postgres_server.password_file) as conn:
        cur = await conn.execute("SELECT current_user, current_database(), version()")
        row = await cur.fetchone()
    assert row is not None
    assert row[:2] == ("appraise", "appraise")
    assert re.fullmatch(r"\d+\.\d+", postgres_server.version)
    assert f"PostgreSQL {postgres_server.version} " in row[2]


@pytest.mark.parametrize("given", [None, "postgres", "appraise", "wrong"])
async def test_refuses_a_connection_without_the_password(
    postgres_server: LocalPostgres,
    given: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    # No ~/.pgpass either: libpq would read it when no password is given.
    dsn = make_conninfo(postgres_server.dsn, passfile=str(tmp_path / "none"), password=given)
    with pytest.raises(psycopg.OperationalError, match="password"):
        await psycopg.AsyncConnection.connect(dsn)


async def test_the_password_file_is_private_and_random(
    postgres_server: LocalPostgres, tmp_path: Path
) -> None:
    info = postgres_server.password_file.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_uid == os.geteuid()
    secret = password(postgres_server.password_file)
    assert len(secret) >= 32
    async with _server(tmp_path / "other") as other:
        assert password(other.password_file) != secret


async def test_data_and_password_survive_stop_and_start(tmp_path: Path) -> None:
    async with _server(tmp_path / "pg") as server:
        port, secret = server.port, password(server.password_file)
        await _write(server, "before")
        await server.stop()
        assert not server.running
        await server.start()
        assert server.port == port  # the same address for the clients
        assert await _rows(server) == ["before"]
        await server.stop()
        again = LocalPostgres(tmp_path / "pg", bin_dir=str(postgres_bin()))
        async with again:  # a new object on the same root: the same cluster, another port
            assert await _rows(again) == ["before"]
        assert password(server.password_file) == secret


async def test_crash_then_start_recovers_committed_rows_on_the_same_port(tmp_path: Path) -> None:
    async with _server(tmp_path / "pg") as server:
        port = server.port
        await _write(server, "committed")
        open_tx = await connect(server.dsn, server.password_file)
        await open_tx.execute("INSERT INTO notes (note) VALUES ('never committed')")
        assert server.pid is not None
        pids = cluster_pids(server.pid)
        await server.crash()
        await open_tx.close()
        assert not server.running
        assert [pid for pid in pids if alive(pid)] == []
        await server.start()
        assert server.port == port
        assert await _rows(server) == ["committed"]
        log = server.log_path.read_text()
        assert "not properly shut down; automatic recovery in progress" in log


async def test_stop_leaves_no_process_of_the_cluster(tmp_path: Path) -> None:
    async with _server(tmp_path / "pg") as server:
        assert server.pid is not None
        conn = await connect(server.dsn, server.password_file)
        await conn.execute("SELECT 1")
        pids = cluster_pids(server.pid)
        assert len(pids) > 2  # the postmaster, its workers, this connection's backend
        await server.stop()
        await conn.close()
    assert [pid for pid in pids if alive(pid)] == []


async def test_a_port_in_use_fails_the_start_and_leaves_nothing(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = LocalPostgres(
            tmp_path / "pg", port=taken.getsockname()[1], bin_dir=str(postgres_bin())
        )
        try:
            with pytest.raises(PostgresPortInUse, match="already in use"):
                await server.start()
            assert not server.running
            assert server.pid is None
            data = str((tmp_path / "pg" / "data").resolve())
            assert [pid for pid in _processes() if data in _cmdline(pid)] == []
        finally:
            await server.remove()


async def test_missing_binaries_are_one_line_naming_the_package(tmp_path: Path) -> None:
    server = LocalPostgres(tmp_path / "pg", bin_dir=str(tmp_path / "no-bin"))
    with pytest.raises(ConfigError) as raised:
        await server.start()
    message = str(raised.value)
    assert "\n" not in message
    assert "initdb" in message
    assert "apt-get install -y postgresql" in message


@pytest.mark.skipif(not _AS_ROOT, reason="only a root process hands the server to postgres")
async def test_as_root_the_server_runs_as_postgres(postgres_server: LocalPostgres) -> None:
    assert postgres_server.pid is not None
    pids = cluster_pids(postgres_server.pid)
    assert {uid(pid) for pid in pids if alive(pid)} == {_postgres_uid()}
    data = (postgres_server.root / "data").resolve()
    assert data.stat().st_uid == _postgres_uid()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700


@pytest.mark.skipif(not _AS_ROOT, reason="only a root process hands the server to postgres")
async def test_as_root_an_unreachable_root_keeps_its_data_in_the_temp_dir(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    async with _server(private / "pg") as server:
        link = server.root / "data"
        assert link.is_symlink()
        target = link.resolve()
        assert target.parent == _TEMP_DIR
        assert target.name.startswith("appraise-postgres-")
        assert target.stat().st_uid == _postgres_uid()
        await _write(server, "kept")
        await server.stop()
        async with LocalPostgres(server.root, bin_dir=str(postgres_bin())) as again:
            assert await _rows(again) == ["kept"]
    assert not target.exists()  # remove() deleted it with the link


@pytest.mark.skipif(not _AS_ROOT, reason="only a root process hands the server to postgres")
async def test_as_root_a_reachable_root_keeps_its_data_in_place() -> None:
    base = Path(tempfile.mkdtemp(prefix="appraise-test-"))
    try:
        os.chmod(base, 0o755)  # noqa: S103 - traversable by postgres, as a home directory is
        async with _server(base / "pg") as server:
            data = server.root / "data"
            assert not data.is_symlink()
            assert data.stat().st_uid == _postgres_uid()
            await _write(server, "in place")
    finally:
        shutil.rmtree(base)


async def test_postgres_db_is_a_fresh_database(postgres_db: Database) -> None:
    async with await connect(postgres_db.dsn, postgres_db.password_file) as conn:
        cur = await conn.execute("SELECT current_database(), count(*) FROM pg_tables "
                                 "WHERE schemaname = 'public'")  # fmt: skip
        assert await cur.fetchone() == (postgres_db.name, 0)
        await conn.execute("CREATE TABLE scratch (x int)")


def _processes() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit() and alive(int(name))]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
