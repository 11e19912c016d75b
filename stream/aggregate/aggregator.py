"""Fold pane partials and joined sales into windows kept in key-value tables.

The tables are plain ``MutableMapping[str, str]``: faust tables in the app (changelog-backed,
so a restarted worker continues its windows), dicts in the unit tests. Every key of one model
version must be updated from the same stream partition (the app routes by model version), so
each table entry lives in one changelog partition.

Both keep their clocks within the service's clock and advance them through silence
(:mod:`stream.aggregate.timed`, :mod:`stream.aggregate.clock`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from stream.aggregate.policy import DriftPolicy
from stream.aggregate.state import ErrorPane, PaneState, partial_digest
from stream.aggregate.summary import WindowAggregate, WindowSummary, summarise, summarise_errors
from stream.aggregate.timed import Outcome, Table, TimedWindows, pane_key, warn_future
from stream.aggregate.windows import Window, WindowSpec, common_pane_width
from stream.contract.panes import Pane, decode_pane
from stream.errors import DataError
from stream.model.profile import ReferenceProfile
from stream.settings import DEFAULT_EVENT_TIME_SKEW_S, AggregateSettings


class PaneWindows(TimedWindows):
    """Pane partials in, window summaries out.

    Args:
        specs: the windows (``stream.aggregate.windows.window_specs``).
        settings: lateness, idle time and the drift policy's settings.
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
        self.policy = DriftPolicy.of(settings)
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
            warn_future("pane partial of model", version, partial.start, now, self.skew_s)
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
        key = pane_key(partial.model_version, partial.start)
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
            state = self._load_pane(pane_key(window.model_version, start))
            if state is not None:
                panes.append(state.pane)
        return summarise(window, WindowAggregate.of(panes, self.k), self.profile, self.policy)


class ErrorWindows(TimedWindows):
    """Joined sales in, realised-error summaries out, by sale time.

    Sales are folded into panes of the widest width that tiles every window, with their own
    watermark (sale time runs behind listing time).

    Args:
        specs: the windows.
        settings: lateness and the drift policy's settings (target drift).
        profile: the training sale prices target drift is measured against.
        panes: table of error panes, key ``<model version>/<pane start>``.
        clocks: table of clocks, key ``<model version>``.
        skew_s: how far ahead of ``now`` a sale time may be (setting ``event_time_skew_s``).
        idle_s: wall seconds without a sale after which the watermark follows the clock
            (default: never).
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
        idle_s: float = math.inf,
    ) -> None:
        lateness = settings.allowed_lateness_seconds
        super().__init__(specs, lateness, panes, clocks, skew_s=skew_s, idle_s=idle_s)
        self.profile = profile
        self.policy = DriftPolicy.of(settings)
        self.k = profile.sketch_k
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
            warn_future("joined sale of model", version, sale_time, now, self.skew_s)
            if outcome.capped is not None:
                self.clocks[version] = clock.to_json()
            return outcome
        start = math.floor(sale_time / self.width) * self.width
        admission = outcome.admission = clock.admit(start, *self._rules)
        if admission.accepted:
            key = pane_key(version, start)
            stored = self.panes.get(key)
            pane = ErrorPane.of(self.k) if stored is None else ErrorPane.from_text(stored, self.k)
            pane.add(predicted, actual)
            self.panes[key] = pane.to_text()
        self._moved(clock, clock.advance_to(start, *self._rules), outcome)
        if admission.accepted:
            clock.note_arrival(now)
        self.clocks[version] = clock.to_json()
        return outcome

    def _close(self, window: Window, starts: list[float], outcome: Outcome) -> None:
        total = ErrorPane.of(self.k)
        for s in starts:
            stored = self.panes.get(pane_key(window.model_version, s))
            if stored is not None:
                total.merge(ErrorPane.from_text(stored, self.k))
        outcome.closed_errors.append(summarise_errors(window, total, self.profile, self.policy))

    def _emptied(self, windows: list[Window], outcome: Outcome) -> None:
        outcome.emptied_errors += windows
