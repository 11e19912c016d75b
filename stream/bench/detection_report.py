"""``appraise bench detection`` for a person: the figures with the targets beside them, and the
plot (false alarms and delays against the window size, ours against the baselines)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stream.bench.detection_figures import DetectionResult


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_result(r: DetectionResult) -> str:
    """The report: stable data, scenarios (summed over features), detectors, targets."""
    c = r.config
    lines = [
        f"stable data: the hold-out stream resampled into {c['windows']:,} {c['window_kinds'][0]} "
        f"windows per size ({c['pane_seconds']:g} s panes) and the {c['window_kinds'][1]} "
        f"windows over them; an alert is {c['for_windows']} windows in a row",
        f"{'events/window':>14} {'flagged 1m':>10} {'flagged 5m':>10} {'alerts':>7} "
        f"{'per 1,000':>9} {'days between':>13}",
    ]
    for s in r.stable:
        days = f"{'>' if s['days_is_lower_bound'] else ''}{s['days_between_false_alerts']:.1f}"
        lines.append(
            f"{s['events_per_window']:>14,} {s['false_windows_by_kind']['tumbling']:>10,} "
            f"{s['false_windows_by_kind']['hopping']:>10,} {s['false_alerts']:>7,} "
            f"{s['false_alerts_per_1000']:>9.2f} {days:>13}"
        )
    for s in r.stable:
        if s["false_windows"]:
            shown = ", ".join(f"{k} {v}" for k, v in s["false_windows_by_label"].items())
            lines.append(
                f"  flagged at {s['events_per_window']:,}: {shown} (the level promises "
                f"{s['false_windows_expected']:.2f} flagged windows)"
            )
    lines += [
        f"  target: 0 alerts from 400 events/window on; at 100 at most 1 per "
        f"{c['false_alarm_days']:g} days",
        "",
        f"scenarios: {c['runs']} runs per case and size, {c['before']} stable windows then "
        f"{c['drift']} drifted; delays in windows from the onset (an alert comes 5 windows "
        "after the first flag at best)",
        f"{'scenario':<10} {'mag.':<7} {'events':>7} {'alerted':>7} {'flag<=2':>7} "
        f"{'flag':>5} {'alert':>5} {'named':>6} {'in 3':>5}",
    ]
    for s in r.scenario_summary:
        named, among = (
            "-" if s[key] is None else f"{s[key]:.0%}"
            for key in ("top_feature_right_share", "named_in_alert_share")
        )
        lines.append(
            f"{s['scenario']:<10} {s['magnitude']:<7} {s['events_per_window']:>7,} "
            f"{s['detected_share']:>7.0%} {s['flagged_within_2_share']:>7.0%} "
            f"{_num(s['median_delay_windows']):>5} {_num(s['median_alert_delay_windows']):>5} "
            f"{named:>6} {among:>5}"
        )
    lines += [
        "  named: the changed feature is the first likely cause; in 3: among the three the alerts",
        "  name. Target (default magnitude, 400+ events): flagged within 2 windows, named 95 %",
    ]
    lines += ["", "not run:"] + [
        f"  {e['scenario']} {e['feature'] or ''} ({e['magnitude']}): {e['reason']}"
        for e in r.excluded
    ]
    w = r.windows
    lines += [
        "",
        f"detectors over {w['positives'] + w['negatives']:,} windows ({w['positives']:,} in a "
        "drift phase); false alerts on the stable data, all sizes",
        f"{'detector':<24} {'precision':>9} {'recall':>7} {'F1':>6} {'false alerts':>12}",
    ]
    for d in [r.ours, *r.baselines]:
        lines.append(
            f"{d['name']:<24} {d['precision']:>9.3f} {d['recall']:>7.3f} {d['f1']:>6.3f} "
            f"{d['false_alerts']:>12,}"
        )
    lines += ["", "targets:"]
    for t in r.targets:
        lines.append(f"  [{'met' if t['met'] else 'MISSED'}] {t['target']}")
        lines += [f"      {m}" for m in t["misses"][:12]]
        if len(t["misses"]) > 12:
            lines.append(f"      ... and {len(t['misses']) - 12} more")
    lines.append(f"\n{r.seconds:,.0f} s")
    return "\n".join(lines)


def plot(result: DetectionResult, path: Path) -> None:
    """Draw, against the window size, ours beside the baselines: false alerts and flagged
    windows per 1,000 stable windows, and the mean windows from the onset to the first flag
    and to the first alert of the runs at default magnitudes (a run without one counts as
    ``drift + 1`` windows); into ``path`` (SVG or PNG by its suffix)."""
    # Loaded here, not at the top: matplotlib costs every `appraise` process about 28 MB.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 7), layout="constrained")
    (alerts, flagged), (to_flag, to_alert) = figure.subplots(2, 2)
    windows = max(1, result.config["windows"])
    never = result.config["drift"] + 1
    for detector in [result.ours, *result.baselines]:
        rows: list[dict[str, Any]] = detector["by_events"]
        sizes = [b["events_per_window"] for b in rows]
        style: dict[str, Any] = {"marker": "o", "label": detector["name"]}
        if detector is result.ours:
            style |= {"linewidth": 2.5, "color": "black", "zorder": 3}
        alerts.plot(sizes, [1_000 * b["false_alerts"] / windows for b in rows], **style)
        # flagged windows: both kinds, per 1,000 windows of them
        flagged.plot(sizes, [500 * b["false_windows"] / windows for b in rows], **style)
        to_flag.plot(sizes, [b["censored_mean_delay_windows"] for b in rows], **style)
        to_alert.plot(sizes, [b["censored_mean_alert_delay_windows"] for b in rows], **style)
    for axes, title in (
        (alerts, "false alerts per 1,000 stable windows (5 in a row)"),
        (flagged, "flagged stable windows per 1,000"),
        (to_flag, f"mean windows from the onset to the first flag (never: {never})"),
        (to_alert, f"mean windows from the onset to the first alert (never: {never})"),
    ):
        axes.set_xscale("log")
        axes.set_xlabel("events per 1 min window")
        axes.set_title(title, fontsize=10)
        axes.grid(alpha=0.3)
    for axes in (alerts, flagged):
        axes.set_yscale("symlog", linthresh=0.1)
        axes.set_ylim(bottom=0)
    to_flag.axhline(2, color="grey", linestyle="--", linewidth=1, label="target: 2")
    to_alert.axhline(2, color="grey", linestyle="--", linewidth=1)
    to_flag.set_ylim(0, None)
    to_alert.set_ylim(0, None)
    alerts.legend(fontsize=8)
    c = result.config
    figure.suptitle(
        f"appraise bench detection: {c['windows']:,} stable windows per size, {c['runs']} runs "
        "per scenario case (default magnitudes)",
        fontsize=10,
    )
    figure.savefig(path)
