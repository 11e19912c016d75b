"""What the model was trained on, per feature: the range of each numeric feature and the
categories of each categorical one, from the reference profile.

A listing inside the contract's bounds can still lie far outside anything the model saw (a
99-million-square-foot house): the model then extrapolates, and its price deserves less trust.
The scorer flags such values per row (each prediction names its out-of-range features) and
counts them per pane (the stream app's share per window).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from stream.contract.features import CATEGORICAL_FEATURES, FEATURES, NUMERIC_FEATURES
from stream.model.profile import ReferenceProfile

BoolArray = npt.NDArray[np.bool_]
_MISSING: frozenset[str | None] = frozenset({None})


@dataclass(frozen=True)
class TrainingRange:
    """Each numeric feature's smallest and largest training value, and each categorical
    feature's training categories."""

    numeric: Mapping[str, tuple[float, float]]
    categories: Mapping[str, frozenset[str]]

    @classmethod
    def of(cls, profile: ReferenceProfile) -> TrainingRange:
        """The training range recorded in ``profile``."""
        return cls(
            numeric={
                n: (profile.numeric[n].low, profile.numeric[n].high) for n in NUMERIC_FEATURES
            },
            categories={
                n: frozenset(profile.categorical[n].frequencies) for n in CATEGORICAL_FEATURES
            },
        )

    def outside(
        self,
        numeric: Mapping[str, npt.NDArray[np.float64]],
        categorical: Mapping[str, Sequence[str | None]],
    ) -> dict[str, BoolArray]:
        """Per feature, the rows whose value lies outside the training range: a number below the
        smallest or above the largest training value, a category training never saw. A missing
        value is never outside (it is counted as missing)."""
        out: dict[str, BoolArray] = {}
        for name in NUMERIC_FEATURES:
            low, high = self.numeric[name]
            column = numeric[name]
            out[name] = (column < low) | (column > high)  # NaN compares False
        for name in CATEGORICAL_FEATURES:
            values = categorical[name]
            inside = self.categories[name] | _MISSING  # a known category, or no value
            # One C-level pass over the column.
            out[name] = ~np.fromiter(map(inside.__contains__, values), np.bool_, len(values))
        return out


def names_per_row(flags: Mapping[str, BoolArray], rows: int) -> dict[int, list[str]]:
    """The rows with a value outside the training range, each with its features in feature
    order (rows with none are left out: usually nearly all of them)."""
    flagged = np.zeros(rows, dtype=np.bool_)
    for column in flags.values():
        flagged |= column
    return {
        int(row): [name for name in FEATURES if flags[name][row]] for row in np.flatnonzero(flagged)
    }
