"""The scorer as a service: what ``appraise score`` hands to ``stream.service.runtime``.

Prepared once: the model is loaded and checked (a bad model directory stops the start, exit
code 2), its trees compiled (setting ``compile_trees``), and the process's garbage collector
set for scoring (:func:`consumers.heap.scoring_heap`). The worker is a :class:`Scorer`: on a
signal it stops fetching, finishes the batch in hand, publishes the pane partials, commits and
leaves the group, within ``service.drain_deadline_s``; past it, the last batch is scored again
by whoever takes the partitions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from prometheus_client import CollectorRegistry

from consumers.heap import scoring_heap
from consumers.metrics import ScorerMetrics
from consumers.scorer import Scorer
from stream.model.compiled import CompileError
from stream.model.load import load_model
from stream.model.predict import LoadedModel
from stream.settings import Settings

log = logging.getLogger(__name__)


def compile_model(model: LoadedModel) -> None:
    """Compile the model's trees (setting ``compile_trees``); on failure say why and go on with
    scikit-learn's predict: the prices are the same, only slower."""
    started = time.perf_counter()
    try:
        model.compile_trees()
    except CompileError as exc:
        log.warning("model %s: %s; scoring with scikit-learn's predict", model.version, exc)
        return
    log.info(
        "model %s: trees compiled to native code in %.1f s",
        model.version,
        time.perf_counter() - started,
    )


class ScorerService:
    """The scorer for :func:`stream.service.runtime.run_service`.

    Args:
        settings: the project settings (Kafka, topics, ``metrics.scorer_port``, model dir,
            the ``scorer`` section).
        registry: where metrics go; a fresh one with process collectors by default.
    """

    name = "scorer"

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.port = settings.metrics.scorer_port
        self.registry = registry or CollectorRegistry()
        self.metrics = ScorerMetrics(self.registry, settings.scorer)
        self.model: LoadedModel | None = None

    @asynccontextmanager
    async def prepared(self) -> AsyncIterator[None]:
        """Load (and compile) the model; hold the scoring heap setting while the service runs."""
        settings = self.settings
        # On this thread, as everything the scorer keeps: a worker thread would put the model
        # in a malloc arena of its own (several MB more resident for the process's life).
        model = load_model(settings.model_dir)
        self.metrics.set_holdout_mape(model.version, model.card.holdout.mape)
        log.info("model %s loaded from %s", model.version, settings.model_dir)
        if settings.scorer.compile_trees:
            # On this thread: compiling redirects the process's stdout and stderr for ~2 s.
            compile_model(model)
        self.model = model
        with scoring_heap():
            yield

    def not_ready(self) -> Mapping[str, bool]:
        """Model loaded; broker, group and partitions not yet."""
        return {
            "model_loaded": self.model is not None,
            "broker_reachable": False,
            "group_joined": False,
            "partitions_assigned": False,
        }

    def worker(self) -> Scorer:
        """The scorer, with the prepared model."""
        if self.model is None:
            raise RuntimeError("the scorer service is not prepared")
        return Scorer(self.settings, self.settings.scorer, model=self.model, metrics=self.metrics)
