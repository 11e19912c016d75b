"""The report's HTML tables: the likely causes and the features of the focus window, the
windows, and the sentence on target drift. Every text from the records is escaped."""

from __future__ import annotations

import html
from collections.abc import Sequence

from stream.contract.times import rfc3339
from stream.report.build import Report


def feature_table(report: Report) -> str:
    """The focus window's features, worst first; drifting ones highlighted."""
    head = [
        "feature",
        "kind",
        "score",
        "PSI / critical",
        "KS / critical",
        "missing",
        "unseen",
        "out of range",
        "likely cause",
        "importance",
        "max score",
        "windows drifting",
    ]
    rows = [
        (
            row.drifting,
            [
                row.feature,
                row.kind,
                _num(row.score, 2),
                _pair(row.psi, row.psi_critical),
                _pair(row.ks, row.ks_critical),
                _pct(row.missing_rate),
                _pct(row.unseen_rate),
                _pct(row.out_of_range_rate),
                "" if row.cause_rank is None else f"#{row.cause_rank}",
                _num(row.importance) if row.cause_rank is not None else "",
                _num(row.max_score, 2),
                f"{row.windows_drifting} of {len(report.windows)}",
            ],
        )
        for row in report.features
    ]
    return _table(head, rows)


def causes_table(report: Report) -> str:
    """The focus window's likely causes, or why there are none."""
    causes = report.causes
    if causes is None:
        return "<p class='note'>These records name no likely causes (written before them).</p>"
    if not causes:
        return "<p>No feature drifts in this window.</p>"
    head = ["rank", "feature", "score", "importance", "score x importance"]
    rows = [
        (
            True,
            [
                f"#{rank}",
                cause.feature,
                _num(cause.score, 2),
                _num(cause.importance),
                _num(cause.score * cause.importance),
            ],
        )
        for rank, cause in enumerate(causes, start=1)
    ]
    note = (
        "<p class='note'>The drifting features with the largest score x importance (the "
        "model's permutation importance), as the drift alerts name them.</p>"
    )
    return _table(head, rows) + note


def target_text(report: Report) -> str:
    """The newest drift of the sale prices, in one sentence."""
    record = report.target
    if record is None or record.target is None:
        return (
            "No target drift in these records: fewer sales than min_events in each window, or "
            "written before the stream app measured it."
        )
    target = record.target
    verdict = "drifting" if target.drifting else "not drifting"
    critical = "" if target.psi_critical is None else f", critical {target.psi_critical:.3f}"
    return (
        f"Target drift in the window ending {rfc3339(record.end)} ({record.sales:,} sales): "
        f"score {_num(target.score, 2)}, PSI {_num(target.psi)}{critical}: {verdict}."
    )


def window_table(report: Report) -> str:
    """The windows, newest first; those past the dataset-drift share highlighted."""
    head = [
        "start",
        "end",
        "events",
        "panes",
        "prediction score",
        "prediction PSI",
        "drift share",
        "drifting",
    ]
    rows: list[tuple[bool, list[str]]] = []
    for w in reversed(report.windows):
        counts = [rfc3339(w.start), rfc3339(w.end), str(w.events), str(w.panes)]
        if not w.has_drift:
            rows.append((False, [*counts, "", "", "", f"counts only (min {w.min_events})"]))
            continue
        share = w.drifting_share
        prediction = w.prediction
        values = [
            _num(None if prediction is None else prediction.score, 2),
            _num(None if prediction is None else prediction.psi),
            _num(share),
            ", ".join(w.drifting_features or ()),
        ]
        drifted = share is not None and share >= report.drift_share_threshold
        rows.append((drifted, [*counts, *values]))
    return _table(head, rows)


def _table(head: Sequence[str], rows: Sequence[tuple[bool, Sequence[str]]]) -> str:
    e = html.escape
    out = ["<table><thead><tr>", *(f"<th>{e(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for drifting, values in rows:
        cells = "".join(f"<td>{e(v)}</td>" for v in values)
        out.append(f"<tr class='drifting'>{cells}</tr>" if drifting else f"<tr>{cells}</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _pair(value: float | None, critical: float | None) -> str:
    return _num(value) if critical is None else f"{_num(value)} / {critical:.3f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"
