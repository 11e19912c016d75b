"""The report as data: the newest ``drift`` windows of one window kind and model version, their
realised error, and the feature table of the newest window with drift values.

Built only from what the stream app already computed: each closed window's
:class:`~stream.contract.windows.DriftRecord` carries its PSI/KS per feature, prediction
quantiles, drift share and the shares the PSI was computed from; each
:class:`~stream.contract.windows.ErrorRecord` carries MAE/MAPE. Nothing is recomputed from raw
events, so the report and the live gauges cannot disagree. Pure: records in
(:func:`build_report`), a :class:`Report` and its JSON (:meth:`Report.to_json`) out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Final, Literal

import orjson

from stream.contract.features import NUMERIC_FEATURES
from stream.contract.times import rfc3339
from stream.contract.windows import DriftRecord, ErrorRecord
from stream.errors import DataError

#: Share of the features drifting at which the data set counts as drifted: the threshold of
#: the AppraiseDatasetDrift alert (prometheus/rules/appraise-alerts.yml; a test keeps them equal).
DATASET_DRIFT_SHARE: Final = 0.3
#: Format of the report's JSON file.
REPORT_FORMAT: Final = "appraise.report/1"


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
    windows: tuple[DriftRecord, ...]
    errors: tuple[ErrorRecord, ...]
    """``realised_error`` records of the same window kind and model version, oldest first."""
    features: tuple[FeatureRow, ...]
    """Worst first: by PSI in the focus window, features without one last."""
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
        share = self.focus.drifting_share
        return (
            f"{head}; worst feature {worst.feature} PSI {worst.psi:.3f} "
            f"(threshold {self.psi_threshold:g}) in the window ending {rfc3339(self.focus.end)}; "
            f"drift share {'n/a' if share is None else f'{share:.2f}'} (alert at "
            f"{self.drift_share_threshold:g})"
        )

    def to_json(self) -> bytes:
        """The report as indented JSON: settings, the feature table and the records used (as
        they are on the topic)."""
        focus = self.focus
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
            if focus is None
            else {"start": rfc3339(focus.start), "end": rfc3339(focus.end)},
            "summary": self.summary_line(),
            "features": [asdict(row) for row in self.features],
            "windows": [w.model_dump(mode="json") for w in self.windows],
            "realised_error": [r.model_dump(mode="json") for r in self.errors],
        }
        return orjson.dumps(document, option=orjson.OPT_INDENT_2)


def build_report(
    records: Iterable[DriftRecord | ErrorRecord],
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
        psi_threshold=psi_threshold,
        drift_share_threshold=drift_share_threshold,
        windows=windows,
        errors=tuple(errors),
        features=_feature_rows(windows, focus, psi_threshold),
        focus=focus,
        other_versions=tuple(sorted({r.model_version for r in drift} - {version})),
        skipped=skipped,
        source=source,
        generated=generated,
    )


def feature_psi(window: DriftRecord, feature: str) -> float | None:
    """``feature``'s PSI in ``window``; None under ``min_events`` or where it has none."""
    stats = (window.features or {}).get(feature)
    return None if stats is None else stats.psi


def _feature_rows(
    windows: Sequence[DriftRecord], focus: DriftRecord | None, threshold: float
) -> tuple[FeatureRow, ...]:
    if focus is None or focus.features is None:
        return ()
    rows = []
    for name, values in focus.features.items():
        known = [v for v in (feature_psi(w, name) for w in windows) if v is not None]
        rows.append(
            FeatureRow(
                feature=name,
                kind="numeric" if name in NUMERIC_FEATURES else "categorical",
                psi=values.psi,
                ks=values.ks,
                missing_rate=values.missing_rate,
                unseen_rate=values.unseen_rate,
                drifting=name in (focus.drifting_features or ()),
                max_psi=max(known) if known else None,
                windows_drifting=sum(1 for v in known if v > threshold),
            )
        )
    return tuple(sorted(rows, key=lambda r: (r.psi is None, -(r.psi or 0.0))))
