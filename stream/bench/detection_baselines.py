"""The batch-report baselines of ``appraise bench detection``: what a drift report does by
default, on the same windows as the stream app's decision.

* KS: the two-sample Kolmogorov-Smirnov test of each numeric feature and of the predictions
  against the raw training values (the model's out-of-fold predictions), p < 0.05 each, no
  correction for the 15 tests. The statistic is scipy's ``ks_2samp``'s (both empirical CDFs at
  every value of either sample); the p-value its asymptotic one (``kstwo.sf(D, round(n m /
  (n + m)))``, which ``ks_2samp`` uses from 10,000 values on and which is within about 1e-3 of
  its exact one below). Missing values are left out, as ``ks_2samp`` on a column without its
  NaNs does.
* chi-square: Pearson's two-sample test of each categorical feature's category counts against
  the training counts (no continuity correction), p < 0.05 each; categories either side never
  saw are bins like the others, missing values are left out (``value_counts``' default).

A window is a vector of counts over the rows of its pool, so each test is a cumulative sum
over the pool's rows in value order (KS) or a product with a one-hot matrix (chi-square): a
thousand windows at a time, with no raw values repeated.
"""

from __future__ import annotations

import functools
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy.stats import chi2, kstwo

from stream.bench.detection_pools import FloatArray, ObjectArray, Pool, Reference
from stream.contract.features import CATEGORICAL_FEATURES, FEATURES, NUMERIC_FEATURES

#: The columns of every per-window matrix of the bench: the predictions, then each feature.
LABELS: Final = ("prediction", *FEATURES)
#: The p-value below which a baseline test says drift.
LEVEL: Final = 0.05

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@functools.lru_cache(maxsize=65_536)
def _ks_critical(effective: int) -> float:
    """The KS statistic above which the asymptotic p-value is under :data:`LEVEL`."""
    return float(kstwo.isf(LEVEL, effective))


@functools.lru_cache(maxsize=1_024)
def _chi2_critical(df: int) -> float:
    return float(chi2.isf(LEVEL, df))


class _KsColumn:
    """One numeric column of a pool against its reference values."""

    def __init__(self, values: FloatArray, reference: FloatArray) -> None:
        finite = np.flatnonzero(np.isfinite(values))
        self.rows = finite[np.argsort(values[finite], kind="stable")]
        ordered = values[self.rows]
        ref = np.sort(reference[np.isfinite(reference)])
        grid = np.union1d(ordered, ref)
        # The window's CDF at each grid point is its count of rows up to that value.
        self.positions = np.searchsorted(ordered, grid, side="right")
        self.reference_cdf = np.searchsorted(ref, grid, side="right") / len(ref)
        self.reference_n = len(ref)

    def statistic(self, counts: IntArray) -> tuple[FloatArray, FloatArray]:
        """KS statistic and value count of each window (rows of ``counts``)."""
        cumulative = np.zeros((counts.shape[0], len(self.rows) + 1))
        np.cumsum(counts[:, self.rows], axis=1, out=cumulative[:, 1:])
        n = cumulative[:, -1]
        cdf = cumulative[:, self.positions] / np.maximum(n, 1)[:, None]
        return np.abs(cdf - self.reference_cdf).max(axis=1), n

    def flags(self, counts: IntArray) -> BoolArray:
        """p < :data:`LEVEL` in each window (False without values)."""
        d, n = self.statistic(counts)
        effective = np.round(n * self.reference_n / np.maximum(n + self.reference_n, 1))
        critical = np.array([_ks_critical(int(e)) if e >= 1 else np.inf for e in effective])
        return (n > 0) & (d > critical)


class _ChiColumn:
    """One categorical column of a pool against the reference's categories."""

    def __init__(self, values: ObjectArray, reference: ObjectArray) -> None:
        seen = {v for v in reference if v is not None} | {v for v in values if v is not None}
        index = {c: i for i, c in enumerate(sorted(seen))}
        codes = np.array([index.get(v, -1) if v is not None else -1 for v in values])
        self.rows = np.flatnonzero(codes >= 0)
        self.onehot = np.zeros((len(self.rows), len(index)))
        self.onehot[np.arange(len(self.rows)), codes[self.rows]] = 1.0
        self.reference = np.zeros(len(index))
        for value in reference:
            if value is not None:
                self.reference[index[value]] += 1

    def statistic(self, counts: IntArray) -> tuple[FloatArray, IntArray]:
        """Pearson's chi-square and its degrees of freedom in each window."""
        window = counts[:, self.rows].astype(np.float64) @ self.onehot
        column = window + self.reference
        used = column > 0
        n_window = window.sum(axis=1, keepdims=True)
        n_ref = self.reference.sum()
        total = n_window + n_ref
        safe = np.where(used, column, 1.0)
        e_ref = n_ref * safe / total
        e_win = np.maximum(n_window * safe / total, 1e-300)
        terms = (self.reference - e_ref) ** 2 / e_ref + (window - e_win) ** 2 / e_win
        stat = np.where(used, terms, 0.0).sum(axis=1)
        df = used.sum(axis=1) - 1
        return np.where(n_window[:, 0] > 0, stat, 0.0), df

    def flags(self, counts: IntArray) -> BoolArray:
        """p < :data:`LEVEL` in each window (False without values)."""
        stat, df = self.statistic(counts)
        critical = np.array([_chi2_critical(int(d)) if d >= 1 else np.inf for d in df])
        return stat > critical


class BatchTests:
    """The KS and chi-square tests of one pool's windows, precomputed for that pool."""

    def __init__(self, pool: Pool, reference: Reference) -> None:
        self._ks = [_KsColumn(pool.prices, reference.prediction)] + [
            _KsColumn(pool.numeric[n], reference.numeric[n]) for n in NUMERIC_FEATURES
        ]
        self._chi = [
            _ChiColumn(pool.categorical[n], reference.categorical[n]) for n in CATEGORICAL_FEATURES
        ]

    def flags(self, counts: IntArray, chunk: int = 500) -> BoolArray:
        """Which test says drift, per window (rows of ``counts``, one column per pool row) and
        per :data:`LABELS` column."""
        out = np.zeros((counts.shape[0], len(LABELS)), dtype=np.bool_)
        for start in range(0, counts.shape[0], chunk):
            part = counts[start : start + chunk]
            tests: list[_KsColumn | _ChiColumn] = [*self._ks, *self._chi]
            for j, test in enumerate(tests):
                out[start : start + chunk, j] = test.flags(part)
        return out
