"""Event-time windows over panes: which windows a pane belongs to, lateness, and when they close.

Pure and serialisable; the faust app (``stream.aggregate.app``) only stores and publishes.

A *pane* is a slice of event time ``[start, start + width)`` (the scorer's pane partials, or the
join's realised-error panes). A *window* ``[start, start + size)`` starts at a multiple of its
hop (tumbling: hop = size) and holds the panes that start inside it; sizes and hops are whole
multiples of the pane width.

The event-time watermark of a stream is the latest pane start seen: the time the stream is known
to have reached (a pane's end would be too early a promise, since partials of the last pane keep
coming until it is over). A window closes once the watermark reaches ``end + allowed lateness``.
A pane that arrives for a window whose end the watermark has passed is *late* and still counted
while the window is open; once the window has closed it is *dropped* from that window. A pane in
several windows (hopping) can be dropped from the oldest and counted in the others.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

import orjson

from stream.contract.times import unix_rfc3339
from stream.errors import DataError
from stream.settings import AggregateSettings

#: Format of :meth:`Clock.to_json`; a different one is refused, not misread.
CLOCK_FORMAT: Final = "appraise.window-clock/1"
# Float event times are compared after rounding to this many digits of a second: pane starts
# are multiples of the width computed by floor(t / w) * w, which may differ in the last bits.
_DIGITS: Final = 6


class PaneWidthError(DataError):
    """A pane whose width does not divide the window sizes and hops."""


def _is_multiple(value: float, width: float) -> bool:
    ratio = value / width
    return abs(ratio - round(ratio)) < 1e-9 and round(ratio) >= 1


def duration_label(seconds: float) -> str:
    """A short label for a window size, the ``window`` label of the gauges: ``1m``, ``5m``,
    ``90s``, ``1h``, ``1.5s``."""
    for unit, length in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= length and _is_multiple(seconds, length):
            return f"{round(seconds / length)}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True)
class WindowSpec:
    """One kind of window: ``size`` and ``hop`` in seconds (tumbling when equal)."""

    name: str
    size: float
    hop: float

    def starts_of(self, pane_start: float) -> list[float]:
        """Starts of the windows holding the pane that starts at ``pane_start``, oldest first."""
        last = math.floor(round(pane_start / self.hop, _DIGITS)) * self.hop
        count = math.ceil(round(self.size / self.hop, _DIGITS))
        starts = [round(last - i * self.hop, _DIGITS) for i in range(count)]
        return sorted(s for s in starts if s <= pane_start < s + self.size)

    def last_end(self, pane_start: float) -> float:
        """End of the newest window holding the pane: after it closes the pane is not needed."""
        return self.starts_of(pane_start)[-1] + self.size

    def check_pane_width(self, width: float) -> None:
        """Raise :class:`PaneWidthError` unless ``width`` divides this spec's size and hop."""
        if not (_is_multiple(self.size, width) and _is_multiple(self.hop, width)):
            raise PaneWidthError(
                f"panes of {width:g} s do not tile the {self.name} windows (size {self.size:g} s, "
                f"hop {self.hop:g} s): make the scorer's pane_seconds divide the window sizes"
            )


def window_specs(settings: AggregateSettings) -> tuple[WindowSpec, ...]:
    """The tumbling and the hopping window of the settings (labels such as ``1m`` and ``5m``)."""
    tumbling = WindowSpec(
        duration_label(settings.tumbling_seconds),
        settings.tumbling_seconds,
        settings.tumbling_seconds,
    )
    hopping = WindowSpec(
        duration_label(settings.hopping_seconds), settings.hopping_seconds, settings.hop_seconds
    )
    if hopping.name == tumbling.name:  # same size: tell them apart by the hop
        name = f"{hopping.name}/{duration_label(hopping.hop)}"
        hopping = WindowSpec(name, hopping.size, hopping.hop)
    return (tumbling, hopping)


def common_pane_width(specs: Iterable[WindowSpec]) -> float:
    """The widest pane that tiles every window (greatest common divisor of sizes and hops,
    to the millisecond): the pane width of the join's realised-error panes."""
    millis = [round(v * 1000) for s in specs for v in (s.size, s.hop)]
    return math.gcd(*millis) / 1000


@dataclass(frozen=True, order=True)
class Window:
    """One window of one model version (``end`` first, so sorting gives closing order)."""

    end: float
    name: str
    start: float
    model_version: str

    @property
    def key(self) -> str:
        """``<name>/<start>/<model version>``: the id of its record on ``prediction-windows``."""
        return f"{self.name}/{unix_rfc3339(self.start)}/{self.model_version}"


@dataclass(frozen=True)
class Admission:
    """What happened to one pane: windows it counts in (``late`` ones among them) and windows
    it was dropped from because they had closed."""

    accepted: tuple[Window, ...]
    late: tuple[Window, ...]
    dropped: tuple[Window, ...]


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
        start = round(pane_start, _DIGITS)
        if accepted and start not in self.panes:
            self.panes.append(start)
            self.panes.sort()
        return Admission(tuple(accepted), tuple(late), tuple(dropped))

    def advance(
        self, pane_start: float, specs: Sequence[WindowSpec], lateness: float
    ) -> tuple[list[tuple[Window, list[float]]], list[float]]:
        """Move the watermark to ``pane_start`` if that is later.

        Returns the windows that closed (in closing order, each with the starts of its panes)
        and the pane starts no open window needs any more (drop their contents).
        """
        old = self.watermark
        new = round(pane_start, _DIGITS) if old is None else max(old, round(pane_start, _DIGITS))
        self.watermark = new
        if old is not None and new == old:
            return [], []
        closing: set[Window] = set()
        for start in self.panes:
            for window in self._windows_of(start, specs):
                due = window.end + lateness
                if (old is None or old < due) and due <= new:
                    closing.add(window)
        closed = [(w, [p for p in self.panes if w.start <= p < w.end]) for w in sorted(closing)]
        expired = [p for p in self.panes if _last_end(tuple(specs), p) + lateness <= new]
        self.panes = [p for p in self.panes if p not in expired]
        return closed, expired

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
            return cls(
                model_version=str(data["model_version"]),
                pane_seconds=float(data["pane_seconds"]),
                watermark=None if watermark is None else float(watermark),
                panes=[float(p) for p in data["panes"]],
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
        Window(round(start + spec.size, _DIGITS), spec.name, start, version)
        for spec in specs
        for start in spec.starts_of(pane_start)
    )


@functools.lru_cache(maxsize=8192)
def _last_end(specs: tuple[WindowSpec, ...], pane_start: float) -> float:
    return max(spec.last_end(pane_start) for spec in specs)
