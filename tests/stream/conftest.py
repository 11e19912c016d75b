"""Fixtures of the core's tests: price-like samples."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

Sample = Callable[[int], npt.NDArray[np.float64]]


@pytest.fixture
def prices() -> Sample:
    """A factory of price-like samples (log-normal, median ~$160k), fresh generator per test."""
    rng = np.random.default_rng(42)

    def sample(n: int) -> npt.NDArray[np.float64]:
        return rng.lognormal(mean=12.0, sigma=0.4, size=n)

    return sample
