"""The base of every long-lived part: ``await start()``, idempotent ``await stop()``, and
``async with`` for both (the scorer, the stream app, the embedded broker, the HTTP servers).

A subclass implements ``_start`` and ``_stop``. :meth:`Component.start` is a no-op while
running; if ``_start`` fails (or is cancelled) half-way, ``_stop`` runs before the error
propagates, so nothing is left half-started. :meth:`Component.stop` is a no-op when not running;
a stopped component may be started again if its subclass allows it.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Component:
    """A part with a start and a stop; see the module docstring."""

    _running: bool = False

    @property
    def running(self) -> bool:
        """True between a successful :meth:`start` and the next :meth:`stop`."""
        return self._running

    async def start(self) -> None:
        """Start; idempotent. On failure, whatever was started is stopped again."""
        if self._running:
            return
        self._running = True
        try:
            await self._start()
        except BaseException:
            self._running = False
            await self._stop()
            raise

    async def stop(self) -> None:
        """Stop; idempotent, and safe after a failed start."""
        if not self._running:
            return
        self._running = False
        await self._stop()

    async def _start(self) -> None:
        raise NotImplementedError

    async def _stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
