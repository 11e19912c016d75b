"""The report as data: the newest ``drift`` windows of one window kind and model version, their
realised error, and the feature table of the newest window with drift values.

Built only from what the stream app already computed and decided: each closed window's
:class:`~stream.contract.windows.DriftRecord` carries per feature PSI and KS with their critical
values, the drift score and the decision (``drifting``: score above 1), the likely causes, the
prediction quantiles, the drift share and the shares each PSI was computed from; each
:class:`~stream.contract.windows.ErrorRecord` carries MAE/MAPE and the drift of the sale prices.
Nothing is recomputed or decided again, so the report, the gauges and the alerts cannot
disagree. Records written before the scores (no ``score``, ``drifting`` or ``likely_causes``)
still make a report: their features drift as their ``drifting_features`` say. Pure: records in
(:func:`build_report`), a :class:`Report` and its JSON (:meth:`Report.to_json`) out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

import orjson

from stream.contract.features import NUMERIC_FEATURES
from stream.contract.times import rfc3339
from stream.contract.windows import Cause, DriftRecord, ErrorRecord
from stream.errors import DataError
from stream.report.fields import feature_drifting, feature_psi, feature_score

#: Share of the features drifting at which the data set counts as drifted: the threshold of
#: the AppraiseDatasetDrift alert (prometheus/rules/appraise-alerts.yml; a test keeps them equal).
DATASET_DRIFT_SHARE: Final = 0.3
#: Format of the report's JSON file.
REPORT_FORMAT: Final = "appraise.report/1"


@dataclass(frozen=True)
class FeatureRow:
    """One feature in the focus window (the newest with drift values), and over all windows.

    Statistics are None where the record has none (KS of a categorical feature, a feature with
    no value in the window, a field an older stream app did not write).
    """

    feature: str
    kind: Literal["numeric", "categorical"]
    score: float | None
    """PSI over the larger of the material PSI and its critical value: above 1 is drift."""
    drifting: bool
    """As the record says (score above 1)."""
    psi: float | None
    psi_critical: float | None
    ks: float | None
    ks_critical: float | None
    missing_rate: float | None
    unseen_rate: float | None
    out_of_range_rate: float | None
    """Share of the events outside the training range (numeric features; None before the stream
    app wrote it)."""
    cause_rank: int | None
    """1-3 when the feature is one of the focus window's likely causes."""
    importance: float | None
    """The model's permutation importance, given for the likely causes."""
    max_score: float | None
    max_psi: float | None
    windows_drifting: int
    """Windows whose record says the feature drifts."""


@dataclass(frozen=True)
class Report:
    """The newest ``drift`` windows of one window kind and model version, oldest first."""

    window: str
    model_version: str
    drift_share_threshold: float
    windows: tuple[DriftRecord, ...]
    errors: tuple[ErrorRecord, ...]
    """``realised_error`` records of the same window kind and model version, oldest first."""
    features: tuple[FeatureRow, ...]
    """Worst first: by drift score in the focus window (by PSI in records without scores)."""
    focus: DriftRecord | None
    """The newest window with drift values (None if every window is under ``min_events``)."""
    other_versions: tuple[str, ...] = ()
    skipped: int = 0
    source: str = ""
    generated: str = ""

    @property
    def counts_only(self) -> int:
        """Windows under ``min_events``: counts, no drift values."""
        return sum(1 for w in self.windows if not w.has_drift)

    @property
    def worst(self) -> FeatureRow | None:
        """The feature with the highest drift score in the focus window."""
        first = self.features[0] if self.features else None
        return first if first is not None and (first.score, first.psi) != (None, None) else None

    @property
    def psi_threshold(self) -> float | None:
        """The material PSI the stream app decided with (None in records without it)."""
        return None if self.focus is None else self.focus.psi_threshold

    @property
    def causes(self) -> tuple[Cause, ...] | None:
        """The focus window's likely causes (None when its record names none: written before
        the stream app did)."""
        causes = None if self.focus is None else self.focus.likely_causes
        return None if causes is None else tuple(causes)

    @property
    def target(self) -> ErrorRecord | None:
        """The newest realised-error record with the drift of the sale prices."""
        return next((r for r in reversed(self.errors) if r.target is not None), None)

    def summary_line(self) -> str:
        """One line: windows read, the worst feature with its score and the likely causes."""
        head = (
            f"{len(self.windows)} {self.window} windows of model {self.model_version} "
            f"({self.counts_only} with counts only)"
        )
        worst = self.worst
        if worst is None or self.focus is None:
            return f"{head}; no window has enough events for drift values"
        share = self.focus.drifting_share
        line = (
            f"{head}; worst feature {worst.feature} {_figures(worst)} in the window ending "
            f"{rfc3339(self.focus.end)}; drift share {'n/a' if share is None else f'{share:.2f}'} "
            f"(alert at {self.drift_share_threshold:g})"
        )
        if self.causes:
            line += "; likely causes " + ", ".join(
                f"{c.feature} (score {c.score:.2f})" for c in self.causes
            )
        return line

    def to_json(self) -> bytes:
        """The report as indented JSON: settings, the feature table and the records used (as
        they are on the topic)."""
        focus, causes = self.focus, self.causes
        document = {
            "format": REPORT_FORMAT,
            "source": self.source,
            "generated": self.generated,
            "window": self.window,
            "model_version": self.model_version,
            "psi_threshold": self.psi_threshold,
            "false_alarm_level": None if focus is None else focus.false_alarm_level,
            "drift_share_threshold": self.drift_share_threshold,
            "windows_read": len(self.windows),
            "counts_only": self.counts_only,
            "skipped_records": self.skipped,
            "other_model_versions": list(self.other_versions),
            "focus": None
            if focus is None
            else {"start": rfc3339(focus.start), "end": rfc3339(focus.end)},
            "summary": self.summary_line(),
            "features": [asdict(row) for row in self.features],
            "likely_causes": None if causes is None else [c.model_dump() for c in causes],
            "target": _target_json(self.target),
            "windows": [w.model_dump(mode="json") for w in self.windows],
            "realised_error": [r.model_dump(mode="json") for r in self.errors],
        }
        return orjson.dumps(document, option=orjson.OPT_INDENT_2)


def build_report(
    records: Iterable[DriftRecord | ErrorRecord],
    *,
    window: str,
    last: int,
    drift_share_threshold: float = DATASET_DRIFT_SHARE,
    model_version: str | None = None,
    skipped: int = 0,
    source: str = "",
    generated: str = "",
) -> Report:
    """The report of the ``last`` newest drift windows named ``window`` (e.g. ``1m``).

    ``records`` are window records in topic order (a record written again for the same window
    replaces the earlier one). ``model_version`` defaults to the newest window's.
    Raises :class:`DataError` if there is no drift window of that name.
    """
    if last < 1:
        raise ValueError(f"last must be at least 1, got {last}")
    unique = {record.key: record for record in records}
    drift = sorted(
        (r for r in unique.values() if isinstance(r, DriftRecord) and r.window == window),
        key=lambda r: (r.end, r.start),
    )
    if not drift:
        seen = sorted({r.window for r in unique.values() if isinstance(r, DriftRecord)})
        raise DataError(
            f"no drift windows named {window!r} among {len(unique)} window records"
            + (f"; windows there: {', '.join(seen)} (choose one with --window)" if seen else "")
        )
    version = model_version or drift[-1].model_version
    windows = tuple(r for r in drift if r.model_version == version)[-last:]
    if not windows:
        raise DataError(f"no {window} windows of model {version!r}")
    errors = sorted(
        (
            r
            for r in unique.values()
            if isinstance(r, ErrorRecord) and r.window == window and r.model_version == version
        ),
        key=lambda r: (r.end, r.start),
    )[-last:]
    focus = next((w for w in reversed(windows) if w.has_drift), None)
    return Report(
        window=window,
        model_version=version,
        drift_share_threshold=drift_share_threshold,
        windows=windows,
        errors=tuple(errors),
        features=_feature_rows(windows, focus),
        focus=focus,
        other_versions=tuple(sorted({r.model_version for r in drift} - {version})),
        skipped=skipped,
        source=source,
        generated=generated,
    )


def _feature_rows(
    windows: Sequence[DriftRecord], focus: DriftRecord | None
) -> tuple[FeatureRow, ...]:
    if focus is None or focus.features is None:
        return ()
    causes = {c.feature: (rank, c) for rank, c in enumerate(focus.likely_causes or (), start=1)}
    rows = []
    for name, values in focus.features.items():
        scores = [v for v in (feature_score(w, name) for w in windows) if v is not None]
        psis = [v for v in (feature_psi(w, name) for w in windows) if v is not None]
        rank, cause = causes.get(name, (None, None))
        rows.append(
            FeatureRow(
                feature=name,
                kind="numeric" if name in NUMERIC_FEATURES else "categorical",
                score=values.score,
                drifting=feature_drifting(focus, name),
                psi=values.psi,
                psi_critical=values.psi_critical,
                ks=values.ks,
                ks_critical=values.ks_critical,
                missing_rate=values.missing_rate,
                unseen_rate=values.unseen_rate,
                out_of_range_rate=values.out_of_range_rate,
                cause_rank=rank,
                importance=None if cause is None else cause.importance,
                max_score=max(scores) if scores else None,
                max_psi=max(psis) if psis else None,
                windows_drifting=sum(1 for w in windows if feature_drifting(w, name)),
            )
        )
    return tuple(sorted(rows, key=_worst_first))


def _worst_first(row: FeatureRow) -> tuple[bool, float, bool, float, str]:
    return (row.score is None, -(row.score or 0.0), row.psi is None, -(row.psi or 0.0), row.feature)


def _figures(row: FeatureRow) -> str:
    psi = "PSI n/a" if row.psi is None else f"PSI {row.psi:.3f}"
    if row.psi_critical is not None:
        psi += f", critical {row.psi_critical:.3f}"
    return psi if row.score is None else f"score {row.score:.2f} ({psi})"


def _target_json(record: ErrorRecord | None) -> dict[str, Any] | None:
    if record is None or record.target is None:
        return None
    return {
        "start": rfc3339(record.start),
        "end": rfc3339(record.end),
        "sales": record.sales,
        **record.target.model_dump(),
    }
