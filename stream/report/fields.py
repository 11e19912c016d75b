"""What a window record says about one feature, read the same way by the table and the plots.

Records written by older stream apps lack fields (no ``score`` or ``drifting``): each reader
gives None (or the record's ``drifting_features``) for them.
"""

from __future__ import annotations

from stream.contract.windows import DriftRecord


def feature_psi(window: DriftRecord, feature: str) -> float | None:
    """``feature``'s PSI in ``window``; None under ``min_events`` or where it has none."""
    stats = (window.features or {}).get(feature)
    return None if stats is None else stats.psi


def feature_score(window: DriftRecord, feature: str) -> float | None:
    """``feature``'s drift score in ``window``; None under ``min_events``, where it has none,
    and in records written before the scores."""
    stats = (window.features or {}).get(feature)
    return None if stats is None else stats.score


def feature_drifting(window: DriftRecord, feature: str) -> bool:
    """Whether ``window``'s record says ``feature`` drifts (its ``drifting``, or, in a record
    written before it, its ``drifting_features``)."""
    stats = (window.features or {}).get(feature)
    return stats is not None and (stats.drifting or feature in (window.drifting_features or ()))
