"""Windows on the service's clock: what the pane windows and the realised-error windows share.

A clock per model version in a table (``stream.aggregate.clock``), kept within the service's
clock: an input more than ``skew_s`` ahead of ``now`` is not used (``Outcome.future``), a
restored clock beyond that is capped and its panes beyond it dropped, and :meth:`idle` moves a
silent stream's watermark by the wall clock. ``now`` is passed in (wall time, Unix seconds; the
app passes ``time.time()``, the unit tests a number).
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field

from stream.aggregate.clock import Admission, Advance, Clock
from stream.aggregate.summary import ErrorSummary, WindowSummary
from stream.aggregate.windows import Window, WindowSpec
from stream.contract.times import unix_rfc3339
from stream.errors import DataError

log = logging.getLogger(__name__)

Table = MutableMapping[str, str]


@dataclass
class Outcome:
    """What one input (or one idle tick) did: its admission and the windows it closed."""

    admission: Admission | None = None
    duplicate: bool = False
    closed: list[WindowSummary] = field(default_factory=list)
    closed_errors: list[ErrorSummary] = field(default_factory=list)
    future: int = 0
    """Inputs, or stored panes of a capped clock, not used: beyond now + skew."""
    capped: float | None = None
    """The watermark of a restored clock that was beyond now + skew, before it was capped."""
    emptied: list[Window] = field(default_factory=list)
    """Pane windows that closed holding no pane (newest of each kind): no data."""
    emptied_errors: list[Window] = field(default_factory=list)
    """Realised-error windows that closed holding no sale (newest of each kind)."""


class TimedWindows:
    """What the pane windows and the error windows share: a clock per model version in a
    table, kept within the service's clock, and the pane contents in another table."""

    def __init__(
        self,
        specs: Sequence[WindowSpec],
        lateness: float,
        panes: Table,
        clocks: Table,
        *,
        skew_s: float,
        idle_s: float,
    ) -> None:
        self.specs = tuple(specs)
        self.lateness = lateness
        self.panes = panes
        self.clocks = clocks
        self.skew_s = skew_s
        self.idle_s = idle_s

    def idle(self, version: str, now: float) -> Outcome:
        """An idle tick at wall time ``now``: cap the clock, and once no input was taken for
        ``idle_s``, move its watermark by the wall clock (closing windows as inputs would)."""
        stored = self.clocks.get(version)
        if stored is None:
            return Outcome()
        outcome = Outcome()
        clock = self._load(version, 0.0, now, outcome)
        if clock.arrival is None:  # written before the idle advance: silence counts from now
            clock.note_arrival(now)
        target = clock.idle_target(now, self.idle_s)
        if target is not None:
            moved = clock.advance_to(min(target, now + self.skew_s), *self._rules)
            self._moved(clock, moved, outcome)
        text = clock.to_json()
        if text != stored:
            self.clocks[version] = text
        return outcome

    def due_for_tick(self, now: float) -> list[str]:
        """The versions an idle tick at ``now`` would change: silent and not yet settled, beyond
        the cap, or written before the idle advance."""
        due = []
        for version, text in list(self.clocks.items()):
            try:
                clock = Clock.from_json(text)
            except DataError:
                continue
            if (
                (clock.arrival is None and clock.watermark is not None)
                or (clock.watermark is not None and clock.watermark > now + self.skew_s)
                or (
                    clock.idle_target(now, self.idle_s) is not None
                    and not clock.settled(self.specs, self.lateness)
                )
            ):
                due.append(version)
        return due

    @property
    def _rules(self) -> tuple[tuple[WindowSpec, ...], float]:
        return self.specs, self.lateness

    def _load(self, version: str, width: float, now: float, outcome: Outcome) -> Clock:
        """The clock of ``version`` (a new one of pane ``width`` if none), capped at now + skew;
        the contents of its panes beyond the cap are dropped."""
        stored = self.clocks.get(version)
        if stored is None:
            return Clock(version, width)
        clock = Clock.from_json(stored)
        before = clock.watermark
        beyond = clock.cap(now + self.skew_s)
        if before is not None and before != clock.watermark:
            outcome.capped = before
            log.warning(
                "the restored clock of model %s had its watermark at %s, beyond this clock plus "
                "the allowed skew (%s): capped there, %d pane(s) beyond it dropped",
                version,
                unix_rfc3339(before),
                unix_rfc3339(now + self.skew_s),
                len(beyond),
            )
        for start in beyond:
            self._forget(pane_key(version, start))
        outcome.future += len(beyond)
        return clock

    def _moved(self, clock: Clock, moved: Advance, outcome: Outcome) -> None:
        for window, starts in moved.closed:
            self._close(window, starts, outcome)
        for start in moved.expired:
            self._forget(pane_key(clock.model_version, start))
        self._emptied(moved.emptied, outcome)

    def _close(self, window: Window, starts: list[float], outcome: Outcome) -> None:
        raise NotImplementedError

    def _emptied(self, windows: list[Window], outcome: Outcome) -> None:
        raise NotImplementedError

    def _forget(self, key: str) -> None:
        self.panes.pop(key, None)


def warn_future(what: str, version: str, at: float, now: float, skew_s: float) -> None:
    log.warning(
        "%s %s at %s is more than %g s ahead of this clock (%s): dropped",
        what,
        version,
        unix_rfc3339(at),
        skew_s,
        unix_rfc3339(now),
    )


def pane_key(version: str, start: float) -> str:
    return f"{version}/{start:.3f}"
