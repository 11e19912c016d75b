"""The clock of one stream of panes: its event-time watermark, lateness, closing windows, and
how the service's own clock bounds it and moves it through silence.

The event-time watermark of a stream is the latest pane start seen: the time the stream is known
to have reached (a pane's end would be too early a promise, since partials of the last pane keep
coming until it is over). A window closes once the watermark reaches ``end + allowed lateness``.
A pane that arrives for a window whose end the watermark has passed is *late* and still counted
while the window is open; once the window has closed it is *dropped* from that window. A pane in
several windows (hopping) can be dropped from the oldest and counted in the others.

The service's own clock (wall time, passed in as ``now``: the code here reads no clock) bounds
the watermark and moves it through silence:

- *Never past now + skew.* A watermark never passes ``now + event_time_skew_s``: a pane starting
  beyond it is dropped by the caller, and a restored clock whose watermark is beyond it (state
  written while a pane from the future blinded the app) is pulled back to it, its panes beyond
  it forgotten (:meth:`Clock.cap`).
- *Silence advances by the wall clock.* With no pane taken for ``idle_seconds`` of wall time,
  the watermark becomes the watermark at the last pane taken plus the wall time elapsed since
  (:meth:`Clock.idle_target`), capped as above. Event time is assumed to go on at the wall
  clock's pace from where the stream stopped: live traffic's windows close a little after they
  would have with traffic, and a replay of 2008 stays in 2008 (it is not thrown to today).
  When traffic resumes, live panes are at most their usual delay behind the advanced
  watermark, so they are counted (late at worst), not dropped; a replay paused for longer than
  ``idle_seconds`` and resumed finds the windows of the pause closed.
- *An empty window says so.* When the watermark passes the end (plus the lateness) of a window
  that holds no pane, the newest such window of each kind is reported (``emptied``), so the
  gauges can say "no data" instead of showing the last window with data forever. Once every
  kind has passed one (:meth:`Clock.settled`), an idle stream needs nothing more.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, NamedTuple

import orjson

from stream.aggregate.windows import DIGITS, Window, WindowSpec
from stream.errors import DataError

#: Format of :meth:`Clock.to_json`; a different one is refused, not misread.
CLOCK_FORMAT: Final = "appraise.window-clock/1"


@dataclass(frozen=True)
class Admission:
    """What happened to one pane: windows it counts in (``late`` ones among them) and windows
    it was dropped from because they had closed."""

    accepted: tuple[Window, ...]
    late: tuple[Window, ...]
    dropped: tuple[Window, ...]


class Advance(NamedTuple):
    """What one move of the watermark did."""

    closed: list[tuple[Window, list[float]]]
    """The windows that closed, in closing order, each with the starts of its panes."""
    expired: list[float]
    """Pane starts no open window needs any more (drop their contents)."""
    emptied: list[Window]
    """Per window kind, the newest window that closed holding no pane, if one did."""


@dataclass
class Clock:
    """The window state of one stream of panes of one model version.

    Holds the watermark and the starts of the panes kept for windows that are still open; the
    panes' contents live elsewhere (a table keyed by pane). Serialise with :meth:`to_json`.
    """

    model_version: str
    pane_seconds: float
    watermark: float | None = None
    panes: list[float] = field(default_factory=list)
    arrival: tuple[float, float] | None = None
    """Wall time (Unix s) the last pane was taken, and the watermark then: the idle base."""

    def admit(self, pane_start: float, specs: Sequence[WindowSpec], lateness: float) -> Admission:
        """Place a pane partial; keep its start if any window takes it (the caller stores its
        contents). Does not move the watermark: call :meth:`advance` next."""
        accepted: list[Window] = []
        late: list[Window] = []
        dropped: list[Window] = []
        for window in self._windows_of(pane_start, specs):
            if self.watermark is not None and self.watermark >= window.end + lateness:
                dropped.append(window)
                continue
            accepted.append(window)
            if self.watermark is not None and self.watermark >= window.end:
                late.append(window)
        start = round(pane_start, DIGITS)
        if accepted and start not in self.panes:
            self.panes.append(start)
            self.panes.sort()
        return Admission(tuple(accepted), tuple(late), tuple(dropped))

    def advance(
        self, pane_start: float, specs: Sequence[WindowSpec], lateness: float
    ) -> tuple[list[tuple[Window, list[float]]], list[float]]:
        """Move the watermark to ``pane_start`` if that is later (:meth:`advance_to`); the
        windows that closed and the pane starts no longer needed."""
        moved = self.advance_to(pane_start, specs, lateness)
        return moved.closed, moved.expired

    def advance_to(self, target: float, specs: Sequence[WindowSpec], lateness: float) -> Advance:
        """Move the watermark to ``target`` (a pane start, or an idle target) if that is
        later: the windows that closed, the panes no longer needed, the empty windows passed."""
        old = self.watermark
        new = round(target, DIGITS) if old is None else max(old, round(target, DIGITS))
        self.watermark = new
        if old is not None and new == old:
            return Advance([], [], [])
        closing: set[Window] = set()
        for start in self.panes:
            for window in self._windows_of(start, specs):
                due = window.end + lateness
                if (old is None or old < due) and due <= new:
                    closing.add(window)
        closed = [(w, [p for p in self.panes if w.start <= p < w.end]) for w in sorted(closing)]
        expired = [p for p in self.panes if _last_end(tuple(specs), p) + lateness <= new]
        self.panes = [p for p in self.panes if p not in expired]
        emptied = [] if old is None else self._emptied(old, new, specs, lateness, closing)
        return Advance(closed, expired, emptied)

    def _emptied(
        self,
        old: float,
        new: float,
        specs: Sequence[WindowSpec],
        lateness: float,
        closing: set[Window],
    ) -> list[Window]:
        """Per kind, the newest window that became due in (old, new] if it held no pane."""
        names = {(w.name, w.start) for w in closing}
        out = []
        for spec in specs:
            k = math.floor(round((new - lateness - spec.size) / spec.hop, DIGITS))
            start = round(k * spec.hop, DIGITS)
            end = round(start + spec.size, DIGITS)
            if old < end + lateness <= new and (spec.name, start) not in names:
                out.append(Window(end, spec.name, start, self.model_version))
        return sorted(out)

    def cap(self, limit: float) -> list[float]:
        """Keep the clock at or below ``limit`` (the service's clock plus the skew): a
        watermark beyond it is pulled back to it; the starts of kept panes beyond it are
        forgotten and returned (the caller drops their contents)."""
        limit = round(limit, DIGITS)
        beyond = [p for p in self.panes if p > limit]
        if beyond:
            self.panes = [p for p in self.panes if p <= limit]
        if self.watermark is not None and self.watermark > limit:
            self.watermark = limit
        if self.arrival is not None and self.arrival[1] > limit:
            self.arrival = (self.arrival[0], limit)
        return beyond

    def note_arrival(self, now: float) -> None:
        """A pane was taken at wall time ``now`` (after :meth:`advance_to`): silence counts
        from here."""
        if self.watermark is not None:
            self.arrival = (now, self.watermark)

    def idle_target(self, now: float, idle_seconds: float) -> float | None:
        """Where silence puts the watermark at wall time ``now``: the watermark at the last
        pane taken plus the wall time since; None until ``idle_seconds`` have passed without
        a pane (or before any pane was taken)."""
        if self.arrival is None:
            return None
        wall, base = self.arrival
        if now - wall < idle_seconds:
            return None
        return base + (now - wall)

    def settled(self, specs: Sequence[WindowSpec], lateness: float) -> bool:
        """Whether silence has nothing left to do: the watermark has passed, for every kind,
        the window after the newest one holding the last pane taken (so every kind has said
        "no data" and no pane is kept)."""
        if self.arrival is None or self.watermark is None:
            return False
        base = self.arrival[1]
        quiet = max(math.floor(round(base / s.hop, DIGITS)) * s.hop + s.hop + s.size for s in specs)
        return self.watermark >= round(quiet + lateness, DIGITS)

    def _windows_of(self, pane_start: float, specs: Sequence[WindowSpec]) -> tuple[Window, ...]:
        return _windows_of(tuple(specs), pane_start, self.model_version)

    def to_json(self) -> str:
        """The state as a JSON string (what the faust table stores)."""
        return orjson.dumps(
            {
                "format": CLOCK_FORMAT,
                "model_version": self.model_version,
                "pane_seconds": self.pane_seconds,
                "watermark": self.watermark,
                "panes": self.panes,
                "arrival": None if self.arrival is None else list(self.arrival),
            }
        ).decode()

    @classmethod
    def from_json(cls, text: str) -> Clock:
        """Rebuild a clock from :meth:`to_json`; :class:`DataError` for any other content."""
        try:
            data = orjson.loads(text)
            if data["format"] != CLOCK_FORMAT:
                raise DataError(f"window clock format {data['format']!r}, expected {CLOCK_FORMAT}")
            watermark = data["watermark"]
            # Written since the idle advance; a clock written before has none.
            arrival = data.get("arrival")
            return cls(
                model_version=str(data["model_version"]),
                pane_seconds=float(data["pane_seconds"]),
                watermark=None if watermark is None else float(watermark),
                panes=[float(p) for p in data["panes"]],
                arrival=None if arrival is None else (float(arrival[0]), float(arrival[1])),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DataError(f"not a window clock: {exc!r}") from exc


# Pure functions of a few arguments, asked again for every pane kept at every watermark move:
# cached, since a stream keeps a few dozen panes of a handful of specs at a time.
@functools.lru_cache(maxsize=8192)
def _windows_of(
    specs: tuple[WindowSpec, ...], pane_start: float, version: str
) -> tuple[Window, ...]:
    return tuple(
        Window(round(start + spec.size, DIGITS), spec.name, start, version)
        for spec in specs
        for start in spec.starts_of(pane_start)
    )


@functools.lru_cache(maxsize=8192)
def _last_end(specs: tuple[WindowSpec, ...], pane_start: float) -> float:
    return max(spec.last_end(pane_start) for spec in specs)
