"""``appraise report``: the batch view of the newest windows on ``prediction-windows``.

Built only from what the stream app already computed: each closed window's record carries its
PSI/KS per feature, prediction quantiles, drift share and (since records carry them) the shares
the PSI was computed from; ``realised_error`` records carry MAE/MAPE. Nothing is recomputed
from raw events, so the report and the live gauges cannot disagree.

Pure: records in, a :class:`Report` out (:func:`build_report`), then its JSON
(:meth:`Report.to_json`) and one self-contained HTML page with inline SVG plots
(:func:`render_html`). :func:`read_windows` is the thin reader, :func:`load_report` reads and
builds, :func:`write_report` writes the files.

Plots use matplotlib's object API (``Figure``, never ``pyplot``), so no GUI backend is loaded
whatever ``MPLBACKEND`` says: each figure is written straight to SVG.
"""

from __future__ import annotations

import html
import io
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

import matplotlib
import numpy as np
import orjson
from aiokafka import TopicPartition
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from stream.aggregate.summary import RECORD_FORMAT
from stream.errors import DataError
from stream.features import NUMERIC_FEATURES
from stream.kafka import (
    end_offsets_via_highwater,
    read_range,
    topic_partitions,
    wait_until_reachable,
)
from stream.settings import KafkaSettings

#: Share of the features drifting at which the data set counts as drifted: the threshold of
#: the AppraiseDatasetDrift alert (prometheus/rules/appraise-alerts.yml; a test keeps them equal).
DATASET_DRIFT_SHARE: Final = 0.3
#: Format of the report's JSON file.
REPORT_FORMAT: Final = "appraise.report/1"
#: Prediction quantiles plotted, as the record keys them.
QUANTILE_KEYS: Final = ("0.1", "0.5", "0.9", "0.99")

Record = dict[str, Any]

# Each close of a window of one kind and model version writes a drift and a realised-error
# record, and the hopping kind closes about as often: ~4 records per wanted window, spread over
# the partitions by key. The first backwards read takes that many, later ones double.
_RECORDS_PER_WINDOW: Final = 4
_MIN_STEP: Final = 16
# How long the report waits for a broker that is not answering yet (as the producer does).
_REACH_TIMEOUT_S: Final = 15.0


def parse_record(value: bytes | None) -> Record | None:
    """A window record (drift or realised error) as a dict, or None for anything else."""
    if value is None:
        return None
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not (
        isinstance(data, dict)
        and data.get("format") == RECORD_FORMAT
        and data.get("kind") in ("drift", "realised_error")
        and all(isinstance(data.get(k), str) for k in ("window", "start", "end", "model_version"))
    ):
        return None
    try:
        _order(data)  # both times must parse: every later step sorts by them
    except ValueError:
        return None
    return data


# --- the report as data ------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureRow:
    """One feature in the focus window (the newest with drift values), and over all windows.

    Statistics are None where the record has none (KS of a categorical feature, a feature with
    no value in the window).
    """

    feature: str
    kind: Literal["numeric", "categorical"]
    psi: float | None
    ks: float | None
    missing_rate: float | None
    unseen_rate: float | None
    drifting: bool
    max_psi: float | None
    windows_drifting: int
    """Windows whose PSI is above the report's PSI threshold."""


@dataclass(frozen=True)
class Report:
    """The newest ``drift`` windows of one window kind and model version, oldest first."""

    window: str
    model_version: str
    psi_threshold: float
    drift_share_threshold: float
    windows: tuple[Record, ...]
    errors: tuple[Record, ...]
    """``realised_error`` records of the same window kind and model version, oldest first."""
    features: tuple[FeatureRow, ...]
    """Worst first: by PSI in the focus window, features without one last."""
    focus: Record | None
    """The newest window with drift values (None if every window is under ``min_events``)."""
    other_versions: tuple[str, ...] = ()
    skipped: int = 0
    source: str = ""
    generated: str = ""

    @property
    def counts_only(self) -> int:
        """Windows under ``min_events``: counts, no drift values."""
        return sum(1 for w in self.windows if w.get("features") is None)

    @property
    def worst(self) -> FeatureRow | None:
        """The feature with the highest PSI in the focus window."""
        return self.features[0] if self.features and self.features[0].psi is not None else None

    def summary_line(self) -> str:
        """One line: windows read and the worst feature with its PSI."""
        head = (
            f"{len(self.windows)} {self.window} windows of model {self.model_version} "
            f"({self.counts_only} with counts only)"
        )
        worst = self.worst
        if worst is None or self.focus is None:
            return f"{head}; no window has enough events for drift values"
        return (
            f"{head}; worst feature {worst.feature} PSI {worst.psi:.3f} "
            f"(threshold {self.psi_threshold:g}) in the window ending {self.focus['end']}; "
            f"drift share {self.focus['drifting_share']:.2f} (alert at "
            f"{self.drift_share_threshold:g})"
        )

    def to_json(self) -> bytes:
        """The report as indented JSON: settings, the feature table and the records used."""
        document = {
            "format": REPORT_FORMAT,
            "source": self.source,
            "generated": self.generated,
            "window": self.window,
            "model_version": self.model_version,
            "psi_threshold": self.psi_threshold,
            "drift_share_threshold": self.drift_share_threshold,
            "windows_read": len(self.windows),
            "counts_only": self.counts_only,
            "skipped_records": self.skipped,
            "other_model_versions": list(self.other_versions),
            "focus": None
            if self.focus is None
            else {"start": self.focus["start"], "end": self.focus["end"]},
            "summary": self.summary_line(),
            "features": [asdict(row) for row in self.features],
            "windows": list(self.windows),
            "realised_error": list(self.errors),
        }
        return orjson.dumps(document, option=orjson.OPT_INDENT_2)


def build_report(
    records: Iterable[Record],
    *,
    window: str,
    last: int,
    psi_threshold: float,
    drift_share_threshold: float = DATASET_DRIFT_SHARE,
    model_version: str | None = None,
    skipped: int = 0,
    source: str = "",
    generated: str = "",
) -> Report:
    """The report of the ``last`` newest drift windows named ``window`` (e.g. ``1m``).

    ``records`` are parsed window records in topic order (a record written again for the same
    window replaces the earlier one). ``model_version`` defaults to the newest window's.
    Raises :class:`DataError` if there is no drift window of that name.
    """
    if last < 1:
        raise ValueError(f"last must be at least 1, got {last}")
    unique: dict[tuple[str, str, str, str], Record] = {}
    for record in records:
        key = (record["kind"], record["window"], record["start"], record["model_version"])
        unique[key] = record
    named = [r for r in unique.values() if r["window"] == window]
    drift = sorted((r for r in named if r["kind"] == "drift"), key=_order)
    if not drift:
        seen = sorted({r["window"] for r in unique.values() if r["kind"] == "drift"})
        raise DataError(
            f"no drift windows named {window!r} among {len(unique)} window records"
            + (f"; windows there: {', '.join(seen)} (choose one with --window)" if seen else "")
        )
    version = model_version or drift[-1]["model_version"]
    windows = tuple(r for r in drift if r["model_version"] == version)[-last:]
    if not windows:
        raise DataError(f"no {window} windows of model {version!r}")
    errors = sorted(
        (r for r in named if r["kind"] == "realised_error" and r["model_version"] == version),
        key=_order,
    )[-last:]
    focus = next((w for w in reversed(windows) if w.get("features") is not None), None)
    return Report(
        window=window,
        model_version=version,
        psi_threshold=psi_threshold,
        drift_share_threshold=drift_share_threshold,
        windows=windows,
        errors=tuple(errors),
        features=_feature_rows(windows, focus, psi_threshold),
        focus=focus,
        other_versions=tuple(sorted({r["model_version"] for r in drift} - {version})),
        skipped=skipped,
        source=source,
        generated=generated,
    )


def _feature_rows(
    windows: Sequence[Record], focus: Record | None, threshold: float
) -> tuple[FeatureRow, ...]:
    if focus is None:
        return ()
    rows = []
    for name, values in focus["features"].items():
        series = [_psi(w, name) for w in windows]
        known = [v for v in series if v is not None]
        rows.append(
            FeatureRow(
                feature=name,
                kind="numeric" if name in NUMERIC_FEATURES else "categorical",
                psi=values.get("psi"),
                ks=values.get("ks"),
                missing_rate=values.get("missing_rate"),
                unseen_rate=values.get("unseen_rate"),
                drifting=name in (focus.get("drifting_features") or ()),
                max_psi=max(known) if known else None,
                windows_drifting=sum(1 for v in known if v > threshold),
            )
        )
    return tuple(sorted(rows, key=lambda r: (r.psi is None, -(r.psi or 0.0))))


def _psi(window: Record, feature: str) -> float | None:
    values = (window.get("features") or {}).get(feature) or {}
    psi = values.get("psi")
    return float(psi) if isinstance(psi, int | float) else None


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _order(record: Record) -> tuple[datetime, datetime]:
    return _time(record["end"]), _time(record["start"])


# --- reading the topic -------------------------------------------------------------------------


@dataclass
class WindowRead:
    """What :func:`read_windows` found: parsed records in topic order, and what it skipped."""

    records: list[Record] = field(default_factory=list)
    skipped: int = 0
    read: int = 0
    """Records fetched in all (parsed or not)."""


async def read_windows(kafka: KafkaSettings, topic: str, *, window: str, last: int) -> WindowRead:
    """Read enough of the end of ``topic`` to hold its ``last`` newest drift windows named
    ``window``, and the realised-error records written over the same time.

    Each partition is read backwards from its end in growing steps, until what it holds older
    than the part read cannot be among the newest ``last`` windows. The stream app publishes
    drift windows as event time passes their ends, so a partition's drift records are in order
    of their ends: once a partition reaches a drift record (of any window name) that ends no
    later than the ``last``-th newest wanted window found so far, the rest of it is older
    (realised-error records are written a sale delay later, so they do not count). A topic with
    fewer windows is read whole. Raises :class:`DataError` if the topic does not exist.
    """
    tps = await topic_partitions(kafka, topic)
    lows = await end_offsets_via_highwater(kafka, tps)
    found: dict[TopicPartition, list[Record]] = {tp: [] for tp in tps}
    result = WindowRead()
    step = max(_MIN_STEP, math.ceil(_RECORDS_PER_WINDOW * last / len(tps)))
    while todo := [tp for tp in tps if lows[tp] > 0 and _needs_more(found, tp, window, last)]:
        starts = {tp: max(0, lows[tp] - step) for tp in todo}
        chunk: dict[TopicPartition, list[Record]] = {tp: [] for tp in todo}
        ranges = read_range(
            kafka, todo, start_offsets=starts, end_offsets={tp: lows[tp] for tp in todo}
        )
        async with aclosing(ranges) as batches:
            async for batch in batches:
                for message in batch:
                    result.read += 1
                    record = parse_record(message.value)
                    if record is None:
                        result.skipped += 1
                    else:
                        chunk[TopicPartition(message.topic, message.partition)].append(record)
        for tp in todo:
            found[tp] = chunk[tp] + found[tp]
            lows[tp] = starts[tp]
        step *= 2
    result.records = [record for tp in tps for record in found[tp]]
    return result


def _needs_more(
    found: Mapping[TopicPartition, list[Record]], tp: TopicPartition, window: str, last: int
) -> bool:
    ends = sorted(
        (_time(r["end"]) for rs in found.values() for r in rs if _wanted(r, window)), reverse=True
    )
    if len(ends) < last:
        return True
    cutoff = ends[last - 1]
    # Drift records of any window name count (a partition may hold none of the wanted name and
    # must still stop), realised-error ones do not: they are written a sale delay after the
    # drift records of the same time, so an old one can sit among newer drift windows.
    drift = [_time(r["end"]) for r in found[tp] if r["kind"] == "drift"]
    return not drift or min(drift) > cutoff


def _wanted(record: Record, window: str) -> bool:
    return bool(record["kind"] == "drift" and record["window"] == window)


async def load_report(
    kafka: KafkaSettings,
    topic: str,
    *,
    window: str,
    last: int,
    psi_threshold: float,
    generated: str = "",
) -> Report:
    """Read the end of ``topic`` (:func:`read_windows`) and build the report of its ``last``
    newest ``window`` windows. :class:`DataError` if the topic holds no window records, or none
    of that window; :class:`BrokerError` if no broker answers within 15 s."""
    await wait_until_reachable(kafka, _REACH_TIMEOUT_S)
    read = await read_windows(kafka, topic, window=window, last=last)
    if not read.records:
        raise DataError(
            f"no window records on {topic!r} at {kafka.bootstrap_servers} ({read.read} records "
            "read): the stream app writes one per closed window; run `appraise aggregate` (or "
            "`appraise up`) and wait for a window to close"
        )
    return build_report(
        read.records,
        window=window,
        last=last,
        psi_threshold=psi_threshold,
        skipped=read.skipped,
        source=topic,
        generated=generated,
    )


def write_report(report: Report, out_dir: Path, *, html_page: bool = True) -> list[Path]:
    """Write ``report.json`` (and ``report.html`` unless ``html_page`` is False) into
    ``out_dir``, created if needed; return the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "report.json"]
    paths[0].write_bytes(report.to_json() + b"\n")
    if html_page:
        paths.append(out_dir / "report.html")
        paths[1].write_text(render_html(report), encoding="utf-8")
    return paths


# --- HTML ----------------------------------------------------------------------------------------

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
    # Text stays text (small, searchable, escaped by matplotlib) and is never read as mathtext,
    # so a "$" in a category name is just a dollar; a fixed hash salt makes the SVG ids, and so
    # the page, the same for the same records.
    with matplotlib.rc_context(
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
    ):
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
                f"<h2>Features in the window {e(focus['start'])} to {e(focus['end'])}</h2>",
                _feature_table(report),
                "<h2>PSI per feature over the windows</h2>",
                _figure(
                    "psi-heatmap",
                    _psi_heatmap(report),
                    "worst features first; x: PSI above the threshold; grey: no value",
                ),
            ]
        parts += [
            "<h2>Drift share</h2>",
            _figure(
                "drift-share",
                _drift_share(report),
                "share of the features drifting per window; gaps are windows with counts only",
            ),
            "<h2>Prediction quantiles</h2>",
            _figure("quantiles", _quantiles(report), "solid: the windows; dashed: the reference"),
            "<h2>Realised error</h2>",
        ]
        if report.errors:
            sales = sum(int(r.get("sales") or 0) for r in report.errors)
            parts.append(
                _figure(
                    "realised-error",
                    _realised_error(report),
                    f"{sales:,} sales joined over {len(report.errors)} windows of sale time",
                )
            )
        else:
            parts.append("<p class='note'>No realised_error records (no sale labels joined).</p>")
        if focus is not None:
            parts += [f"<h2>Reference vs current in the window ending {e(focus['end'])}</h2>"]
            parts += _distribution_figures(report, focus)
    parts += ["<h2>Windows</h2>", _window_table(report), "</body></html>"]
    return "\n".join(parts)


def _context(report: Report) -> str:
    text = f"From {report.source or 'window records'}"
    if report.generated:
        text += f", generated {report.generated}"
    text += (
        f". Windows from {report.windows[0]['start']} to {report.windows[-1]['end']}. A feature "
        f"drifts when its PSI is above {report.psi_threshold:g}; the data set when a share of "
        f"{report.drift_share_threshold:g} of the features drifts."
    )
    if report.other_versions:
        text += f" Not shown: model versions {', '.join(report.other_versions)}."
    if report.skipped:
        text += f" {report.skipped} records that are not window records were skipped."
    return text


def _distribution_figures(report: Report, focus: Record) -> list[str]:
    distributions = focus.get("distributions")
    if not isinstance(distributions, dict):
        return [
            "<p class='note'>These records carry no distributions (written before the stream "
            "app exported them).</p>"
        ]
    prediction = focus.get("prediction") or {}
    shown = [("prediction", distributions["prediction"], prediction.get("psi"))]
    shown += [
        (row.feature, distributions["features"][row.feature], row.psi)
        for row in report.features
        if row.feature in distributions["features"]
    ]
    figures = [
        _figure(f"bars-{index}", _bars(name, shares, psi), name)
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
        counts = [w["start"], w["end"], str(w.get("events")), str(w.get("panes"))]
        if w.get("features") is None:
            rows.append((False, [*counts, "", "", f"counts only (min {w.get('min_events')})"]))
            continue
        share = w.get("drifting_share")
        values = [
            _num((w.get("prediction") or {}).get("psi")),
            _num(share),
            ", ".join(str(f) for f in w.get("drifting_features") or ()),
        ]
        drifted = _number(share) >= report.drift_share_threshold
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


def _number(value: object) -> float:
    """A JSON number as a float; NaN for null or anything else."""
    return float(value) if isinstance(value, int | float) else math.nan


def _num(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "n/a"


def _pct(value: object) -> str:
    return f"{value:.1%}" if isinstance(value, int | float) else "n/a"


# --- plots ---------------------------------------------------------------------------------------

_REFERENCE_COLOUR: Final = "#9e9e9e"
# Longest bin label on a bar chart; longer category names are cut with an ellipsis.
_LABEL_CHARS: Final = 18


def _svg(figure: Figure) -> str:
    """The figure as an inline ``<svg>`` element (no XML declaration, no DOCTYPE)."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _window_axis(axes: Axes, records: Sequence[Record]) -> None:
    """Windows at 0, 1, 2, ... labelled with their end (UTC), at most about 12 labels."""
    ends = [_time(r["end"]) for r in records]
    one_day = len({t.date() for t in ends}) <= 1
    labels = [t.strftime("%H:%M:%S" if one_day else "%m-%d %H:%M") for t in ends]
    ticks = list(range(0, len(labels), max(1, math.ceil(len(labels) / 12))))
    axes.set_xticks(ticks, [labels[i] for i in ticks], rotation=40, ha="right")
    day = f", {ends[0]:%Y-%m-%d}" if one_day and ends else ""
    axes.set_xlabel(f"window end (UTC{day})")


def _psi_heatmap(report: Report) -> str:
    names = [row.feature for row in report.features]
    matrix = np.array([[_number(_psi(w, name)) for w in report.windows] for name in names])
    finite = matrix[np.isfinite(matrix)]
    top = max(2 * report.psi_threshold, float(finite.max()) if finite.size else 0.0)
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
        vmin=0.0,
        vmax=top,
    )
    axes.set_yticks(range(len(names)), names)
    _window_axis(axes, report.windows)
    over = np.argwhere(np.nan_to_num(matrix, nan=-1.0) > report.psi_threshold)
    axes.scatter(over[:, 1], over[:, 0], marker="x", color="black", s=10, linewidths=0.8)
    bar = figure.colorbar(image, ax=axes, label="PSI")
    bar.ax.axhline(report.psi_threshold, color="black", linewidth=1)
    return _svg(figure)


def _drift_share(report: Report) -> str:
    figure = Figure(figsize=(8.0, 2.8), layout="constrained")
    axes = figure.add_subplot()
    times = np.arange(len(report.windows))
    shares = [_number(w.get("drifting_share")) for w in report.windows]
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
    _window_axis(axes, report.windows)
    axes.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return _svg(figure)


def _quantiles(report: Report) -> str:
    figure = Figure(figsize=(8.0, 3.2), layout="constrained")
    axes = figure.add_subplot()
    times = np.arange(len(report.windows))
    reference = report.windows[-1].get("reference_quantiles") or {}
    for index, key in enumerate(QUANTILE_KEYS):
        colour = f"C{index}"
        values = [_number((w.get("quantiles") or {}).get(key)) for w in report.windows]
        label = f"p{float(key) * 100:g}"
        axes.plot(times, values, marker="o", markersize=3, color=colour, label=label)
        if math.isfinite(_number(reference.get(key))):
            axes.axhline(_number(reference[key]), color=colour, linestyle="--", linewidth=1)
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: _money(value)))
    axes.set_ylabel("predicted price")
    _window_axis(axes, report.windows)
    axes.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return _svg(figure)


def _realised_error(report: Report) -> str:
    figure = Figure(figsize=(8.0, 3.6), layout="constrained")
    mae = figure.add_subplot(2, 1, 1)
    mape = figure.add_subplot(2, 1, 2, sharex=mae)
    times = np.arange(len(report.errors))
    mae.plot(times, [_number(r.get("mae_dollars")) for r in report.errors], marker="o", ms=3)
    mae.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"${value:,.0f}"))
    mae.set_ylabel("MAE")
    mape_values = [_number(r.get("mape")) for r in report.errors]
    mape.plot(times, mape_values, marker="o", markersize=3, color="C1")
    mape.yaxis.set_major_formatter(PercentFormatter(1.0))
    mape.set_ylabel("MAPE")
    mae.tick_params(labelbottom=False)
    _window_axis(mape, report.errors)
    return _svg(figure)


def _bars(name: str, shares: Mapping[str, Any], psi: object) -> str:
    figure = Figure(figsize=(3.9, 2.7), layout="constrained")
    axes = figure.add_subplot()
    reference = [_number(v) for v in shares.get("reference") or ()]
    current = shares.get("current")
    labels = _bin_labels(shares, len(reference))
    positions = np.arange(len(reference), dtype=np.float64)
    axes.bar(positions - 0.2, reference, 0.4, color=_REFERENCE_COLOUR, label="reference")
    if current is not None:
        axes.bar(positions + 0.2, [_number(v) for v in current], 0.4, color="C0", label="current")
    tallest = np.nanmax([*reference, *(_number(v) for v in current or ()), 0.0])
    axes.set_ylim(0.0, 1.3 * tallest or 1.0)  # headroom for the legend
    slanted = "categories" in shares or len(labels) > 6
    axes.set_xticks(
        positions, labels, rotation=40 if slanted else 0, ha="right" if slanted else "center"
    )
    axes.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    title = name if not isinstance(psi, int | float) else f"{name}: PSI {psi:.3f}"
    axes.set_title(title if current is not None else f"{name}: no value in this window")
    axes.legend(loc="upper right", frameon=False)
    return _svg(figure)


def _bin_labels(shares: Mapping[str, Any], count: int) -> list[str]:
    if "categories" in shares:
        names = [str(c) for c in shares["categories"]]
        return [n if len(n) <= _LABEL_CHARS else n[: _LABEL_CHARS - 1] + "…" for n in names]
    edges = [_short(_number(v)) for v in shares.get("edges") or ()]
    if not edges or len(edges) + 1 != count:
        return [str(i) for i in range(count)]
    middle = [f"[{a}, {b})" for a, b in itertools.pairwise(edges)]
    return [f"<{edges[0]}", *middle, f"≥{edges[-1]}"]


def _short(value: float) -> str:
    size = abs(value)
    if size >= 1e6:
        return f"{value / 1e6:.3g}M"
    if size >= 1e4:
        return f"{value / 1e3:.4g}k"
    return f"{value:.4g}"


def _money(value: float) -> str:
    return f"${value / 1000:,.0f}k" if abs(value) >= 1000 else f"${value:,.0f}"
