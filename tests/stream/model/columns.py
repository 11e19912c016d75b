"""Feature columns for the model's tests: every bundled sale, with gaps the scorer must price."""

from __future__ import annotations

from typing import Any

import numpy as np

from stream.contract.features import CATEGORICAL_FEATURES, FEATURES
from stream.model import dataset


def sales_with_gaps() -> dict[str, list[Any]]:
    """Feature name → one value per bundled sale, with missing values in every column and an
    unseen category in each categorical one (seeded: the same rows every time)."""
    everything = dataset.load_ames()
    columns: dict[str, list[Any]] = {name: everything[name].tolist() for name in FEATURES}
    rng = np.random.default_rng(5)
    for name in FEATURES:
        for row in rng.choice(len(everything), size=50, replace=False):
            columns[name][row] = None
    for name in CATEGORICAL_FEATURES:
        for row in rng.choice(len(everything), size=20, replace=False):
            columns[name][row] = "Never_Seen"
    return columns
