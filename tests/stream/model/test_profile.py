"""The profile's PSI bins: deciles for a measure, one bin per value for a count, so a shift
among a count's top values shows."""

from __future__ import annotations

import numpy as np

from stream.model.profile import DISCRETE_VALUES, bin_edges, decile_edges, numeric_reference
from stream.stats.drift import psi


def _shares(values: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return counts / values.size


def test_a_count_gets_a_bin_per_value_and_a_measure_its_deciles() -> None:
    rng = np.random.default_rng(5)
    half_baths = rng.choice([0.0, 1.0, 2.0], p=[0.62, 0.36, 0.02], size=1_300)
    assert decile_edges(half_baths) == (0.0, 1.0)  # [1, inf) would hold both 1 and 2
    assert bin_edges(half_baths) == (0.0, 1.0, 2.0)
    areas = rng.lognormal(7.3, 0.3, size=1_300)
    assert bin_edges(areas) == decile_edges(areas)
    assert len(np.unique(np.round(areas))) > DISCRETE_VALUES


def test_one_more_half_bath_everywhere_moves_psi_over_the_count_s_bins() -> None:
    rng = np.random.default_rng(6)
    before = rng.choice([0.0, 1.0, 2.0], p=[0.62, 0.36, 0.02], size=1_300)
    after = np.where(before >= 1, before + 1, before)  # every 1 becomes 2, every 2 becomes 3
    lumped = decile_edges(before)
    per_value = numeric_reference(before).bin_edges
    n = before.size
    psi_lumped = psi(_shares(before, lumped), _shares(after, lumped), reference_rows=n, events=n)
    psi_per_value = psi(
        _shares(before, per_value), _shares(after, per_value), reference_rows=n, events=n
    )
    assert psi_lumped < 0.01  # the deciles cannot see it
    assert psi_per_value > 1.0
