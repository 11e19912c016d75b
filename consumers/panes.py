"""The scorer's pane book: each batch folded into its event-time panes, published as partials.

The scorer folds each batch into one :class:`~stream.contract.panes.Pane` per event-time pane
(``pane_seconds`` wide, 10 s by default) and model version, and at most every
``pane_publish_interval_s`` publishes what it folded since the last publish, one record per pane
on ``prediction-panes`` (the record is the contract's, :mod:`stream.contract.panes`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from stream.contract.bundle import SketchBundle
from stream.contract.panes import Pane
from stream.contract.sketch import DEFAULT_K

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


class PaneBook:
    """The partials folded since the last :meth:`drain`, one :class:`Pane` per pane start.

    Args:
        pane_seconds: pane width in seconds (setting ``pane_seconds``, 10 by default).
        model_version: the version every folded prediction comes from.
        k: KLL sketch size of every sketch (setting ``sketch_k``, 200 by default).
    """

    def __init__(self, pane_seconds: float, model_version: str, k: int = DEFAULT_K) -> None:
        self.pane_seconds = pane_seconds
        self.model_version = model_version
        self.k = k
        self._panes: dict[float, Pane] = {}

    def __len__(self) -> int:
        return len(self._panes)

    def fold(
        self,
        event_seconds: FloatArray,
        prices: FloatArray,
        numeric: Mapping[str, FloatArray],
        categorical: Mapping[str, Sequence[str | None]],
        out_of_range: Mapping[str, BoolArray] | None = None,
    ) -> None:
        """Fold a batch of scored rows (columns as in :meth:`SketchBundle.fold`) into their
        panes."""
        if len(prices) == 0:
            return
        starts = np.floor(event_seconds / self.pane_seconds) * self.pane_seconds
        first, last = starts.min(), starts.max()
        if first == last:  # the usual live case: the whole batch falls in one pane
            self._pane(float(first)).sketches.fold(prices, numeric, categorical, out_of_range)
            return
        # A replay spans many panes: sort once, then fold contiguous runs.
        order = np.argsort(starts, kind="stable")
        sorted_starts = starts[order]
        cuts = np.flatnonzero(np.diff(sorted_starts)) + 1
        for run in np.split(order, cuts):
            rows = run.tolist()
            self._pane(float(starts[run[0]])).sketches.fold(
                prices[run],
                {name: column[run] for name, column in numeric.items()},
                {name: [column[j] for j in rows] for name, column in categorical.items()},
                None
                if out_of_range is None
                else {name: column[run] for name, column in out_of_range.items()},
            )

    def drain(self) -> list[Pane]:
        """The partials folded since the last call, oldest pane first; the book is empty after."""
        panes = [self._panes[start] for start in sorted(self._panes)]
        self._panes = {}
        return panes

    def _pane(self, start: float) -> Pane:
        pane = self._panes.get(start)
        if pane is None:
            pane = Pane(start, self.pane_seconds, self.model_version, SketchBundle(self.k))
            self._panes[start] = pane
        return pane
