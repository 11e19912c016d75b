"""From per-window flags to what a person sees: alerts as the rules raise them, delays,
precision and recall.

The drift alerts of ``prometheus/rules/appraise-alerts.yml`` hold for ``for: 5m``, and the
windows close once a minute (both kinds hop by 1 min), so an alert is five consecutive windows
of one kind in which the same condition holds: the predictions' score above 1
(``AppraisePredictionDrift``), one feature's score above 1 (``AppraiseFeatureDrift``, one alert
per feature), the drifting share at 0.3 or more (``AppraiseDatasetDrift``). The condition's
clock starts when its first window closes, so the alert fires five windows (minutes) after
that: never earlier than 5 windows after the first flagged one. A run of the condition raises
one alert however long it lasts. A baseline's alerts follow the same rule over its own
conditions (one per feature and the predictions; a single one for the detector that always
fires).

Times are in windows (minutes at the default windows) from the drift's onset, which is the start
of tumbling window ``onset``: window ``t`` closes ``t + 1 - onset`` windows after it (the hopping
window ending with ``t`` too).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np

from stream.bench.detection_baselines import LABELS, BoolArray
from stream.bench.detection_windows import KindFlags, StreamFlags

#: The rules' ``for:`` in windows: 5 min over windows that close every minute.
FOR_WINDOWS: Final = 5
#: The detectors compared: the stream app's decision and the baselines.
DETECTORS: Final = ("ours", "psi > 0.1", "psi > 0.25", "ks/chi-square p < 0.05", "always fires")
#: The rule behind each column of the stream app's conditions (``detection_windows.OURS``).
RULES: Final = (
    "AppraisePredictionDrift",
    *(["AppraiseFeatureDrift"] * (len(LABELS) - 1)),
    "AppraiseDatasetDrift",
)


def conditions(kind: KindFlags, detector: str) -> BoolArray:
    """The alert conditions of ``detector`` per window of ``kind`` (one column per alert)."""
    if detector == "ours":
        return kind.ours
    if detector.startswith("psi > "):
        threshold = float(detector.removeprefix("psi > "))
        with np.errstate(invalid="ignore"):
            return np.nan_to_num(kind.psi, nan=0.0) > threshold
    if detector == "always fires":
        return kind.valid[:, None].copy()
    return kind.batch


def alert_windows(condition: BoolArray, length: int = FOR_WINDOWS) -> list[int]:
    """For each run of ``length`` or more consecutive True values starting at ``t0``, the window
    ``t0 + length`` whose close the alert fires at (it may be one past the last window)."""
    padded = np.concatenate([[False], condition, [False]]).astype(np.int8)
    edges = np.diff(padded)
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [int(s) + length for s, e in zip(starts, ends, strict=True) if e - s >= length]


def alerts_by_rule(kind: KindFlags, detector: str) -> dict[str, int]:
    """Alerts raised in ``kind``'s windows, by rule (ours) or in one count (a baseline)."""
    counts: dict[str, int] = {}
    matrix = conditions(kind, detector)
    for j in range(matrix.shape[1]):
        rule = RULES[j] if detector == "ours" else detector
        counts[rule] = counts.get(rule, 0) + len(alert_windows(matrix[:, j]))
    return counts


@dataclass
class Confusion:
    """Windows by truth (a drift phase or not) and by what a detector said."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, flagged: BoolArray, positive: BoolArray, counted: BoolArray) -> None:
        """Count the ``counted`` windows."""
        f, p = flagged[counted], positive[counted]
        self.tp += int(np.sum(f & p))
        self.fp += int(np.sum(f & ~p))
        self.fn += int(np.sum(~f & p))
        self.tn += int(np.sum(~f & ~p))

    def figures(self) -> dict[str, float]:
        """Precision, recall and F1 (0 where undefined)."""
        precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        recall = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"precision": precision, "recall": recall, "f1": f1}


def flagged(kind: KindFlags, detector: str) -> BoolArray:
    """Whether ``detector`` says drift in each window of ``kind``."""
    return conditions(kind, detector).any(axis=1) & kind.valid


@dataclass
class RunOutcome:
    """One drift run seen by one detector: delays in windows from the onset (None: never)."""

    flag_delay: int | None
    alert_delay: int | None
    causes: tuple[int, ...]
    """The likely causes (indices in FEATURES, largest first) at the first flagged window (ours);
    empty when it was never flagged or named none."""

    @property
    def cause(self) -> int | None:
        """The top likely cause, None without one."""
        return self.causes[0] if self.causes else None


def run_outcome(stream: StreamFlags, onset: int, detector: str) -> RunOutcome:
    """When ``detector`` first flags a window closing after ``onset`` (either kind; the tumbling
    one first on a tie) and first raises an alert after it."""
    first: tuple[int, int] | None = None
    alert: int | None = None
    for rank, kind in enumerate((stream.tumbling, stream.hopping)):
        hits = np.flatnonzero(flagged(kind, detector)[onset:])
        if hits.size and (first is None or (int(hits[0]), rank) < first):
            first = (int(hits[0]), rank)
        matrix = conditions(kind, detector)
        for j in range(matrix.shape[1]):
            later = [a - onset + 1 for a in alert_windows(matrix[:, j]) if a >= onset]
            if later and (alert is None or later[0] < alert):
                alert = later[0]
    if first is None:
        return RunOutcome(None, alert, ())
    t, rank = first
    kind = stream.tumbling if rank == 0 else stream.hopping
    return RunOutcome(t + 1, alert, tuple(int(c) for c in kind.cause[onset + t] if c >= 0))


@dataclass
class Positives:
    """Which windows of a run are a drift phase, and which count for precision and recall (a
    hopping window holding both phases counts for neither)."""

    tumbling: tuple[BoolArray, BoolArray]
    hopping: tuple[BoolArray, BoolArray]

    @classmethod
    def of(cls, windows: int, onset: int, hop_windows: int) -> Positives:
        """The truth of a run of ``windows`` tumbling windows whose drift starts at ``onset``."""
        t = np.arange(windows)
        everything = np.ones(windows, dtype=np.bool_)
        return cls(
            (t >= onset, everything),
            (t >= onset + hop_windows - 1, (t < onset) | (t >= onset + hop_windows - 1)),
        )


@dataclass
class Tally:
    """Confusions of every detector, added up over streams."""

    confusion: dict[str, Confusion] = field(
        default_factory=lambda: {d: Confusion() for d in DETECTORS}
    )

    def add(self, stream: StreamFlags, positives: Positives | None) -> None:
        """Add a stream's windows (all negative when ``positives`` is None: the stable data)."""
        for kind, truth in (
            (stream.tumbling, positives and positives.tumbling),
            (stream.hopping, positives and positives.hopping),
        ):
            positive = truth[0] if truth else np.zeros(len(kind.valid), dtype=np.bool_)
            counted = (truth[1] if truth else True) & kind.valid
            for detector in DETECTORS:
                self.confusion[detector].add(flagged(kind, detector), positive, counted)
