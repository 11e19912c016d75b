"""``appraise bench detection``: the drift detector itself, offline, on real stable data and on
every drift scenario, against the batch-report baselines.

No broker: windows are resampled from the bundled hold-out stream (1,611 listings, priced once by
the model), folded into 10 s panes by the scorer's pane book, merged into the 1 min tumbling and
5 min hopping windows and decided by the stream app's own code (``detection_windows``).

1. Stable: ``windows`` tumbling windows (10,000 by default) at each of ``sizes`` events per
   window (100, 400, 2,000, 10,000), and the hopping windows over them: windows that flag a
   feature or the predictions, per kind, and alerts as the rules raise them (``detection_alerts``),
   per 1,000 windows and as expected days between false alerts.
2. Scenarios: every case of ``detection_pools.cases`` (each scenario at its default magnitude
   and half of it, on each feature it applies to), ``runs`` runs per size (10) of ``before``
   stable windows (4, folded only: they fill the hopping windows that straddle the onset) then
   ``drift`` windows (10) from the changed pool, decided: the share of runs with an alert,
   windows from onset to the first flagged window and to the first alert, and whether the top
   likely cause is the changed feature.
3. Baselines on the same windows (``detection_baselines``): raw PSI above 0.1 and 0.25, KS and
   chi-square at p < 0.05, a detector that always fires: precision, recall and F1 over every
   decided window (positives: the drift windows, a hopping window holding both phases left out;
   negatives: the stable data's windows), and their false alerts on the stable data.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from producers.sources import holdout_drafts
from stream.bench.detection_alerts import DETECTORS, RunOutcome, Tally
from stream.bench.detection_figures import DetectionResult, figures
from stream.bench.detection_pools import Case, cases, pool_of, training_reference
from stream.bench.detection_run import (
    CaseDone,
    CaseTask,
    DetectionPlan,
    Done,
    Inputs,
    StableTask,
    Task,
    run_tasks,
)
from stream.bench.detection_windows import KindFlags, StreamFlags, Timing
from stream.errors import ConfigError
from stream.model.load import load_model
from stream.settings import Settings

__all__ = ["DetectionPlan", "DetectionResult", "Prepared", "prepare_detection", "run_detection"]


@dataclass(frozen=True)
class Prepared:
    """The pools built and the tasks planned: ``total`` tumbling windows to simulate."""

    plan: DetectionPlan
    settings: Settings
    inputs: Inputs
    cases: tuple[Case, ...]
    tasks: tuple[Task, ...]

    @property
    def total(self) -> int:
        """Tumbling windows the tasks simulate (the progress bar's total)."""
        return sum(t.windows for t in self.tasks)


def prepare_detection(
    settings: Settings, plan: DetectionPlan, progress: Callable[[str], None] = lambda _: None
) -> Prepared:
    """Price the hold-out pool and every case's pool, refit the baselines' reference, plan."""
    hop_windows = Timing.of(settings).hop_windows
    if plan.before < hop_windows - 1:
        raise ConfigError(
            f"runs need {hop_windows - 1} stable windows before the onset (the hopping window "
            f"spans {hop_windows}), got {plan.before}"
        )
    model = load_model(settings.model_dir)
    holdout = holdout_drafts()
    progress(f"pricing the {len(holdout):,} hold-out listings and every scenario's pool")
    stable, _ = pool_of(holdout, model)
    catalogue = cases(holdout, model, plan.seed, plan.scenarios)
    progress("refitting the out-of-fold predictions for the baselines' reference")
    reference = training_reference(model)
    inputs = Inputs(
        settings, settings.model_dir, plan.seed, stable, tuple(p for _, p in catalogue), reference
    )
    tasks: list[Task] = []
    for events in sorted(plan.sizes, reverse=True):  # the slowest first: the pool ends evenly
        tasks += [
            StableTask(events, start, min(plan.windows, start + plan.chunk))
            for start in range(0, plan.windows, plan.chunk)
        ]
        tasks += [
            CaseTask(i, events, plan.runs, plan.before, plan.drift)
            for i, (_, pool) in enumerate(catalogue)
            if pool is not None
        ]
    return Prepared(plan, settings, inputs, tuple(c for c, _ in catalogue), tuple(tasks))


def run_detection(prepared: Prepared, report: Callable[[int, str], None]) -> DetectionResult:
    """Run every task (``report(done windows, status)`` after each) and gather the figures."""
    started = time.perf_counter()
    stable: dict[int, list[tuple[int, StreamFlags]]] = defaultdict(list)
    outcomes: dict[tuple[int, int], list[dict[str, RunOutcome]]] = defaultdict(list)
    tally = Tally()
    done = 0

    def collect(result: Done) -> None:
        nonlocal done
        done += result.task.windows
        if isinstance(result, CaseDone):
            outcomes[(result.task.case, result.task.events)] += result.outcomes
            for d in DETECTORS:
                mine, theirs = tally.confusion[d], result.tally.confusion[d]
                mine.tp, mine.fp = mine.tp + theirs.tp, mine.fp + theirs.fp
                mine.fn, mine.tn = mine.fn + theirs.fn, mine.tn + theirs.tn
            report(done, f"{prepared.cases[result.task.case].label} at {result.task.events:,}")
        else:
            stable[result.task.events].append((result.task.start, result.flags))
            report(done, f"stable at {result.task.events:,}")

    plan = prepared.plan
    run_tasks(prepared.inputs, prepared.tasks, plan.jobs, collect)
    streams = {
        m: _joined([f for _, f in sorted(chunks, key=lambda c: c[0])])
        for m, chunks in stable.items()
    }
    for stream in streams.values():
        tally.add(stream, None)
    result = figures(plan, prepared.settings, prepared.cases, streams, outcomes, tally)
    result.seconds = time.perf_counter() - started
    return result


def _joined(parts: Sequence[StreamFlags]) -> StreamFlags:
    def kind(which: Callable[[StreamFlags], KindFlags]) -> KindFlags:
        chosen = [which(p) for p in parts]
        return KindFlags(
            valid=np.concatenate([k.valid for k in chosen]),
            ours=np.concatenate([k.ours for k in chosen]),
            psi=np.concatenate([k.psi for k in chosen]),
            batch=np.concatenate([k.batch for k in chosen]),
            cause=np.concatenate([k.cause for k in chosen]),
        )

    return StreamFlags(kind(lambda p: p.tumbling), kind(lambda p: p.hopping))
