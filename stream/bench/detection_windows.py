"""Resampled windows through the stream app's own code: panes folded as the scorer folds them
(:class:`~consumers.panes.PaneBook`), merged into windows as the app merges them
(:meth:`WindowAggregate.of <stream.aggregate.summary.WindowAggregate.of>`), decided as it decides
(:func:`~stream.aggregate.summary.summarise`, so :func:`~stream.aggregate.drift.window_drift`
with ``DriftPolicy.of(settings.aggregate)``).

A stream is a sequence of tumbling windows ``t = 0, 1, ...``; each draws ``M`` listings with
replacement from a slice of a pool (seeded per window, so a window is the same whichever task
draws it) at event times spread uniformly over the window, which the pane book cuts into panes.
The hopping window that ends with tumbling window ``t`` is the union of the panes of windows
``t - H + 1 .. t`` (``H`` = hopping size / tumbling size, 5 by default; hop = one tumbling
window). Per window and kind the stream records what the rules and the baselines need.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from consumers.panes import PaneBook
from stream.aggregate.drift import CAUSES
from stream.aggregate.policy import DriftPolicy
from stream.aggregate.summary import WindowAggregate, WindowSummary, summarise
from stream.aggregate.windows import Window, window_specs
from stream.bench.detection_baselines import LABELS, BatchTests, BoolArray, IntArray
from stream.bench.detection_pools import FloatArray, Pool
from stream.contract.features import FEATURES
from stream.contract.panes import Pane
from stream.errors import ConfigError
from stream.model.profile import ReferenceProfile
from stream.settings import Settings

#: ``AppraiseDatasetDrift``: this share of the features drifting at once (its ``>= 0.3``).
DATASET_SHARE: Final = 0.3
#: The columns of :attr:`KindFlags.ours`: :data:`LABELS`, then the dataset-level share.
OURS: Final = (*LABELS, "dataset")


@dataclass(frozen=True)
class Draw:
    """One tumbling window: ``size`` rows of the pool from ``offset`` on, drawn with ``seed``."""

    offset: int
    size: int
    seed: tuple[int, ...]


@dataclass
class KindFlags:
    """One window kind of a stream, one row per tumbling window ``t`` (a hopping row is the
    window ending with ``t``; ``valid`` is False where the stream is too young for one)."""

    valid: BoolArray
    ours: BoolArray
    """Per :data:`OURS` column: score > 1 (the dataset column: drifting share >= 0.3)."""
    psi: FloatArray
    """Raw PSI per :data:`LABELS` column (NaN where no drift was computed)."""
    batch: BoolArray
    """The KS / chi-square baseline per :data:`LABELS` column."""
    cause: IntArray
    """Per window, the indices in FEATURES of its likely causes as the alerts name them (at
    most :data:`CAUSES`, largest first), -1 where there are fewer."""


@dataclass
class StreamFlags:
    """Both window kinds of one stream."""

    tumbling: KindFlags
    hopping: KindFlags


@dataclass(frozen=True)
class Timing:
    """Panes and windows of the settings: pane width and tumbling size in seconds, and the
    hopping window in tumbling windows (size ``hop_windows``, hop one)."""

    pane_seconds: float
    tumbling_seconds: float
    hop_windows: int
    names: tuple[str, str]

    @classmethod
    def of(cls, settings: Settings) -> Timing:
        """The timing of the settings; ConfigError unless the hopping window hops by one
        tumbling window and spans a whole number of them."""
        tumbling, hopping = window_specs(settings.aggregate)
        ratio = hopping.size / tumbling.size
        if hopping.hop != tumbling.size or abs(ratio - round(ratio)) > 1e-9:
            raise ConfigError(
                "bench detection needs a hopping window that hops by the tumbling window's size "
                f"and spans whole tumbling windows (got {hopping.size:g} s every {hopping.hop:g} "
                f"s, tumbling {tumbling.size:g} s)"
            )
        return cls(
            settings.scorer.pane_seconds, tumbling.size, round(ratio), (tumbling.name, hopping.name)
        )


class Simulator:
    """Runs streams of resampled windows through the app's fold, merge and decision."""

    def __init__(
        self, profile: ReferenceProfile, policy: DriftPolicy, timing: Timing, version: str
    ) -> None:
        self.profile = profile
        self.policy = policy
        self.timing = timing
        self.version = version

    def run(
        self,
        pool: Pool,
        tests: BatchTests,
        draws: Sequence[Draw],
        events: int,
        report_from: int = 0,
    ) -> StreamFlags:
        """The windows of ``draws`` (tumbling window ``t`` = ``draws[t]``) with ``events``
        listings each; rows from ``report_from`` on are returned (the ones before only fill
        the first hopping windows)."""
        size = self.timing.tumbling_seconds
        hop_windows = self.timing.hop_windows
        history: deque[list[Pane]] = deque(maxlen=hop_windows)
        counts: deque[IntArray] = deque(maxlen=hop_windows)
        rows = len(draws) - report_from
        kinds = [_empty(rows), _empty(rows)]
        tumbling_counts = np.zeros((rows, pool.rows), dtype=np.int64)
        hopping_counts = np.zeros((rows, pool.rows), dtype=np.int64)
        for t, draw in enumerate(draws):
            rng = np.random.default_rng(draw.seed)
            idx = draw.offset + rng.integers(0, draw.size, events)
            seconds = t * size + rng.random(events) * size
            book = PaneBook(self.timing.pane_seconds, self.version, self.profile.sketch_k)
            book.fold(
                seconds,
                pool.prices[idx],
                {name: column[idx] for name, column in pool.numeric.items()},
                {name: column[idx].tolist() for name, column in pool.categorical.items()},
            )
            panes = book.drain()
            history.append(panes)
            counts.append(np.bincount(idx, minlength=pool.rows))
            row = t - report_from
            if row < 0:
                continue
            end = (t + 1) * size
            tumbling = self._summary(
                panes, Window(end, self.timing.names[0], t * size, self.version)
            )
            _record(kinds[0], row, tumbling)
            tumbling_counts[row] = counts[-1]
            if len(history) == hop_windows:
                start = end - hop_windows * size
                merged = [p for group in history for p in group]
                window = Window(end, self.timing.names[1], start, self.version)
                _record(kinds[1], row, self._summary(merged, window))
                hopping_counts[row] = np.sum(counts, axis=0)
        for kind, matrix in ((kinds[0], tumbling_counts), (kinds[1], hopping_counts)):
            kind.batch = tests.flags(matrix) & kind.valid[:, None]
        return StreamFlags(kinds[0], kinds[1])

    def _summary(self, panes: list[Pane], window: Window) -> WindowSummary:
        aggregate = WindowAggregate.of(panes, self.profile.sketch_k)
        return summarise(window, aggregate, self.profile, self.policy)


def _empty(rows: int) -> KindFlags:
    return KindFlags(
        valid=np.zeros(rows, dtype=np.bool_),
        ours=np.zeros((rows, len(OURS)), dtype=np.bool_),
        psi=np.full((rows, len(LABELS)), np.nan),
        batch=np.zeros((rows, len(LABELS)), dtype=np.bool_),
        cause=np.full((rows, CAUSES), -1, dtype=np.int64),
    )


def _record(kind: KindFlags, row: int, summary: WindowSummary) -> None:
    kind.valid[row] = True
    drift = summary.drift
    if drift is None:
        return
    stats = [drift.prediction, *(drift.features[name] for name in FEATURES)]
    kind.ours[row, : len(LABELS)] = [s.drifting for s in stats]
    kind.ours[row, -1] = drift.drifting_share >= DATASET_SHARE
    kind.psi[row] = [s.psi.statistic for s in stats]
    for rank, cause in enumerate(drift.causes):
        kind.cause[row, rank] = FEATURES.index(cause.feature)
