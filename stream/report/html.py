"""The report as one self-contained HTML page: inline CSS and SVG plots, no script, nothing
fetched.

:func:`render_html` lays out the summary, the feature table of the focus window, the plots of
:mod:`stream.report.plots` and the table of windows; every text from the records is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from types import ModuleType
from typing import Final

from stream.contract.times import rfc3339
from stream.contract.windows import DriftRecord
from stream.report.build import Report

_STYLE: Final = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1200px; color: #222;
       padding: 0 1rem; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
table { border-collapse: collapse; font-size: 0.85rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.2rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.drifting td { background: #fde2dd; }
.grid { display: flex; flex-wrap: wrap; gap: 0.5rem; }
figure { margin: 0.5rem 0; } figcaption { font-size: 0.8rem; color: #555; }
svg { max-width: 100%; height: auto; }
.note { color: #555; }
"""


def render_html(report: Report) -> str:
    """One self-contained HTML page: inline CSS and SVG, no script, nothing fetched.

    Every text from the records is escaped (matplotlib escapes the text it writes into SVG,
    and reads none of it as mathtext).
    """
    e = html.escape
    focus = report.focus
    # Loaded here, not at the top: matplotlib costs a service process about 28 MB, and every
    # `appraise` command (the scorer's too) imports the report's modules when it starts.
    from stream.report import plots

    with plots.page_style():
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>appraise report: {e(report.window)} windows of "
            f"{e(report.model_version)}</title>",
            f"<style>{_STYLE}</style></head><body>",
            f"<h1>appraise report: {e(report.window)} windows of model "
            f"{e(report.model_version)}</h1>",
            f"<p>{e(report.summary_line())}</p>",
            f"<p class='note'>{e(_context(report))}</p>",
        ]
        if focus is None:
            parts.append("<p>No window has enough events for drift values: counts only.</p>")
        else:
            parts += [
                f"<h2>Features in the window {rfc3339(focus.start)} to {rfc3339(focus.end)}</h2>",
                _feature_table(report),
                "<h2>PSI per feature over the windows</h2>",
                _figure(
                    "psi-heatmap",
                    plots.psi_heatmap(report),
                    "worst features first; x: PSI above the threshold; grey: no value",
                ),
            ]
        parts += [
            "<h2>Drift share</h2>",
            _figure(
                "drift-share",
                plots.drift_share(report),
                "share of the features drifting per window; gaps are windows with counts only",
            ),
            "<h2>Prediction quantiles</h2>",
            _figure(
                "quantiles", plots.quantiles(report), "solid: the windows; dashed: the reference"
            ),
            "<h2>Realised error</h2>",
        ]
        if report.errors:
            sales = sum(r.sales for r in report.errors)
            parts.append(
                _figure(
                    "realised-error",
                    plots.realised_error(report),
                    f"{sales:,} sales joined over {len(report.errors)} windows of sale time",
                )
            )
        else:
            parts.append("<p class='note'>No realised_error records (no sale labels joined).</p>")
        if focus is not None:
            parts += [f"<h2>Reference vs current in the window ending {rfc3339(focus.end)}</h2>"]
            parts += _distribution_figures(report, focus, plots)
    parts += ["<h2>Windows</h2>", _window_table(report), "</body></html>"]
    return "\n".join(parts)


def _context(report: Report) -> str:
    text = f"From {report.source or 'window records'}"
    if report.generated:
        text += f", generated {report.generated}"
    text += (
        f". Windows from {rfc3339(report.windows[0].start)} to {rfc3339(report.windows[-1].end)}. "
        f"A feature drifts when its PSI is above {report.psi_threshold:g}; the data set when a "
        f"share of {report.drift_share_threshold:g} of the features drifts."
    )
    if report.other_versions:
        text += f" Not shown: model versions {', '.join(report.other_versions)}."
    if report.skipped:
        text += f" {report.skipped} records that are not window records were skipped."
    return text


def _distribution_figures(report: Report, focus: DriftRecord, plots: ModuleType) -> list[str]:
    distributions = focus.distributions
    if distributions is None:
        return [
            "<p class='note'>These records carry no distributions (written before the stream "
            "app exported them).</p>"
        ]
    prediction_psi = None if focus.prediction is None else focus.prediction.psi
    shown = [("prediction", distributions.prediction, prediction_psi)]
    shown += [
        (row.feature, distributions.features[row.feature], row.psi)
        for row in report.features
        if row.feature in distributions.features
    ]
    figures = [
        _figure(f"bars-{index}", plots.bars(name, shares, psi), name)
        for index, (name, shares, psi) in enumerate(shown)
    ]
    return ["<div class='grid'>", *figures, "</div>"]


def _figure(slug: str, svg: str, caption: str) -> str:
    return (
        f'<figure id="plot-{html.escape(slug)}">{svg}'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _feature_table(report: Report) -> str:
    head = ["feature", "kind", "PSI", "KS", "missing", "unseen", "max PSI", "windows drifting"]
    rows = [
        (
            row.drifting,
            [
                row.feature,
                row.kind,
                _num(row.psi),
                _num(row.ks),
                _pct(row.missing_rate),
                _pct(row.unseen_rate),
                _num(row.max_psi),
                f"{row.windows_drifting} of {len(report.windows)}",
            ],
        )
        for row in report.features
    ]
    return _table(head, rows)


def _window_table(report: Report) -> str:
    head = ["start", "end", "events", "panes", "prediction PSI", "drift share", "drifting"]
    rows: list[tuple[bool, list[str]]] = []
    for w in reversed(report.windows):
        counts = [rfc3339(w.start), rfc3339(w.end), str(w.events), str(w.panes)]
        if not w.has_drift:
            rows.append((False, [*counts, "", "", f"counts only (min {w.min_events})"]))
            continue
        share = w.drifting_share
        values = [
            _num(None if w.prediction is None else w.prediction.psi),
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


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"
