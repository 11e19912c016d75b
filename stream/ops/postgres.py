"""A local PostgreSQL server for ``appraise up --history``, the tests and the benchmarks: the
binaries of Debian's ``postgresql`` package run directly (no pg_ctl, and neither the cluster nor
the systemd service the package creates).

``root`` is the component's directory: ``data/`` (PGDATA, made by initdb at the first start),
``password`` (the superuser ``appraise``'s, mode 0600, generated with :mod:`secrets` at the first
start: there is no default password) and ``postgres.log`` (initdb's and the server's output,
appended). A later start reuses the data and the password; a restart of the same object also
reuses the port, so its clients reconnect to the same address.

Run as root, initdb and postgres run as the ``postgres`` user the Debian package creates:
PostgreSQL refuses to run as root (a database superuser can run code as the server's user, which
must therefore not be all-powerful), and CI runs as root. ``data/`` then belongs to that user
(0700), and the user must be able to reach it. A root it cannot traverse (under ``/root``, or
pytest's ``/tmp/pytest-of-root``, both 0700) is detected by running ``test -x`` as that user;
the data then lives in an ``appraise-postgres-*`` directory under the system's temp directory and
``root/data`` is a symlink to it (logged), so a later start with the same root finds the same
data, and :meth:`LocalPostgres.remove` deletes both. As any other user, everything runs as that
user and nothing is chowned.

Every child of the postmaster calls ``setsid()``, so its backends are not in its process group:
``stop()`` and ``crash()`` find them by parent pid in ``/proc``, stop the postmaster from forking
more (SIGSTOP) while they do, and wait until all of them are gone.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import logging
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import IO

import psycopg
from psycopg import sql

from stream.contract.times import now_rfc3339
from stream.errors import ConfigError
from stream.ops import pgcluster
from stream.ops.pgcluster import DATABASE, USER, PostgresError, find_postgres_bin
from stream.service.component import Component
from stream.service.process import die_with_parent_fn

__all__ = ["DATABASE", "USER", "LocalPostgres", "PostgresError", "PostgresPortInUse",
           "find_postgres_bin"]  # fmt: skip

log = logging.getLogger(__name__)

# A fast shutdown rolls back open transactions and writes a checkpoint: seconds, even loaded.
_STOP_GRACE_S = 30.0
# How often start() checks the server while waiting for it to accept connections.
_WATCH_S = 0.05
_TAIL_BYTES = 4_000
# A port picked with port=0 may be taken by someone else before postgres binds it: try again.
_FREE_PORT_ATTEMPTS = 3
# A Unix socket's path is at most 107 bytes; postgres adds "/.s.PGSQL.<port>.lock" to the dir.
_SOCKET_DIR_MAX = 85


class PostgresPortInUse(PostgresError):
    """The server's port is taken by another process."""


class LocalPostgres(Component):
    """A PostgreSQL server in a child process, listening on ``host:port`` (``port=0``: a free
    port, picked at the first start and kept), its cluster in ``root`` (see the module docstring).

    ``start()`` runs initdb the first time, launches ``postgres`` in its own session with its
    output in :attr:`log_path`, waits (at most ``startup_timeout_s`` in all) until a connection
    with the password succeeds, and creates the database ``appraise`` if it is absent. ``stop()``
    asks for a fast shutdown (SIGINT), kills what is left after 30 s, and is idempotent; ``async
    with`` does both. :meth:`crash` kills the server the way a crash would; ``start()`` then
    recovers from the WAL.

    Clients connect with :attr:`dsn` (no password in it) and the password in
    :attr:`password_file`. The binaries are ``bin_dir``'s, else Debian's newest, else those on
    PATH (:func:`find_postgres_bin`). An ``atexit`` hook kills the server if the interpreter exits
    without ``stop()``, and the kernel kills the postmaster when this process dies without running
    either (``stream.service.process``); its backends then exit by themselves.
    """

    def __init__(
        self,
        root: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bin_dir: str | None = None,
        startup_timeout_s: float = 60.0,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ConfigError(f"PostgreSQL port {port} is invalid: expected 0-65535 (0 picks one)")
        self.root = Path(root).absolute()
        self._host = host
        self._port = port
        self._bin_dir = bin_dir
        self._startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_start = 0  # where this start's output begins in the appended log
        self._atexit_kill: functools.partial[None] | None = None
        self._version: str | None = None
        #: Seconds of the last start() in all, and from launching postgres until it answered.
        self.started_in_s: float | None = None
        self.ready_after_s: float | None = None

    # -- what clients need ---------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The address it listens on."""
        return self._host

    @property
    def port(self) -> int:
        """The port it listens on (0 until the first start when picking one)."""
        return self._port

    @property
    def dsn(self) -> str:
        """libpq conninfo of the ``appraise`` database, without the password."""
        if self._port == 0:
            raise PostgresError("the local PostgreSQL picks its port in start(): start it first")
        return f"host={self._host} port={self._port} dbname={DATABASE} user={USER}"

    @property
    def password_file(self) -> Path:
        """The file holding the ``appraise`` user's password (mode 0600)."""
        return self.root / "password"

    @property
    def log_path(self) -> Path:
        """initdb's and the server's output, appended at every start."""
        return self.root / "postgres.log"

    @property
    def pid(self) -> int | None:
        """The postmaster's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """True while the postmaster is alive."""
        return self._running and self._proc is not None and self._proc.poll() is None

    @property
    def version(self) -> str:
        """The server's version, e.g. ``15.18`` (from ``postgres --version``)."""
        if self._version is None:
            self._version = pgcluster.server_version(pgcluster.binaries(self._bin_dir))
        return self._version

    # -- lifecycle -----------------------------------------------------------------------------

    async def _start(self) -> None:
        """Prepare the cluster (initdb the first time), launch postgres, wait until it answers.

        Raises :class:`ConfigError` when the binaries or the ``postgres`` user (as root) are
        missing, :class:`PostgresError` when initdb fails, or the server exits or does not answer
        in time (quoting its log). Never leaves a process behind when it raises.
        """
        begun = time.monotonic()
        deadline = begun + self._startup_timeout_s
        binaries, user = pgcluster.binaries(self._bin_dir), pgcluster.run_as()
        self.root.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("a+b")
        data, password = await self._prepare(binaries, user, deadline)
        picked = self._port == 0
        attempts = _FREE_PORT_ATTEMPTS if picked else 1
        for attempt in range(1, attempts + 1):
            if picked:
                self._port = pgcluster.free_port(self._host)
            try:
                await self._launch(binaries / "postgres", data, password, user, deadline)
                break
            except PostgresPortInUse:
                await asyncio.to_thread(self._kill)
                if attempt == attempts:
                    self._port = 0 if picked else self._port  # the next start picks again
                    raise
        self.started_in_s = time.monotonic() - begun
        log.info(
            "PostgreSQL %s pid %s ready on %s:%d in %.3f s (%s)",
            self.version, self.pid, self._host, self._port, self.started_in_s, data,
        )  # fmt: skip

    async def _stop(self) -> None:
        """Fast shutdown (SIGINT), then SIGKILL to every process of the server after 30 s."""
        proc = self._proc
        try:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    await asyncio.to_thread(proc.wait, _STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    log.warning("PostgreSQL pid %d ignored the fast shutdown; killing it", proc.pid)
                await asyncio.to_thread(self._kill)
        finally:
            # Also reached when stop() is cancelled (a second Ctrl-C): never leave it running.
            self._kill()
            self._close_log()
            if proc is not None:
                log.info("PostgreSQL pid %d stopped", proc.pid)

    async def crash(self) -> None:
        """SIGKILL the postmaster and all its processes, as a crash would, and wait until they are
        gone. The component is then stopped; ``start()`` recovers the committed data from the WAL
        and serves on the same port."""
        self._running = False
        pid = self.pid
        try:
            await asyncio.to_thread(self._kill)
        finally:
            self._kill()
            self._close_log()
        if pid is not None:
            log.warning("PostgreSQL pid %d in %s killed on purpose (SIGKILL)", pid, self.root)

    async def remove(self) -> None:
        """Stop, then delete the cluster: ``data/`` (and the directory it links to) and the
        password. The log stays. The next start creates a new, empty cluster."""
        await self.stop()
        await asyncio.to_thread(pgcluster.remove_data, self.root)
        self.password_file.unlink(missing_ok=True)

    # -- internals -----------------------------------------------------------------------------

    async def _prepare(
        self, binaries: Path, user: pgcluster.RunAs | None, deadline: float
    ) -> tuple[Path, str]:
        """The data directory to run (resolved) and the password, after initdb if needed."""
        data = self.root / "data"
        if (data / "PG_VERSION").is_file():
            if not self.password_file.is_file():
                raise PostgresError(
                    f"{data} holds a cluster but its password file {self.password_file} is gone: "
                    f"restore it, or delete {data} for a new, empty cluster"
                )
            return data.resolve(), pgcluster.password(self.password_file)
        password = pgcluster.password(self.password_file)
        target = await asyncio.to_thread(pgcluster.new_data_dir, self.root, user)
        with pgcluster.initdb_pwfile(password, user) as pwfile:
            args = pgcluster.initdb_args(binaries / "initdb", target, pwfile)
            code = await self._run(args, user, deadline)
        if code != 0:
            raise PostgresError(
                f"initdb exited with code {code} for {target}. "
                f"{self.log_path} ends:\n{self._tail()}"
            )
        return target, password

    # -- the server ----------------------------------------------------------------------------

    async def _launch(
        self,
        postgres: Path,
        data: Path,
        password: str,
        user: pgcluster.RunAs | None,
        deadline: float,
    ) -> None:
        """Launch postgres, wait until it accepts the password, create the database if absent."""
        # The socket beside the data: reachable by the server's user. Too long a path: TCP only.
        sockets = f'"{data}"' if len(str(data)) <= _SOCKET_DIR_MAX else ""
        args = [str(postgres), "-D", str(data), "-p", str(self._port),
                "-c", f"listen_addresses={self._host}",
                "-c", f"unix_socket_directories={sockets}"]  # fmt: skip
        launched = time.monotonic()
        proc = self._proc = self._popen(args, user)
        self._atexit_kill = functools.partial(pgcluster.kill_tree, proc)
        atexit.register(self._atexit_kill)
        while True:
            if proc.poll() is not None:
                raise self._exited_error(proc.returncode)
            try:
                conn = await psycopg.AsyncConnection.connect(
                    host=self._host, port=self._port, dbname="postgres", user=USER,
                    password=password, autocommit=True, connect_timeout=2,
                    sslmode="disable", gssencmode="disable",
                )  # fmt: skip
                break
            except psycopg.OperationalError as exc:
                if "password authentication failed" in str(exc):
                    raise PostgresError(
                        f"PostgreSQL on port {self._port} refused the password in "
                        f"{self.password_file}: it is not this cluster's (or another server "
                        "holds the port)"
                    ) from None
                if time.monotonic() > deadline:
                    raise PostgresError(
                        f"PostgreSQL did not accept connections on {self._host}:{self._port} "
                        f"within {self._startup_timeout_s} s ({exc}). {self.log_path} ends:\n"
                        f"{self._tail()}"
                    ) from None
            await asyncio.sleep(_WATCH_S)
        self.ready_after_s = time.monotonic() - launched
        async with conn:
            cur = await conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if await cur.fetchone() is None:
                create = sql.SQL("CREATE DATABASE {} OWNER {}")
                await conn.execute(create.format(sql.Identifier(DATABASE), sql.Identifier(USER)))

    def _popen(self, args: list[str], user: pgcluster.RunAs | None) -> subprocess.Popen[bytes]:
        """A child in its own session, as ``user``, output to the log, dying with us."""
        # subprocess.Popen, not asyncio's: the server must not belong to one event loop (the CLI
        # and the test session use it across loops).
        if self._log is None:
            raise RuntimeError("the log is opened by start()")
        stamp = now_rfc3339()
        self._log.write(f"--- {stamp} appraise runs {args}\n".encode())
        self._log.flush()
        self._log_start = os.fstat(self._log.fileno()).st_size
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd="/",
            env={name: os.environ[name] for name in ("PATH", "TZ") if name in os.environ},
            start_new_session=True,  # a Ctrl-C in the terminal does not reach it
            preexec_fn=die_with_parent_fn(),  # runs after the switch to user: it sticks
            **pgcluster.as_user(user),
        )

    async def _run(self, args: list[str], user: pgcluster.RunAs | None, deadline: float) -> int:
        """Run a short program to its end (killed on timeout or cancellation); its exit code."""
        proc = self._popen(args, user)
        try:
            while (code := proc.poll()) is None:
                if time.monotonic() > deadline:
                    raise PostgresError(
                        f"{Path(args[0]).name} did not finish within {self._startup_timeout_s} s. "
                        f"{self.log_path} ends:\n{self._tail()}"
                    )
                await asyncio.sleep(_WATCH_S)
            return code
        finally:
            pgcluster.kill_tree(proc)

    def _kill(self) -> None:
        """Kill the server, if any, with every process of it (blocking, briefly)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            pgcluster.kill_tree(proc)
        if self._atexit_kill is not None:
            atexit.unregister(self._atexit_kill)
            self._atexit_kill = None

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def _exited_error(self, returncode: int) -> PostgresError:
        tail = self._tail()
        if "Address already in use" in tail:
            return PostgresPortInUse(
                f"port {self._port} on {self._host} is already in use, so PostgreSQL cannot listen "
                "there: stop that process or choose another port"
            )
        return PostgresError(
            f"PostgreSQL exited with code {returncode} while starting on {self._host}:"
            f"{self._port}. {self.log_path} ends:\n{tail}"
        )

    def _tail(self) -> str:
        if self._log is None:
            return "(no log)"
        fd = self._log.fileno()
        start = max(self._log_start, os.fstat(fd).st_size - _TAIL_BYTES)
        return os.pread(fd, _TAIL_BYTES, start).decode(errors="replace").strip() or "(empty)"
