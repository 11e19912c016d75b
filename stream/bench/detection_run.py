"""The work of ``appraise bench detection``, cut into tasks that worker processes run.

Two kinds of task: a chunk of the stable stream at one window size (``StableTask``: tumbling
windows ``start .. stop - 1``, drawing the ``H - 1`` windows before ``start`` again so its first
hopping windows are whole; windows are seeded by their index, so the chunks join into one
stream), and every run of one scenario case at one size (``CaseTask``). A worker gets the pools
and the reference once, at its start; tasks carry only indices and return flags (stable) or
outcomes and window tallies (runs).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stream.aggregate.policy import DriftPolicy
from stream.bench.detection_alerts import DETECTORS, Positives, RunOutcome, Tally, run_outcome
from stream.bench.detection_baselines import BatchTests
from stream.bench.detection_pools import Pool, Reference
from stream.bench.detection_windows import Draw, Simulator, StreamFlags, Timing
from stream.model.load import load_model
from stream.service.process import die_with
from stream.settings import Settings


@dataclass(frozen=True)
class DetectionPlan:
    """The sizes of a run. ``sizes``: events per tumbling window; ``windows``: stable tumbling
    windows per size (10,000); ``runs``: runs per case and size (10), each ``before`` stable
    windows (4: they fill the first hopping window) then ``drift`` drifted ones (10);
    ``jobs``: worker processes; ``chunk``: stable windows per task (500)."""

    sizes: tuple[int, ...] = (100, 400, 2_000, 10_000)
    windows: int = 10_000
    runs: int = 10
    before: int = 4
    drift: int = 10
    seed: int = 0
    jobs: int = 2
    chunk: int = 500
    scenarios: tuple[str, ...] = ()
    """Only these scenarios (by name); all of them when empty."""


@dataclass(frozen=True)
class StableTask:
    """Tumbling windows ``start .. stop - 1`` of the stable stream at ``events`` per window."""

    events: int
    start: int
    stop: int

    @property
    def windows(self) -> int:
        """Windows this task reports (for the progress bar)."""
        return self.stop - self.start


@dataclass(frozen=True)
class CaseTask:
    """``runs`` runs of case ``case`` at ``events`` per window: ``before`` stable windows (at
    least the hopping window's size less one), then ``drift`` windows drawn from the case's
    pool."""

    case: int
    events: int
    runs: int
    before: int
    drift: int

    @property
    def windows(self) -> int:
        """Tumbling windows this task simulates (for the progress bar)."""
        return self.runs * (self.before + self.drift)


Task = StableTask | CaseTask


@dataclass(frozen=True)
class Inputs:
    """What every worker needs: the settings, the model directory (for the profile), the seed,
    the stable pool, each case's pool (None: not run) and the raw reference."""

    settings: Settings
    model_dir: Path
    seed: int
    stable: Pool
    cases: tuple[Pool | None, ...]
    reference: Reference


@dataclass
class StableDone:
    """A stable chunk's flags."""

    task: StableTask
    flags: StreamFlags


@dataclass
class CaseDone:
    """A case's runs: each run's outcome per detector, and the tally of their windows."""

    task: CaseTask
    outcomes: list[dict[str, RunOutcome]]
    tally: Tally


Done = StableDone | CaseDone


class Worker:
    """One process's simulator, pools and baseline tests (built once per pool)."""

    def __init__(self, inputs: Inputs) -> None:
        model = load_model(inputs.model_dir)
        policy = DriftPolicy.of(inputs.settings.aggregate)
        self.timing = Timing.of(inputs.settings)
        self.simulator = Simulator(model.profile, policy, self.timing, model.version)
        self.inputs = inputs
        self._tests: dict[int, tuple[Pool, BatchTests]] = {}

    def _pool(self, case: int) -> tuple[Pool, BatchTests]:
        """The pool of a case's runs (stable rows, then the case's), ``-1``: the stable pool."""
        if case not in self._tests:
            changed = self.inputs.cases[case] if case >= 0 else None
            pool = self.inputs.stable if changed is None else self.inputs.stable.then(changed)
            self._tests[case] = (pool, BatchTests(pool, self.inputs.reference))
        return self._tests[case]

    def __call__(self, task: Task) -> Done:
        seed = self.inputs.seed
        stable_rows = self.inputs.stable.rows
        if isinstance(task, StableTask):
            pool, tests = self._pool(-1)
            first = max(0, task.start - (self.timing.hop_windows - 1))
            draws = [
                Draw(0, stable_rows, (seed, 0, task.events, t)) for t in range(first, task.stop)
            ]
            return StableDone(
                task, self.simulator.run(pool, tests, draws, task.events, task.start - first)
            )
        pool, tests = self._pool(task.case)
        changed = pool.rows - stable_rows
        tally = Tally()
        outcomes = []
        # The stable windows are only folded (they fill the hopping windows that straddle the
        # onset); the drift windows are decided, tumbling and hopping.
        positives = Positives.of(task.drift, 0, self.timing.hop_windows)
        for run in range(task.runs):
            draws = [
                Draw(0, stable_rows, (seed, 1, task.events, task.case, run, t))
                if t < task.before
                else Draw(stable_rows, changed, (seed, 1, task.events, task.case, run, t))
                for t in range(task.before + task.drift)
            ]
            flags = self.simulator.run(pool, tests, draws, task.events, report_from=task.before)
            tally.add(flags, positives)
            outcomes.append({d: run_outcome(flags, 0, d) for d in DETECTORS})
        return CaseDone(task, outcomes, tally)


_worker: Worker | None = None


def _start(inputs: Inputs, parent: int) -> None:
    global _worker  # one worker per process, built by the pool's initializer
    # A SIGKILLed bench runs no cleanup, and its pool workers went on with their tasks (and
    # then waited for more) with no parent: the kernel now kills them with it.
    die_with(parent)
    _worker = Worker(inputs)


def _run(task: Task) -> Done:
    assert _worker is not None  # noqa: S101 - set by _start in every pool process
    return _worker(task)


def run_tasks(
    inputs: Inputs, tasks: Sequence[Task], jobs: int, on_done: Callable[[Done], None]
) -> None:
    """Run ``tasks`` in ``jobs`` processes (in this one when ``jobs`` is 1), calling
    ``on_done`` with each result as it comes, in no particular order."""
    if jobs <= 1:
        worker = Worker(inputs)
        for task in tasks:
            on_done(worker(task))
        return
    # spawn: a fresh interpreter per worker, nothing inherited from this process's threads.
    context = multiprocessing.get_context("spawn")
    with context.Pool(jobs, initializer=_start, initargs=(inputs, os.getpid())) as pool:
        results: Iterator[Any] = pool.imap_unordered(_run, tasks, chunksize=1)
        for done in results:
            on_done(done)
