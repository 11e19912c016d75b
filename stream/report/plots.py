"""The report's plots, each a matplotlib figure written straight to an inline ``<svg>``.

A drift-score heat map (features by windows; 1 is the decision line), the drift share, the
prediction quantiles against the reference's, the realised error beside the drift score of the
sale prices, and reference vs current bars of one distribution (with its missing bin). They use
matplotlib's object API (``Figure``, never ``pyplot``), so no GUI backend is loaded whatever
``MPLBACKEND`` says; the page sets the rc parameters they are drawn with.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from stream.contract.windows import QUANTILES, Distribution, quantile_key
from stream.report.build import Report
from stream.report.fields import feature_drifting, feature_score

_REFERENCE_COLOUR: Final = "#9e9e9e"
# Longest bin label on a bar chart; longer category names are cut with an ellipsis.
_LABEL_CHARS: Final = 18


def page_style() -> contextlib.AbstractContextManager[None]:
    """The plots' style for one page: text stays text (small, searchable, escaped by
    matplotlib) and is never read as mathtext, so a "$" in a category name is just a dollar; a
    fixed hash salt makes the SVG ids, and so the page, the same for the same records."""
    context: contextlib.AbstractContextManager[None] = matplotlib.rc_context(
        {
            "svg.fonttype": "none",
            "svg.hashsalt": "appraise",
            "text.parse_math": False,
            "font.family": "sans-serif",
            "font.sans-serif": ["DejaVu Sans"],
            "font.size": 8,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )
    return context


def score_heatmap(report: Report) -> str:
    """Drift score per feature (worst first) and window: the colour scale turns at 1, the
    decision line, and x marks where the record says the feature drifts."""
    names = [row.feature for row in report.features]
    matrix = np.array([[_nan(feature_score(w, name)) for w in report.windows] for name in names])
    finite = matrix[np.isfinite(matrix)]
    top = max(2.0, float(finite.max()) if finite.size else 0.0)
    figure = Figure(
        figsize=(min(12.0, 3.5 + 0.3 * len(report.windows)), 1.2 + 0.22 * len(names)),
        layout="constrained",
    )
    axes = figure.add_subplot()
    image = axes.imshow(
        np.ma.masked_invalid(matrix),
        aspect="auto",
        interpolation="nearest",
        cmap=matplotlib.colormaps["YlOrRd"].with_extremes(bad="#eeeeee"),
        norm=TwoSlopeNorm(vmin=0.0, vcenter=1.0, vmax=top),
    )
    axes.set_yticks(range(len(names)), names)
    _window_axis(axes, [w.end for w in report.windows])
    over = [
        (column, row)
        for row, name in enumerate(names)
        for column, window in enumerate(report.windows)
        if feature_drifting(window, name)
    ]
    if over:
        columns, rows = zip(*over, strict=True)
        axes.scatter(columns, rows, marker="x", color="black", s=10, linewidths=0.8)
    bar = figure.colorbar(image, ax=axes, label="drift score")
    bar.ax.axhline(1.0, color="black", linewidth=1)
    return _svg(figure)


def drift_share(report: Report) -> str:
    """The share of the features drifting per window, and the alert's threshold."""
    figure = Figure(figsize=(8.0, 2.8), layout="constrained")
    axes = figure.add_subplot()
    times = np.arange(len(report.windows))
    shares = [_nan(w.drifting_share) for w in report.windows]
    axes.plot(times, shares, marker="o", markersize=3, label="share of features drifting")
    axes.axhline(
        report.drift_share_threshold,
        color="tab:red",
        linestyle="--",
        linewidth=1,
        label=f"alert at {report.drift_share_threshold:.0%}",
    )
    axes.set_ylim(0.0, 1.0)
    axes.yaxis.set_major_formatter(PercentFormatter(1.0))
    _window_axis(axes, [w.end for w in report.windows])
    axes.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return _svg(figure)


def quantiles(report: Report) -> str:
    """The prediction quantiles per window, and the newest window's reference quantiles."""
    figure = Figure(figsize=(8.0, 3.2), layout="constrained")
    axes = figure.add_subplot()
    times = np.arange(len(report.windows))
    reference = report.windows[-1].reference_quantiles
    for index, q in enumerate(QUANTILES):
        key, colour = quantile_key(q), f"C{index}"
        values = [_nan((w.quantiles or {}).get(key)) for w in report.windows]
        axes.plot(times, values, marker="o", markersize=3, color=colour, label=f"p{q * 100:g}")
        if math.isfinite(_nan(reference.get(key))):
            axes.axhline(reference[key], color=colour, linestyle="--", linewidth=1)
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: _money(value)))
    axes.set_ylabel("predicted price")
    _window_axis(axes, [w.end for w in report.windows])
    axes.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return _svg(figure)


def realised_error(report: Report) -> str:
    """MAE and MAPE per window of sale time, and the drift score of the sale prices (target
    drift) when the records carry it."""
    errors = report.errors
    targets = [_nan(None if r.target is None else r.target.score) for r in errors]
    panels = 3 if any(math.isfinite(t) for t in targets) else 2
    figure = Figure(figsize=(8.0, 1.8 * panels), layout="constrained")
    mae = figure.add_subplot(panels, 1, 1)
    mape = figure.add_subplot(panels, 1, 2, sharex=mae)
    times = np.arange(len(errors))
    mae.plot(times, [_nan(r.mae_dollars) for r in errors], marker="o", ms=3)
    mae.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"${value:,.0f}"))
    mae.set_ylabel("MAE")
    mape.plot(times, [_nan(r.mape) for r in errors], marker="o", markersize=3, color="C1")
    mape.yaxis.set_major_formatter(PercentFormatter(1.0))
    mape.set_ylabel("MAPE")
    bottom = mape
    if panels == 3:
        bottom = figure.add_subplot(panels, 1, 3, sharex=mae)
        bottom.plot(times, targets, marker="o", markersize=3, color="C2")
        bottom.axhline(1.0, color="tab:red", linestyle="--", linewidth=1)
        bottom.set_ylim(bottom=0.0)
        bottom.set_ylabel("target drift score")
        mape.tick_params(labelbottom=False)
    mae.tick_params(labelbottom=False)
    _window_axis(bottom, [r.end for r in errors])
    return _svg(figure)


def bars(name: str, shares: Distribution, title: str) -> str:
    """The reference's and the window's shares over the bins ``name``'s PSI compared, the
    missing bin last when either side has missing values."""
    figure = Figure(figsize=(3.9, 2.7), layout="constrained")
    axes = figure.add_subplot()
    reference, current = list(shares.reference), shares.current
    labels = _bin_labels(shares, len(reference))
    current_missing = shares.current_missing or 0.0
    if shares.reference_missing > 0 or current_missing > 0:
        labels.append("missing")
        reference.append(shares.reference_missing)
        if current is not None or current_missing > 0:
            current = [*(current or [0.0] * len(shares.reference)), current_missing]
    positions = np.arange(len(reference), dtype=np.float64)
    axes.bar(positions - 0.2, reference, 0.4, color=_REFERENCE_COLOUR, label="reference")
    if current is not None:
        axes.bar(positions + 0.2, current, 0.4, color="C0", label="current")
    tallest = np.nanmax([*reference, *(current or ()), 0.0])
    axes.set_ylim(0.0, 1.3 * tallest or 1.0)  # headroom for the legend
    slanted = shares.categories is not None or len(labels) > 6
    axes.set_xticks(
        positions, labels, rotation=40 if slanted else 0, ha="right" if slanted else "center"
    )
    axes.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    axes.set_title(title if shares.current is not None else f"{name}: no value in this window")
    axes.legend(loc="upper right", frameon=False)
    return _svg(figure)


def _svg(figure: Figure) -> str:
    """The figure as an inline ``<svg>`` element (no XML declaration, no DOCTYPE)."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _window_axis(axes: Axes, ends: Sequence[datetime]) -> None:
    """Windows at 0, 1, 2, ... labelled with their end (UTC), at most about 12 labels."""
    utc = [t.astimezone(UTC) for t in ends]
    one_day = len({t.date() for t in utc}) <= 1
    labels = [t.strftime("%H:%M:%S" if one_day else "%m-%d %H:%M") for t in utc]
    ticks = list(range(0, len(labels), max(1, math.ceil(len(labels) / 12))))
    axes.set_xticks(ticks, [labels[i] for i in ticks], rotation=40, ha="right")
    day = f", {utc[0]:%Y-%m-%d}" if one_day and utc else ""
    axes.set_xlabel(f"window end (UTC{day})")


def _bin_labels(shares: Distribution, count: int) -> list[str]:
    if shares.categories is not None:
        names = shares.categories
        return [n if len(n) <= _LABEL_CHARS else n[: _LABEL_CHARS - 1] + "…" for n in names]
    edges = [_short(v) for v in shares.edges or ()]
    if not edges or len(edges) + 1 != count:
        return [str(i) for i in range(count)]
    middle = [f"[{a}, {b})" for a, b in itertools.pairwise(edges)]
    return [f"<{edges[0]}", *middle, f"≥{edges[-1]}"]


def _nan(value: float | None) -> float:
    """``value``, or NaN for a statistic the record does not have (a gap in a plot)."""
    return math.nan if value is None else value


def _short(value: float) -> str:
    size = abs(value)
    if size >= 1e6:
        return f"{value / 1e6:.3g}M"
    if size >= 1e4:
        return f"{value / 1e3:.4g}k"
    return f"{value:.4g}"


def _money(value: float) -> str:
    return f"${value / 1000:,.0f}k" if abs(value) >= 1000 else f"${value:,.0f}"
