"""Fold pane partials and joined sales into windows kept in key-value tables.

The tables are plain ``MutableMapping[str, str]``: faust tables in the app (changelog-backed,
so a restarted worker continues its windows), dicts in the unit tests. Every key of one model
version must be updated from the same stream partition (the app routes by model version), so
each table entry lives in one changelog partition.

Both kinds of windows take the service's clock as ``now`` (wall time, Unix seconds; the app
passes ``time.time()``, the unit tests a number) and keep their watermarks within it, as
:mod:`stream.aggregate.clock` describes: an input more than ``skew_s`` ahead of ``now`` is not
used (``Outcome.future``), a restored clock beyond that is capped, and :meth:`idle` advances a
silent stream's watermark by the wall clock.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field

from stream.aggregate.clock import Admission, Advance, Clock
from stream.aggregate.state import ErrorPane, PaneState, partial_digest
from stream.aggregate.summary import ErrorSummary, WindowAggregate, WindowSummary, summarise
from stream.aggregate.windows import Window, WindowSpec, common_pane_width
from stream.contract.panes import Pane, decode_pane
from stream.contract.times import unix_rfc3339
from stream.errors import DataError
from stream.model.profile import ReferenceProfile
from stream.settings import DEFAULT_EVENT_TIME_SKEW_S, AggregateSettings

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


class _Windows:
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
            self._forget(_pane_key(version, start))
        outcome.future += len(beyond)
        return clock

    def _moved(self, clock: Clock, moved: Advance, outcome: Outcome) -> None:
        for window, starts in moved.closed:
            self._close(window, starts, outcome)
        for start in moved.expired:
            self._forget(_pane_key(clock.model_version, start))
        self._emptied(moved.emptied, outcome)

    def _close(self, window: Window, starts: list[float], outcome: Outcome) -> None:
        raise NotImplementedError

    def _emptied(self, windows: list[Window], outcome: Outcome) -> None:
        raise NotImplementedError

    def _forget(self, key: str) -> None:
        self.panes.pop(key, None)


class PaneWindows(_Windows):
    """Pane partials in, window summaries out.

    Args:
        specs: the windows (``stream.aggregate.windows.window_specs``).
        settings: lateness, minimum events, PSI threshold, idle time.
        profile: the reference the drift is measured against; its ``sketch_k`` is the sketch
            size every pane must have.
        panes: table of pane states, key ``<model version>/<pane start>``.
        clocks: table of window clocks, key ``<model version>``.
        skew_s: how far ahead of ``now`` a pane may start (setting ``event_time_skew_s``).
    """

    def __init__(
        self,
        specs: Sequence[WindowSpec],
        settings: AggregateSettings,
        profile: ReferenceProfile,
        panes: Table,
        clocks: Table,
        *,
        skew_s: float = DEFAULT_EVENT_TIME_SKEW_S,
    ) -> None:
        lateness, idle = settings.allowed_lateness_seconds, settings.idle_after_seconds
        super().__init__(specs, lateness, panes, clocks, skew_s=skew_s, idle_s=idle)
        self.settings = settings
        self.profile = profile
        self.k = profile.sketch_k
        # Decoded pane states beside the text the table holds: decoding a pane's 15 sketches
        # costs more than merging them, and a pane is read again by every window that closes.
        self._decoded: dict[str, tuple[str, PaneState]] = {}

    def process(self, raw: bytes, now: float | None = None) -> Outcome:
        """Fold one pane record in at wall time ``now`` (default: the clock); raise
        :class:`DataError` if it cannot be used."""
        now = time.time() if now is None else now
        partial = decode_pane(raw, k=self.k)
        for spec in self.specs:
            spec.check_pane_width(partial.seconds)
        version = partial.model_version
        outcome = Outcome()
        clock = self._load(version, partial.seconds, now, outcome)
        if not math.isclose(clock.pane_seconds, partial.seconds):
            raise DataError(
                f"model {version} sent panes of {clock.pane_seconds:g} s and now of "
                f"{partial.seconds:g} s: restart the scorers with one pane width"
            )
        if partial.start > now + self.skew_s:  # from the future: the watermark stays
            outcome.future += 1
            _warn_future("pane partial of model", version, partial.start, now, self.skew_s)
        else:
            admission = outcome.admission = clock.admit(partial.start, *self._rules)
            if admission.accepted:
                self._fold(partial, raw, outcome)
            self._moved(clock, clock.advance_to(partial.start, *self._rules), outcome)
            if admission.accepted:
                clock.note_arrival(now)
        if outcome.admission is not None or outcome.capped is not None:
            self.clocks[version] = clock.to_json()
        return outcome

    def _fold(self, partial: Pane, raw: bytes, outcome: Outcome) -> None:
        key = _pane_key(partial.model_version, partial.start)
        digest = partial_digest(raw)
        state = self._load_pane(key)
        if state is None:
            self._store(key, PaneState(partial, [digest]))
        elif state.fold(partial, digest):
            self._store(key, state)
        else:
            outcome.duplicate = True

    def _close(self, window: Window, starts: list[float], outcome: Outcome) -> None:
        outcome.closed.append(self._summary(window, starts))

    def _emptied(self, windows: list[Window], outcome: Outcome) -> None:
        outcome.emptied += windows

    def _forget(self, key: str) -> None:
        self.panes.pop(key, None)
        self._decoded.pop(key, None)

    def _load_pane(self, key: str) -> PaneState | None:
        text = self.panes.get(key)
        if text is None:
            self._decoded.pop(key, None)
            return None
        cached = self._decoded.get(key)
        if cached is not None and cached[0] == text:
            return cached[1]
        state = PaneState.from_text(text, self.k)
        self._decoded[key] = (text, state)
        return state

    def _store(self, key: str, state: PaneState) -> None:
        text = state.to_text()
        self.panes[key] = text
        self._decoded[key] = (text, state)

    def _summary(self, window: Window, starts: list[float]) -> WindowSummary:
        panes = []
        for start in starts:
            state = self._load_pane(_pane_key(window.model_version, start))
            if state is not None:
                panes.append(state.pane)
        return summarise(
            window,
            WindowAggregate.of(panes, self.k),
            self.profile,
            min_events=self.settings.min_events,
            psi_threshold=self.settings.psi_threshold,
        )


class ErrorWindows(_Windows):
    """Joined sales in, realised-error summaries out, by sale time.

    Sales are folded into panes of the widest width that tiles every window, with their own
    watermark (sale time runs behind listing time).

    Args:
        specs: the windows.
        lateness: allowed lateness in seconds.
        panes: table of error panes, key ``<model version>/<pane start>``.
        clocks: table of clocks, key ``<model version>``.
        skew_s: how far ahead of ``now`` a sale time may be (setting ``event_time_skew_s``).
        idle_s: wall seconds without a sale after which the watermark follows the clock
            (default: never).
    """

    def __init__(
        self,
        specs: Sequence[WindowSpec],
        lateness: float,
        panes: Table,
        clocks: Table,
        *,
        skew_s: float = DEFAULT_EVENT_TIME_SKEW_S,
        idle_s: float = math.inf,
    ) -> None:
        super().__init__(specs, lateness, panes, clocks, skew_s=skew_s, idle_s=idle_s)
        self.width = common_pane_width(self.specs)

    def process(
        self,
        version: str,
        sale_time: float,
        predicted: float,
        actual: float,
        now: float | None = None,
    ) -> Outcome:
        """Fold one joined sale: its time (Unix s), predicted and sale price (US dollars), at
        wall time ``now`` (default: the clock)."""
        now = time.time() if now is None else now
        outcome = Outcome()
        clock = self._load(version, self.width, now, outcome)
        if sale_time > now + self.skew_s:
            outcome.future += 1
            _warn_future("joined sale of model", version, sale_time, now, self.skew_s)
            if outcome.capped is not None:
                self.clocks[version] = clock.to_json()
            return outcome
        start = math.floor(sale_time / self.width) * self.width
        admission = outcome.admission = clock.admit(start, *self._rules)
        if admission.accepted:
            key = _pane_key(version, start)
            stored = self.panes.get(key)
            pane = ErrorPane() if stored is None else ErrorPane.from_text(stored)
            pane.add(predicted, actual)
            self.panes[key] = pane.to_text()
        self._moved(clock, clock.advance_to(start, *self._rules), outcome)
        if admission.accepted:
            clock.note_arrival(now)
        self.clocks[version] = clock.to_json()
        return outcome

    def _close(self, window: Window, starts: list[float], outcome: Outcome) -> None:
        total = ErrorPane()
        for s in starts:
            stored = self.panes.get(_pane_key(window.model_version, s))
            if stored is not None:
                total.merge(ErrorPane.from_text(stored))
        outcome.closed_errors.append(ErrorSummary(window, total))

    def _emptied(self, windows: list[Window], outcome: Outcome) -> None:
        outcome.emptied_errors += windows


def _warn_future(what: str, version: str, at: float, now: float, skew_s: float) -> None:
    log.warning(
        "%s %s at %s is more than %g s ahead of this clock (%s): dropped",
        what,
        version,
        unix_rfc3339(at),
        skew_s,
        unix_rfc3339(now),
    )


def _pane_key(version: str, start: float) -> str:
    return f"{version}/{start:.3f}"
