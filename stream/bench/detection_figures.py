"""The figures of ``appraise bench detection`` from its flags and run outcomes, and the targets.

Stable data: per size, windows flagged per kind, alerts by rule and kind, per 1,000 windows
and as expected days between false alerts (the simulated span, ``windows`` x the tumbling size,
over the alerts; with none, the span is a lower bound). Scenarios: per case and size, and
summed over the features of each scenario. Detectors: precision, recall and F1 over every
window, false alerts on the stable data, and per size the detection share and delays of the
runs at the default magnitudes.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from stream.aggregate.policy import DriftPolicy
from stream.bench.detection_alerts import (
    DETECTORS,
    FOR_WINDOWS,
    RunOutcome,
    Tally,
    alerts_by_rule,
    flagged,
)
from stream.bench.detection_baselines import LABELS
from stream.bench.detection_pools import Case
from stream.bench.detection_run import DetectionPlan
from stream.bench.detection_windows import OURS, StreamFlags, Timing
from stream.contract.features import FEATURES
from stream.settings import Settings

#: The targets: no false alert at these sizes and above; first flag within these windows;
#: the changed feature named first in this share of the runs.
QUIET_FROM: Final = 400
FLAG_WITHIN: Final = 2
NAMED_SHARE: Final = 0.95


@dataclass
class DetectionResult:
    """The figures of one run; ``to_json`` prints every field."""

    config: dict[str, Any]
    stable: list[dict[str, Any]]
    scenarios: list[dict[str, Any]]
    scenario_summary: list[dict[str, Any]]
    excluded: list[dict[str, Any]]
    baselines: list[dict[str, Any]]
    ours: dict[str, Any]
    windows: dict[str, int]
    targets: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> bytes:
        """One JSON object with the fields above."""
        return orjson.dumps(self.__dict__)


def _median(values: Sequence[int]) -> float | None:
    return float(statistics.median(values)) if values else None


def stable_alerts(stream: StreamFlags, detector: str) -> tuple[dict[str, int], dict[str, int], int]:
    """Alerts of ``detector`` on a stable stream by rule and by kind, and the windows it flagged."""
    by_rule: dict[str, int] = defaultdict(int)
    by_kind: dict[str, int] = {}
    windows = 0
    for name, kind in (("tumbling", stream.tumbling), ("hopping", stream.hopping)):
        rules = alerts_by_rule(kind, detector)
        for rule, n in rules.items():
            by_rule[rule] += n
        by_kind[name] = sum(rules.values())
        windows += int(flagged(kind, detector).sum())
    return dict(by_rule), by_kind, windows


def _stable(
    events: int, stream: StreamFlags, minutes: float, policy: DriftPolicy
) -> dict[str, Any]:
    by_rule, by_kind, _ = stable_alerts(stream, "ours")
    tumbling = int(stream.tumbling.valid.sum())
    hopping = int(stream.hopping.valid.sum())
    false_by_kind = {
        "tumbling": int(flagged(stream.tumbling, "ours").sum()),
        "hopping": int(flagged(stream.hopping, "ours").sum()),
    }
    alerts = sum(by_kind.values())
    days = tumbling * minutes / 1_440
    by_label = (stream.tumbling.ours & stream.tumbling.valid[:, None]).sum(axis=0) + (
        stream.hopping.ours & stream.hopping.valid[:, None]
    ).sum(axis=0)
    return {
        "events_per_window": events,
        "windows": tumbling,
        "hopping_windows": hopping,
        "false_windows": sum(false_by_kind.values()),
        "false_windows_by_kind": false_by_kind,
        "false_windows_per_1000": 1_000 * sum(false_by_kind.values()) / max(1, tumbling + hopping),
        "false_windows_by_label": {n: int(c) for n, c in zip(OURS, by_label, strict=True) if c},
        # What the level promises: each window's tests (every feature, the predictions) at alpha.
        "false_windows_expected": policy.alpha * len(LABELS) * (tumbling + hopping),
        "false_alerts": alerts,
        "false_alerts_by_kind": by_kind,
        "false_alerts_by_rule": by_rule,
        "false_alerts_per_1000": 1_000 * alerts / max(1, tumbling),
        "simulated_days": days,
        "days_between_false_alerts": days / alerts if alerts else days,
        "days_is_lower_bound": alerts == 0,
    }


def _runs(outs: Sequence[RunOutcome], feature: str | None) -> dict[str, Any]:
    flags = [o.flag_delay for o in outs if o.flag_delay is not None]
    alerts = [o.alert_delay for o in outs if o.alert_delay is not None]
    n = max(1, len(outs))
    right = among = None
    if feature is not None:
        right = sum(o.cause == FEATURES.index(feature) for o in outs) / n
        among = sum(FEATURES.index(feature) in o.causes for o in outs) / n
    named: dict[str, int] = defaultdict(int)
    for o in outs:
        named["none" if o.cause is None or o.cause < 0 else FEATURES[o.cause]] += 1
    return {
        "runs": len(outs),
        "detected_share": len(alerts) / n,
        "flagged_share": len(flags) / n,
        "flagged_within_2_share": sum(d <= FLAG_WITHIN for d in flags) / n,
        "median_delay_windows": _median(flags),
        "median_alert_delay_windows": _median(alerts),
        "mean_delay_windows": statistics.fmean(flags) if flags else None,
        "mean_alert_delay_windows": statistics.fmean(alerts) if alerts else None,
        "top_feature_right_share": right,
        "named_in_alert_share": among,
        "named_first": dict(sorted(named.items(), key=lambda kv: -kv[1])),
    }


#: What a detector's row per size keeps of the runs' figures.
_POOLED: Final = (
    "runs",
    "detected_share",
    "flagged_share",
    "flagged_within_2_share",
    "median_delay_windows",
    "median_alert_delay_windows",
    "mean_delay_windows",
    "mean_alert_delay_windows",
)


def _censored(outs: Sequence[RunOutcome], never: int) -> dict[str, float | None]:
    """Mean delays with a run that never flagged (alerted) counted as ``never`` windows: a
    detector that misses is not made to look fast by the runs it caught."""
    if not outs:
        return {"censored_mean_delay_windows": None, "censored_mean_alert_delay_windows": None}
    return {
        "censored_mean_delay_windows": statistics.fmean(
            never if o.flag_delay is None else o.flag_delay for o in outs
        ),
        "censored_mean_alert_delay_windows": statistics.fmean(
            never if o.alert_delay is None else min(o.alert_delay, never) for o in outs
        ),
    }


def figures(
    plan: DetectionPlan,
    settings: Settings,
    cases: Sequence[Case],
    streams: Mapping[int, StreamFlags],
    outcomes: Mapping[tuple[int, int], list[dict[str, RunOutcome]]],
    tally: Tally,
) -> DetectionResult:
    """Every figure of a run from its stable streams (by size), run outcomes (by case index
    and size) and window tally."""
    timing = Timing.of(settings)
    minutes = timing.tumbling_seconds / 60
    policy = DriftPolicy.of(settings.aggregate)
    stable = [_stable(m, streams[m], minutes, policy) for m in sorted(streams)]
    scenarios: list[dict[str, Any]] = []
    pooled: dict[tuple[str, str, int], list[tuple[RunOutcome, str | None]]] = defaultdict(list)
    for (index, events), outs in sorted(outcomes.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        case = cases[index]
        mine = [o["ours"] for o in outs]
        scenarios.append(_case_row(case, events) | _runs(mine, case.feature))
        pooled[(case.scenario, case.magnitude, events)] += [(o, case.feature) for o in mine]
    summary = []
    for (name, magnitude, events), rows in pooled.items():
        features = {f for _, f in rows}
        row = _runs([o for o, _ in rows], None)
        if None not in features:
            named = [o.cause == FEATURES.index(f) for o, f in rows if f is not None]
            row["top_feature_right_share"] = sum(named) / len(named)
            among = [FEATURES.index(f) in o.causes for o, f in rows if f is not None]
            row["named_in_alert_share"] = sum(among) / len(among)
        summary.append(
            {"scenario": name, "magnitude": magnitude, "events_per_window": events}
            | {"features": len(features)}
            | row
        )
    detectors = {}
    for detector in DETECTORS:
        by_events = []
        for events in sorted(streams):
            _, by_kind, windows = stable_alerts(streams[events], detector)
            default = [
                o[detector]
                for (i, m), outs in outcomes.items()
                if m == events and cases[i].magnitude == "default"
                for o in outs
            ]
            by_events.append(
                {"events_per_window": events, "false_alerts": sum(by_kind.values())}
                | {"false_windows": windows}
                | {k: v for k, v in _runs(default, None).items() if k in _POOLED}
                | _censored(default, plan.drift + 1)
            )
        detectors[detector] = (
            {"name": detector}
            | tally.confusion[detector].figures()
            | {"false_alerts": sum(b["false_alerts"] for b in by_events)}
            | {"false_windows": sum(b["false_windows"] for b in by_events)}
            | {"by_events": by_events}
        )
    ours = tally.confusion["ours"]
    result = DetectionResult(
        config={
            "sizes": list(plan.sizes),
            "windows": plan.windows,
            "runs": plan.runs,
            "before": plan.before,
            "drift": plan.drift,
            "seed": plan.seed,
            "jobs": plan.jobs,
            "pane_seconds": timing.pane_seconds,
            "window_kinds": list(timing.names),
            "hop_windows": timing.hop_windows,
            "for_windows": FOR_WINDOWS,
            "false_alarm_days": policy.false_alarm_days,
            "alpha": policy.alpha,
        },
        stable=stable,
        scenarios=scenarios,
        scenario_summary=sorted(
            summary, key=lambda r: (r["events_per_window"], r["scenario"], r["magnitude"])
        ),
        excluded=[
            {
                "scenario": c.scenario,
                "feature": c.feature,
                "magnitude": c.magnitude,
                "reason": c.excluded,
            }
            for c in cases
            if c.excluded is not None
        ],
        baselines=[v for k, v in detectors.items() if k != "ours"],
        ours=detectors["ours"],
        windows={
            "positives": ours.tp + ours.fn,
            "negatives": ours.fp + ours.tn,
        },
    )
    result.targets = targets(result, policy.false_alarm_days)
    return result


def _case_row(case: Case, events: int) -> dict[str, Any]:
    spec = case.spec
    return {
        "scenario": case.scenario,
        "feature": case.feature,
        "magnitude": case.magnitude,
        "magnitude_value": None if spec is None else spec.magnitude,
        "spec": case.label,
        "events_per_window": events,
    }


def targets(result: DetectionResult, budget_days: float) -> list[dict[str, Any]]:
    """The README's targets, each with whether this run met it and what missed."""
    out = []
    for row in result.stable:
        m = row["events_per_window"]
        if m >= QUIET_FROM:
            goal, met = "no false alert", row["false_alerts"] == 0
        else:
            allowed = row["simulated_days"] / budget_days
            goal = f"at most the budget's rate (1 per {budget_days:g} days: {allowed:.2f} here)"
            met = row["false_alerts"] <= allowed
        out.append({"target": f"stable, {m:,} events/window: {goal}", "met": met, "misses": []})
    default = [
        r
        for r in result.scenarios
        if r["magnitude"] == "default" and r["events_per_window"] >= QUIET_FROM
    ]
    late = [r for r in default if r["flagged_within_2_share"] < NAMED_SHARE]
    out.append(
        {
            "target": f"every scenario at its default magnitude flagged within {FLAG_WITHIN} "
            f"windows of its onset at {QUIET_FROM:,}+ events/window (in {NAMED_SHARE:.0%} of "
            "the runs; an alert cannot come before 6)",
            "met": not late,
            "misses": [f"{r['spec']} at {r['events_per_window']:,}" for r in late],
        }
    )
    unnamed = [
        r
        for r in default
        if r["top_feature_right_share"] is not None and r["top_feature_right_share"] < NAMED_SHARE
    ]
    out.append(
        {
            "target": f"the changed feature named first in {NAMED_SHARE:.0%} of the runs "
            f"(default magnitude, {QUIET_FROM:,}+ events/window)",
            "met": not unnamed,
            "misses": [f"{r['spec']} at {r['events_per_window']:,}" for r in unnamed],
        }
    )
    return out
