"""Event-time windows over panes: their kinds and labels, and which windows hold a pane.

Pure; the faust app (``stream.aggregate.app``) only stores and publishes.

A *pane* is a slice of event time ``[start, start + width)`` (the scorer's pane partials, or the
join's realised-error panes). A *window* ``[start, start + size)`` starts at a multiple of its
hop (tumbling: hop = size) and holds the panes that start inside it; sizes and hops are whole
multiples of the pane width.

Which windows a pane counts in, when a window closes and how the watermark moves are the clock's
(:mod:`stream.aggregate.clock`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from stream.contract.times import unix_rfc3339
from stream.errors import DataError
from stream.settings import AggregateSettings

# Float event times are compared after rounding to this many digits of a second: pane starts
# are multiples of the width computed by floor(t / w) * w, which may differ in the last bits.
DIGITS: Final = 6


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
        last = math.floor(round(pane_start / self.hop, DIGITS)) * self.hop
        count = math.ceil(round(self.size / self.hop, DIGITS))
        starts = [round(last - i * self.hop, DIGITS) for i in range(count)]
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
