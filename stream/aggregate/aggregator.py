"""Fold pane partials and joined sales into windows kept in key-value tables.

The tables are plain ``MutableMapping[str, str]``: faust tables in the app (changelog-backed,
so a restarted worker continues its windows), dicts in the unit tests. Every key of one model
version must be updated from the same stream partition (the app routes by model version), so
each table entry lives in one changelog partition.
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field

from stream.aggregate.policy import DriftPolicy
from stream.aggregate.state import ErrorPane, PaneState, partial_digest
from stream.aggregate.summary import (
    ErrorSummary,
    WindowAggregate,
    WindowSummary,
    summarise,
    summarise_errors,
)
from stream.aggregate.windows import Admission, Clock, Window, WindowSpec, common_pane_width
from stream.contract.panes import decode_pane
from stream.errors import DataError
from stream.model.profile import ReferenceProfile
from stream.settings import AggregateSettings

Table = MutableMapping[str, str]


@dataclass
class Outcome:
    """What one input did: its admission and the windows it closed."""

    admission: Admission | None = None
    duplicate: bool = False
    closed: list[WindowSummary] = field(default_factory=list)
    closed_errors: list[ErrorSummary] = field(default_factory=list)


class PaneWindows:
    """Pane partials in, window summaries out.

    Args:
        specs: the windows (``stream.aggregate.windows.window_specs``).
        settings: lateness (and the drift policy's settings).
        profile: the reference the drift is measured against; its ``sketch_k`` is the sketch
            size every pane must have.
        panes: table of pane states, key ``<model version>/<pane start>``.
        clocks: table of window clocks, key ``<model version>``.
    """

    def __init__(
        self,
        specs: Sequence[WindowSpec],
        settings: AggregateSettings,
        profile: ReferenceProfile,
        panes: Table,
        clocks: Table,
    ) -> None:
        self.specs = tuple(specs)
        self.settings = settings
        self.profile = profile
        self.policy = DriftPolicy.of(settings)
        self.k = profile.sketch_k
        self.panes = panes
        self.clocks = clocks
        # Decoded pane states beside the text the table holds: decoding a pane's 15 sketches
        # costs more than merging them, and a pane is read again by every window that closes.
        self._decoded: dict[str, tuple[str, PaneState]] = {}

    def process(self, raw: bytes) -> Outcome:
        """Fold one pane record in; raise :class:`DataError` if it cannot be used."""
        partial = decode_pane(raw, k=self.k)
        for spec in self.specs:
            spec.check_pane_width(partial.seconds)
        version = partial.model_version
        clock = _clock(self.clocks, version, partial.seconds)
        if not math.isclose(clock.pane_seconds, partial.seconds):
            raise DataError(
                f"model {version} sent panes of {clock.pane_seconds:g} s and now of "
                f"{partial.seconds:g} s: restart the scorers with one pane width"
            )
        lateness = self.settings.allowed_lateness_seconds
        admission = clock.admit(partial.start, self.specs, lateness)
        outcome = Outcome(admission)
        if admission.accepted:
            key = _pane_key(version, partial.start)
            digest = partial_digest(raw)
            state = self._load(key)
            if state is None:
                self._store(key, PaneState(partial, [digest]))
            elif state.fold(partial, digest):
                self._store(key, state)
            else:
                outcome.duplicate = True
        closed, expired = clock.advance(partial.start, self.specs, lateness)
        for window, starts in closed:
            outcome.closed.append(self._summary(window, starts))
        for start in expired:
            key = _pane_key(version, start)
            self.panes.pop(key, None)
            self._decoded.pop(key, None)
        self.clocks[version] = clock.to_json()
        return outcome

    def _load(self, key: str) -> PaneState | None:
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
            state = self._load(_pane_key(window.model_version, start))
            if state is not None:
                panes.append(state.pane)
        return summarise(window, WindowAggregate.of(panes, self.k), self.profile, self.policy)


class ErrorWindows:
    """Joined sales in, realised-error summaries out, by sale time.

    Sales are folded into panes of the widest width that tiles every window, with their own
    watermark (sale time runs behind listing time).

    Args:
        specs: the windows.
        settings: lateness (and the drift policy's settings, for target drift).
        profile: the training sale prices target drift is measured against.
        panes: table of error panes, key ``<model version>/<pane start>``.
        clocks: table of clocks, key ``<model version>``.
    """

    def __init__(
        self,
        specs: Sequence[WindowSpec],
        settings: AggregateSettings,
        profile: ReferenceProfile,
        panes: Table,
        clocks: Table,
    ) -> None:
        self.specs = tuple(specs)
        self.lateness = settings.allowed_lateness_seconds
        self.profile = profile
        self.policy = DriftPolicy.of(settings)
        self.k = profile.sketch_k
        self.width = common_pane_width(self.specs)
        self.panes = panes
        self.clocks = clocks

    def process(self, version: str, sale_time: float, predicted: float, actual: float) -> Outcome:
        """Fold one joined sale: its time (Unix s), predicted and sale price (US dollars)."""
        start = math.floor(sale_time / self.width) * self.width
        clock = _clock(self.clocks, version, self.width)
        admission = clock.admit(start, self.specs, self.lateness)
        outcome = Outcome(admission)
        if admission.accepted:
            key = _pane_key(version, start)
            stored = self.panes.get(key)
            pane = ErrorPane.of(self.k) if stored is None else ErrorPane.from_text(stored, self.k)
            pane.add(predicted, actual)
            self.panes[key] = pane.to_text()
        closed, expired = clock.advance(start, self.specs, self.lateness)
        for window, starts in closed:
            total = ErrorPane.of(self.k)
            for s in starts:
                stored = self.panes.get(_pane_key(version, s))
                if stored is not None:
                    total.merge(ErrorPane.from_text(stored, self.k))
            outcome.closed_errors.append(summarise_errors(window, total, self.profile, self.policy))
        for s in expired:
            self.panes.pop(_pane_key(version, s), None)
        self.clocks[version] = clock.to_json()
        return outcome


def _clock(clocks: Table, version: str, width: float) -> Clock:
    stored = clocks.get(version)
    return Clock(version, width) if stored is None else Clock.from_json(stored)


def _pane_key(version: str, start: float) -> str:
    return f"{version}/{start:.3f}"
