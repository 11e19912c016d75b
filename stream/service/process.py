"""Child processes that never outlive their parent, and the CPUs this process may use.

Every child the product starts (the embedded broker, the parts of ``appraise up``, Prometheus,
Alertmanager) is started with :func:`die_with_parent_fn`'s function as its ``preexec_fn``, and
a Python worker process (``appraise bench detection``'s pool) calls :func:`die_with` first: on
Linux the kernel sends it SIGKILL when the thread that started it ends, even when the parent is
SIGKILLed and runs no cleanup. Children are therefore started from the event loop's thread,
which lives as long as the process. Elsewhere (macOS) it does nothing and the parents' own
stop paths are the only guard.

Why our own: neither the standard library nor a maintained package sets ``PR_SET_PDEATHSIG``
for a child (``python-prctl`` needs libcap headers to build and wraps all of prctl); the call
is one line of ctypes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable
from typing import Final

# From <linux/prctl.h>.
_PR_SET_PDEATHSIG: Final = 1


def _libc_prctl() -> Callable[[int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    prctl: Callable[[int, int], int] = libc.prctl
    return prctl


# Looked up once in the parent: the child between fork and exec must only make the call.
_PRCTL: Final = _libc_prctl()


def die_with(parent: int) -> None:
    """In a child of ``parent``: have the kernel SIGKILL this process when the parent's thread
    that started it ends (nothing off Linux)."""
    if _PRCTL is None:
        return
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)
    # The parent may have died before the call: then no signal would ever come.
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)


def die_with_parent_fn() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the child killed when this process ends (None off Linux)."""
    if _PRCTL is None:
        return None
    parent = os.getpid()

    def die_with_parent() -> None:
        die_with(parent)

    return die_with_parent


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity where the OS has one, else all)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
