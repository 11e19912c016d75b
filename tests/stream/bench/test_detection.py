"""``appraise bench detection`` on a tiny configuration: every figure is there and the figures
agree with each other. How well the detector does, and how fast, are the bench's figures, not a
test's (a shared machine is noisy, and a tiny run proves nothing about either)."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest
import yaml
from scipy.stats import chi2_contingency, ks_2samp

from stream.bench.detection import DetectionPlan, DetectionResult, prepare_detection, run_detection
from stream.bench.detection_alerts import FOR_WINDOWS, alert_windows
from stream.bench.detection_baselines import _ChiColumn, _KsColumn
from stream.bench.detection_report import format_result, plot
from stream.bench.detection_windows import DATASET_SHARE, OURS
from stream.service.process import die_with_parent_fn
from stream.settings import Settings
from tests.tools import wait_until

STABLE_KEYS = {"events_per_window", "windows", "false_windows", "false_alerts"}
SCENARIO_KEYS = {
    "scenario",
    "feature",
    "magnitude",
    "events_per_window",
    "detected_share",
    "median_delay_windows",
    "top_feature_right_share",
}
DETECTOR_KEYS = {"name", "precision", "recall", "f1", "false_alerts"}
PLAN = DetectionPlan(
    sizes=(100, 150),
    windows=14,
    runs=2,
    drift=6,
    jobs=2,
    chunk=5,
    scenarios=("scale", "inflate", "malformed"),
)


@functools.cache
def _run(model_dir: Path) -> DetectionResult:
    steps: list[tuple[int, str]] = []
    prepared = prepare_detection(Settings(model_dir=model_dir), PLAN)
    result = run_detection(prepared, lambda done, status: steps.append((done, status)))
    assert len(steps) == len(prepared.tasks)
    assert steps[-1][0] == prepared.total
    return result


@pytest.fixture(scope="module")
def result(model_dir: Path) -> DetectionResult:
    return _run(model_dir)


@pytest.mark.timeout(300)
def test_the_json_has_every_key(result: DetectionResult) -> None:
    figures = orjson.loads(result.to_json())
    assert {"stable", "scenarios", "baselines", "ours"} <= set(figures)
    assert [s["events_per_window"] for s in figures["stable"]] == [100, 150]
    assert all(set(s) >= STABLE_KEYS for s in figures["stable"])
    assert figures["scenarios"]
    assert all(set(s) >= SCENARIO_KEYS for s in figures["scenarios"])
    assert set(figures["ours"]) >= DETECTOR_KEYS
    names = [b["name"] for b in figures["baselines"]]
    assert names == ["psi > 0.1", "psi > 0.25", "ks/chi-square p < 0.05", "always fires"]
    assert all(set(b) >= DETECTOR_KEYS for b in figures["baselines"])


def test_stable_counts_are_within_their_bounds(result: DetectionResult) -> None:
    for s in result.stable:
        assert s["windows"] == PLAN.windows
        assert s["hopping_windows"] == PLAN.windows - 4
        assert 0 <= s["false_windows"] <= s["windows"] + s["hopping_windows"]
        # Each alert needs five flagged windows in which its own condition holds.
        for kind, n in s["false_alerts_by_kind"].items():
            assert n <= len(OURS) * s["false_windows_by_kind"][kind] // FOR_WINDOWS
        assert s["false_alerts"] == sum(s["false_alerts_by_rule"].values())
        assert s["simulated_days"] == pytest.approx(PLAN.windows / 1_440)


def test_scenario_figures_are_shares_and_delays(result: DetectionResult) -> None:
    run = {(s["spec"], s["events_per_window"]) for s in result.scenarios}
    assert len(run) == len(result.scenarios)
    for s in result.scenarios:
        assert s["runs"] == PLAN.runs
        for key in ("detected_share", "flagged_share", "flagged_within_2_share"):
            assert 0 <= s[key] <= 1
        assert s["flagged_within_2_share"] <= s["flagged_share"]
        if s["median_delay_windows"] is not None:
            assert 1 <= s["median_delay_windows"] <= PLAN.drift
        if s["median_alert_delay_windows"] is not None:
            # no alert before five flagged windows have closed
            assert s["median_alert_delay_windows"] >= FOR_WINDOWS + 1
        assert (s["top_feature_right_share"] is None) == (s["feature"] is None)
        if s["feature"] is not None:
            # the alerts name three causes, the first among them
            assert s["top_feature_right_share"] <= s["named_in_alert_share"] <= 1
    assert {s["scenario"] for s in result.scenarios} == {"scale", "inflate"}
    assert {s["magnitude"] for s in result.scenarios} == {"default", "half"}


def test_cases_that_cannot_be_run_say_why(result: DetectionResult) -> None:
    why = {(e["scenario"], e["feature"]): e["reason"] for e in result.excluded}
    assert "out_of_range" in why[("scale", "year_built")]
    assert "dead-lettered" in why[("malformed", None)]
    ran = {(s["scenario"], s["feature"]) for s in result.scenarios}
    assert not ran & set(why)


def test_detectors_are_consistent(result: DetectionResult) -> None:
    always = result.baselines[-1]
    assert always["recall"] == 1.0
    positives, negatives = result.windows["positives"], result.windows["negatives"]
    assert always["precision"] == pytest.approx(positives / (positives + negatives))
    # It fires in every stable window: one alert per kind and size that never ends.
    assert always["false_alerts"] == 2 * len(PLAN.sizes)
    for d in [result.ours, *result.baselines]:
        for key in ("precision", "recall", "f1"):
            assert 0 <= d[key] <= 1
        assert d["f1"] <= max(d["precision"], d["recall"]) + 1e-12
        assert d["false_alerts"] == sum(b["false_alerts"] for b in d["by_events"])
    low, high = result.baselines[0], result.baselines[1]
    assert low["recall"] >= high["recall"]  # PSI above 0.1 whenever above 0.25
    assert low["false_windows"] >= high["false_windows"]


def test_the_report_and_the_plot(result: DetectionResult, tmp_path: Path) -> None:
    text = format_result(result)
    for needle in ("stable data", "scenarios", "precision", "targets", "always fires"):
        assert needle in text
    assert len(result.targets) == len(PLAN.sizes) + 2
    plot(result, tmp_path / "detection.svg")
    assert (tmp_path / "detection.svg").read_text().lstrip().startswith("<?xml")


def test_alerts_need_five_windows_in_a_row() -> None:
    condition = np.array([1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1], dtype=bool)
    assert alert_windows(condition) == [5 + 5, 13 + 5]
    assert alert_windows(np.zeros(10, dtype=bool)) == []


def test_the_alert_rule_is_the_rules_file() -> None:
    rules = yaml.safe_load(Path("prometheus/rules/appraise-alerts.yml").read_text())
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"] if "alert" in r}
    for name in ("AppraisePredictionDrift", "AppraiseFeatureDrift", "AppraiseDatasetDrift"):
        assert alerts[name]["for"] == f"{FOR_WINDOWS}m"
    assert alerts["AppraiseDatasetDrift"]["expr"].endswith(f">= {DATASET_SHARE}")


def test_the_baselines_are_scipys_tests() -> None:
    rng = np.random.default_rng(3)
    pool = np.round(rng.normal(10, 3, 300))
    pool[:7] = np.nan
    reference = np.round(rng.normal(10.5, 3, 250))
    counts = rng.multinomial(120, np.full(300, 1 / 300), size=4)
    ks = _KsColumn(pool, reference)
    d, n = ks.statistic(counts)
    for row, stat, size in zip(counts, d, n, strict=True):
        window = np.repeat(pool, row)
        window = window[np.isfinite(window)]
        expected = ks_2samp(window, reference, method="asymp")
        assert stat == pytest.approx(expected.statistic)
        assert size == len(window)
    categories = np.array(["a", "b", "c", None, "d"], dtype=object)[rng.integers(0, 5, 200)]
    ref = np.array(["a", "b", "c", "e"], dtype=object)[rng.integers(0, 4, 300)]
    window_counts = rng.multinomial(90, np.full(200, 1 / 200), size=2)
    stats, dfs = _ChiColumn(categories, ref).statistic(window_counts)
    names = sorted(set(ref) | {v for v in categories if v is not None})
    for row, stat, df in zip(window_counts, stats, dfs, strict=True):
        values = np.repeat(categories, row)
        table = np.array([[np.sum(ref == c) for c in names], [np.sum(values == c) for c in names]])
        expected_chi = chi2_contingency(table[:, table.sum(axis=0) > 0], correction=False)
        assert stat == pytest.approx(expected_chi.statistic)
        assert df == expected_chi.dof


def test_the_command_is_wired() -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("APPRAISE_")}
    done = subprocess.run(
        [sys.executable, "-m", "stream", "bench", "detection", "--sizes", "10,x"],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean,
        check=False,
    )
    assert done.returncode == 2
    assert "whole numbers" in done.stderr


def _children(pid: int) -> set[int]:
    """The processes ``pid`` started (Linux: /proc)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its new parent to reap it does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the kernel's parent-death signal")
def test_a_killed_bench_takes_its_worker_processes_with_it(model_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPRAISE_")}
    env["APPRAISE_MODEL_DIR"] = str(model_dir)
    args = ["bench", "detection", "--sizes", "100", "--windows", "43200", "--runs", "1"]
    bench = subprocess.Popen(
        [sys.executable, "-m", "stream", *args, "--scenarios", "inflate", "--jobs", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=die_with_parent_fn(),  # a killed test run takes it with it
    )
    try:
        # multiprocessing's resource tracker is a child too: wait for the two pool workers.
        workers = wait_until(
            lambda: c if len(c := _children(bench.pid)) >= 3 else None,
            timeout=120,
            what="the bench's pool workers",
            alive=lambda: None if bench.poll() is None else f"bench exited {bench.returncode}",
        )
    finally:
        bench.kill()  # no cleanup runs: only the kernel can end the workers now
        bench.wait(timeout=30)
    wait_until(
        lambda: True if not any(_alive(w) for w in workers) else None,
        timeout=30,
        what=f"the workers {sorted(workers)} gone with the bench",
    )
