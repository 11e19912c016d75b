"""What the local PostgreSQL server is made of, below its lifecycle: its binaries, the user that
runs them, its data directory and password, and the killing of all its processes. The server
itself is ``stream.ops.postgres``, whose docstring explains why, as root, the ``postgres`` user
and sometimes a relocated data directory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from stream.errors import ConfigError

log = logging.getLogger(__name__)

#: The database, and the superuser owning it, that the first start creates.
DATABASE = "appraise"
USER = "appraise"
#: The unprivileged user Debian's package creates; initdb and postgres run as it when we are root.
OS_USER = "postgres"
INSTALL = "apt-get install -y postgresql"
_DEBIAN_BINS = Path("/usr/lib/postgresql")
# SIGKILLed processes disappear within milliseconds; this bounds a wait that should not end.
_GONE_S = 10.0


class PostgresError(ConfigError):
    """The local PostgreSQL server could not be set up or started; the message says why."""


@dataclass(frozen=True)
class RunAs:
    """The user initdb and postgres run as when this process is root."""

    uid: int
    gid: int


def find_postgres_bin(bin_dir: str | None = None) -> Path | None:
    """The directory of PostgreSQL's server programs: ``bin_dir`` if it holds ``initdb`` (and
    then only it), else the newest ``/usr/lib/postgresql/<version>/bin`` holding it (Debian),
    else the directory ``initdb`` on PATH resolves to; None when there is none."""
    if bin_dir is not None:
        given = Path(bin_dir)
        return given if (given / "initdb").is_file() else None
    debian = [found.parent for found in _DEBIAN_BINS.glob("*/bin/initdb") if found.is_file()]
    if debian:
        return max(debian, key=lambda path: _version_key(path.parent.name))
    on_path = shutil.which("initdb")
    return Path(on_path).resolve().parent if on_path else None


def binaries(bin_dir: str | None) -> Path:
    """:func:`find_postgres_bin`, or a one-line :class:`ConfigError` saying what to install."""
    found = find_postgres_bin(bin_dir)
    if found is None:
        where = bin_dir or f"{_DEBIAN_BINS}/*/bin or on PATH"
        raise ConfigError(f"PostgreSQL's initdb is not in {where}: {INSTALL}")
    if not (found / "postgres").is_file():
        raise ConfigError(f"PostgreSQL's postgres is not in {found} (initdb is): {INSTALL}")
    return found


def run_as() -> RunAs | None:
    """The ``postgres`` user when this process is root (None otherwise: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(OS_USER)
    except KeyError:
        raise ConfigError(
            f"PostgreSQL refuses to run as root and there is no user named {OS_USER} to run it "
            f"as: {INSTALL} creates one (or run appraise as another user)"
        ) from None
    return RunAs(entry.pw_uid, entry.pw_gid)


class AsUser(TypedDict):
    """``subprocess.Popen``'s arguments that run a child as another user."""

    user: int | None
    group: int | None
    extra_groups: list[int] | None


def as_user(user: RunAs | None) -> AsUser:
    """What ``subprocess.Popen`` needs to run a child as ``user`` (no extra groups)."""
    if user is None:
        return {"user": None, "group": None, "extra_groups": None}
    return {"user": user.uid, "group": user.gid, "extra_groups": []}


def password(path: Path) -> str:
    """The password in ``path``, made 0600 if it was not; a new one from :mod:`secrets` in a
    new file (0600 from the start) if there is none."""
    if not path.exists():
        new = secrets.token_urlsafe(32)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        with os.fdopen(os.open(path, flags, 0o600), "w") as out:
            out.write(new + "\n")
        return new
    if path.stat().st_mode & 0o077:
        log.warning("%s was readable by others; made it 0600", path)
        path.chmod(0o600)
    value = path.read_text(encoding="utf-8").strip()
    if not value:
        raise PostgresError(f"{path} is empty: restore the cluster's password")
    return value


@contextlib.contextmanager
def initdb_pwfile(value: str, user: RunAs | None) -> Iterator[Path]:
    """A temporary file holding ``value`` for ``initdb --pwfile``, readable by ``user`` only
    (under the system's temp directory, which it can reach), deleted on exit."""
    fd, name = tempfile.mkstemp(prefix="appraise-initdb-")  # 0600
    try:
        with os.fdopen(fd, "w") as out:
            out.write(value + "\n")
        if user is not None:
            os.chown(name, user.uid, user.gid)
        yield Path(name)
    finally:
        os.unlink(name)


def initdb_args(initdb: Path, data: Path, pwfile: Path) -> list[str]:
    """The initdb command of a cluster with the ``appraise`` superuser, SCRAM for every login."""
    # C.UTF-8 where the C library has it (glibc's is a directory), else no locale at all.
    has_c_utf8 = any(Path("/usr/lib/locale", name).exists() for name in ("C.utf8", "C.UTF-8"))
    return [str(initdb), "-D", str(data), "-U", USER, "--auth=scram-sha-256",
            f"--pwfile={pwfile}", "-E", "UTF8",
            "--locale=C.UTF-8" if has_c_utf8 else "--no-locale"]  # fmt: skip


def new_data_dir(root: Path, user: RunAs | None) -> Path:
    """An empty data directory for initdb that ``user`` can reach: ``root/data``, or, when
    ``user`` cannot traverse to ``root``, a new ``appraise-postgres-*`` directory under the
    system's temp directory that ``root/data`` links to. The path to give initdb is returned."""
    data = root / "data"
    if data.is_symlink():
        if data.is_dir():
            return data.resolve()  # an earlier initdb there did not finish
        log.warning("%s links to %s, which is gone: a new cluster", data, os.readlink(data))
        data.unlink()
    if user is None or _reachable(root, user):
        data.mkdir(mode=0o700, exist_ok=True)
        if user is not None:
            os.chown(data, user.uid, user.gid)
        return data
    with contextlib.suppress(FileNotFoundError):
        data.rmdir()  # left by an earlier start; initdb refuses a non-empty one anyway
    target = Path(tempfile.mkdtemp(prefix="appraise-postgres-"))  # 0700
    os.chown(target, user.uid, user.gid)
    data.symlink_to(target, target_is_directory=True)
    log.warning(
        "user %s cannot reach %s, so the cluster's data lives in %s (%s links to it)",
        OS_USER, root, target, data,
    )  # fmt: skip
    return target


def remove_data(root: Path) -> None:
    """Delete ``root/data`` and, if it is a link, the directory it links to."""
    data = root / "data"
    if data.is_symlink():
        target = Path(os.readlink(data))
        data.unlink()
        shutil.rmtree(target, ignore_errors=True)
    elif data.exists():
        shutil.rmtree(data)


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc; none where there is no /proc)."""
    found = []
    with contextlib.suppress(FileNotFoundError), os.scandir("/proc") as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                stat = Path(entry.path, "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for whoever adopted it to reap it does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a postmaster (or initdb) and its children and wait until all are gone; blocking,
    for milliseconds. Its children lead their own process groups: each group is killed too."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGSTOP)  # no new children while they are listed
        children = _children(proc.pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # its group: a child not yet in its own
        for child in children:
            for kill in (os.killpg, os.kill):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    kill(child, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + _GONE_S
        while any(_alive(child) for child in children) and time.monotonic() < deadline:
            time.sleep(0.01)
    proc.wait()


def server_version(bin_dir: Path) -> str:
    """The version ``postgres --version`` reports, e.g. ``15.18``."""
    out = subprocess.run(
        [bin_dir / "postgres", "--version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    found = re.search(r"\d+(\.\d+)*", out)
    return found.group(0) if found else out.strip()


def free_port(host: str) -> int:
    """A TCP port nobody listens on at ``host`` now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _reachable(root: Path, user: RunAs) -> bool:
    """Whether ``user`` can traverse every directory down to ``root`` (ACLs included): asked of
    the kernel by running ``test -x`` as that user."""
    done = subprocess.run(
        ["test", "-x", str(root)], cwd="/", env={}, check=False, timeout=30, **as_user(user)
    )
    return done.returncode == 0


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else -1 for part in name.split("."))
