"""The sketch bundle: what the monitor keeps of a set of scored listings, mergeable.

One value type for a pane partial (:class:`stream.contract.panes.Pane`), a merged pane in the
stream app's state, and a whole window: the event count, a quantile sketch of the predicted
prices and of every numeric feature, the missing values of every feature, the values of every
numeric feature outside the model's training range, and the category counts of every
categorical feature. Bundles fold rows in and merge exactly (sketch merge, count
sums), so the cost of a window grows with its panes, not its events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from stream.contract.features import CATEGORICAL_FEATURES, FEATURES, NUMERIC_FEATURES
from stream.contract.sketch import DEFAULT_K, QuantileSketch

FloatArray = npt.NDArray[np.float64]


@dataclass(slots=True)
class SketchBundle:
    """Sketches and counts of some scored listings; empty until rows are folded in.

    ``k`` is the KLL size of every sketch in it (setting ``sketch_k``, 200 by default).
    """

    k: int = DEFAULT_K
    events: int = 0
    prediction: QuantileSketch = field(init=False)
    features: dict[str, QuantileSketch] = field(init=False)
    missing: dict[str, int] = field(init=False)
    out_of_range: dict[str, int] = field(init=False)
    """Per numeric feature, values outside the model's training range."""
    categories: dict[str, Counter[str]] = field(init=False)

    def __post_init__(self) -> None:
        self.prediction = QuantileSketch.empty(self.k)
        self.features = {name: QuantileSketch.empty(self.k) for name in NUMERIC_FEATURES}
        self.missing = dict.fromkeys(FEATURES, 0)
        self.out_of_range = dict.fromkeys(NUMERIC_FEATURES, 0)
        self.categories = {name: Counter() for name in CATEGORICAL_FEATURES}

    def fold(
        self,
        prices: FloatArray,
        numeric: Mapping[str, FloatArray],
        categorical: Mapping[str, Sequence[str | None]],
        out_of_range: Mapping[str, npt.NDArray[np.bool_]] | None = None,
    ) -> None:
        """Fold rows in: ``prices`` and each numeric column (NaN = missing) have one value per
        row, each categorical column one ``str | None`` per row; ``out_of_range`` (if given)
        marks per numeric feature the rows outside the model's training range."""
        self.events += len(prices)
        self.prediction.update(prices)
        for name in NUMERIC_FEATURES:
            column = numeric[name]
            self.features[name].update(column)
            self.missing[name] += int(np.count_nonzero(np.isnan(column)))
            if out_of_range is not None:
                self.out_of_range[name] += int(np.count_nonzero(out_of_range[name]))
        for name in CATEGORICAL_FEATURES:
            counts: Counter[str | None] = Counter(categorical[name])
            self.missing[name] += counts.pop(None, 0)
            self.categories[name].update({v: n for v, n in counts.items() if v is not None})

    def merge(self, other: SketchBundle) -> None:
        """Fold another bundle (with the same ``k``) into this one."""
        self.events += other.events
        self.prediction.merge(other.prediction)
        for name in NUMERIC_FEATURES:
            self.features[name].merge(other.features[name])
        for name in FEATURES:
            self.missing[name] += other.missing.get(name, 0)
        for name in NUMERIC_FEATURES:
            self.out_of_range[name] += other.out_of_range.get(name, 0)
        for name in CATEGORICAL_FEATURES:
            self.categories[name].update(other.categories[name])
