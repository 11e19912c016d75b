"""The model's OpenMP threads follow the batch size, and are put back when the scorer stops;
compiled trees take none, and their scorer leaves the limits alone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sklearn.ensemble  # noqa: F401 - loads the OpenMP runtime the model's predict uses
from prometheus_client import CollectorRegistry
from threadpoolctl import ThreadpoolController, threadpool_limits

from consumers.metrics import ScorerMetrics
from consumers.predict import PARALLEL_ROWS, PredictThreads, thread_limit
from consumers.scorer import Scorer
from stream.model.load import load_model
from stream.settings import KafkaSettings, ScorerSettings
from tests.conftest import TopicFactory
from tests.consumers.kafka_helpers import Topics, new_group


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


@pytest.mark.timeout(120)
async def test_a_scorer_with_compiled_trees_leaves_the_openmp_threads_alone(
    kafka_settings: KafkaSettings, new_topic: TopicFactory, model_dir: Path
) -> None:
    compiled = load_model(model_dir)
    compiled.compile_trees()
    topics = Topics(*[await new_topic() for _ in range(4)])
    config = ScorerSettings(group_id=new_group())
    metrics = ScorerMetrics(CollectorRegistry(), config, process_collectors=False)
    scorer = Scorer(
        topics.settings(kafka_settings, model_dir), config, model=compiled, metrics=metrics
    )
    # 3 threads: a scorer applying predict_threads would set 1 at start (no batch yet)
    with threadpool_limits(limits=3, user_api="openmp"):
        async with scorer:
            assert _openmp_threads() == 3
        assert _openmp_threads() == 3


def test_predict_threads_are_capped_at_the_usable_cpus() -> None:
    cpus = len(os.sched_getaffinity(0))
    assert thread_limit(256) == cpus
    assert thread_limit(1) == 1
    assert thread_limit(0) is None  # the library's default
