"""The report as one self-contained HTML page: inline CSS and SVG plots, no script, nothing
fetched.

:func:`render_html` lays out the summary, the likely causes and the feature table of the focus
window, the plots of :mod:`stream.report.plots` and the table of windows; every text from the
records is escaped.
"""

from __future__ import annotations

import html
from types import ModuleType
from typing import Final

from stream.contract.times import rfc3339
from stream.contract.windows import DriftRecord, PredictionStats
from stream.report.build import FeatureRow, Report
from stream.report.tables import causes_table, feature_table, target_text, window_table

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
                f"<h2>Likely causes in the window ending {rfc3339(focus.end)}</h2>",
                causes_table(report),
                f"<h2>Features in the window {rfc3339(focus.start)} to {rfc3339(focus.end)}</h2>",
                feature_table(report),
                "<h2>Drift score per feature over the windows</h2>",
                _figure(
                    "score-heatmap",
                    plots.score_heatmap(report),
                    "worst features first; the colours turn at 1, the decision line; x: the "
                    "record says the feature drifts; grey: no score",
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
            "<h2>Realised error and target drift</h2>",
        ]
        if report.errors:
            sales = sum(r.sales for r in report.errors)
            parts += [
                _figure(
                    "realised-error",
                    plots.realised_error(report),
                    f"{sales:,} sales joined over {len(report.errors)} windows of sale time; "
                    "target drift: the drift score of their sale prices (dashed: 1)",
                ),
                f"<p>{e(target_text(report))}</p>",
            ]
        else:
            parts.append("<p class='note'>No realised_error records (no sale labels joined).</p>")
        if focus is not None:
            parts += [f"<h2>Reference vs current in the window ending {rfc3339(focus.end)}</h2>"]
            parts += _distribution_figures(report, focus, plots)
    parts += ["<h2>Windows</h2>", window_table(report), "</body></html>"]
    return "\n".join(parts)


def _context(report: Report) -> str:
    text = f"From {report.source or 'window records'}"
    if report.generated:
        text += f", generated {report.generated}"
    text += (
        f". Windows from {rfc3339(report.windows[0].start)} to {rfc3339(report.windows[-1].end)}. "
        "Drift is as the stream app decided it: a feature, the predictions or the sale prices "
        "drift when their drift score is above 1, the score being PSI over the larger of the "
        "material PSI"
    )
    focus = report.focus
    if focus is not None and focus.psi_threshold is not None:
        text += f" ({focus.psi_threshold:g})"
    text += " and PSI's critical value at the window's size"
    if focus is not None and focus.false_alarm_level is not None:
        text += f" and false-alarm level ({focus.false_alarm_level:.2g} per test)"
    text += f"; the data set drifts when a share of {report.drift_share_threshold:g} does."
    if (
        focus is not None
        and focus.features
        and all(stats.score is None for stats in focus.features.values())
    ):
        text += " These records carry no scores (written before them): drifting as they say."
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
    prediction = focus.prediction
    shown = [("prediction", distributions.prediction, _title("prediction", prediction))]
    shown += [
        (row.feature, distributions.features[row.feature], _title(row.feature, row))
        for row in report.features
        if row.feature in distributions.features
    ]
    figures = [
        _figure(f"bars-{index}", plots.bars(name, shares, title), name)
        for index, (name, shares, title) in enumerate(shown)
    ]
    return ["<div class='grid'>", *figures, "</div>"]


def _figure(slug: str, svg: str, caption: str) -> str:
    return (
        f'<figure id="plot-{html.escape(slug)}">{svg}'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _title(name: str, stats: PredictionStats | FeatureRow | None) -> str:
    if stats is None or stats.psi is None:
        return name
    psi = f"PSI {stats.psi:.3f}"
    return f"{name}: {psi}" if stats.score is None else f"{name}: score {stats.score:.2f}, {psi}"
