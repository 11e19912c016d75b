"""The model's OpenMP threads follow the batch size, and are put back when the scorer stops."""

from __future__ import annotations

import sklearn.ensemble  # noqa: F401 - loads the OpenMP runtime the model's predict uses
from threadpoolctl import ThreadpoolController

from consumers.scorer import PARALLEL_ROWS, PredictThreads


def _openmp_threads() -> int:
    (info,) = {
        lib["num_threads"] for lib in ThreadpoolController().select(user_api="openmp").info()
    }
    return int(info)


def test_large_batches_get_the_threads_small_ones_one() -> None:
    before = _openmp_threads()
    threads = PredictThreads(3)
    try:
        assert _openmp_threads() == 1
        threads.for_rows(PARALLEL_ROWS)
        assert _openmp_threads() == 3
        threads.for_rows(PARALLEL_ROWS - 1)
        assert _openmp_threads() == 1
        threads.for_rows(10 * PARALLEL_ROWS)
        assert _openmp_threads() == 3
    finally:
        threads.restore()
    assert _openmp_threads() == before


def test_the_library_default_is_left_alone() -> None:
    before = _openmp_threads()
    threads = PredictThreads(None)
    threads.for_rows(PARALLEL_ROWS)
    threads.for_rows(1)
    assert _openmp_threads() == before
    threads.restore()
