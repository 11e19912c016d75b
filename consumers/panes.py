"""Pane partials: the scorer's map-side pre-aggregation for the stream app's windows.

The scorer folds each batch into one :class:`Pane` per event-time pane (``pane_seconds`` wide,
10 s by default) and model version: quantile sketches of the predictions and of every numeric
feature, category counts, missing counts and the event count. At most every second it publishes
what it folded since the last publish, as one record per pane on ``prediction-panes``. Partials
of one pane from several scorers or several publishes merge exactly (sketch merge, count sums), so
the stream app's cost grows with panes, not with events.

Record format (``FORMAT``), key ``<pane start RFC 3339>/<model version>``, value UTF-8 JSON::

    {"format": "appraise.pane/1", "pane_start": "2008-05-01T12:00:00Z", "pane_seconds": 10.0,
     "model_version": "d235ed04b76f", "sketch": "kll_doubles:k=200", "events": 812,
     "prediction": "<base64 of QuantileSketch.to_bytes()>",
     "features": {"living_area_sqft": "<base64>", ...},          # every numeric feature
     "missing": {"living_area_sqft": 3, ..., "neighbourhood": 0},  # every feature
     "categories": {"neighbourhood": {"North_Ames": 120, ...}, ...}}

A sketch's bytes start with its state key (``kll_doubles:k=200``), and ``sketch`` repeats it, so
a reader configured for another ``k`` refuses the record instead of misreading it.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Final

import numpy as np
import numpy.typing as npt
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stream.errors import DataError
from stream.events import unix_rfc3339
from stream.features import CATEGORICAL_FEATURES, FEATURES, NUMERIC_FEATURES
from stream.sketches import DEFAULT_K, QuantileSketch, state_key_for

FORMAT: Final = "appraise.pane/1"

FloatArray = npt.NDArray[np.float64]


class PaneFormatError(DataError):
    """Bytes that are not a pane record of this format."""


@dataclass(slots=True)
class Pane:
    """The partial aggregate of one event-time pane for one model version."""

    start: float
    """Pane start, Unix seconds (UTC), a multiple of ``seconds``."""
    seconds: float
    model_version: str
    k: int = DEFAULT_K
    events: int = 0
    prediction: QuantileSketch = field(init=False)
    features: dict[str, QuantileSketch] = field(init=False)
    missing: dict[str, int] = field(init=False)
    categories: dict[str, Counter[str]] = field(init=False)

    def __post_init__(self) -> None:
        self.prediction = QuantileSketch.empty(self.k)
        self.features = {name: QuantileSketch.empty(self.k) for name in NUMERIC_FEATURES}
        self.missing = dict.fromkeys(FEATURES, 0)
        self.categories = {name: Counter() for name in CATEGORICAL_FEATURES}

    @property
    def key(self) -> bytes:
        """The record key: pane start and model version."""
        return f"{unix_rfc3339(self.start)}/{self.model_version}".encode()

    def fold(
        self,
        prices: FloatArray,
        numeric: Mapping[str, FloatArray],
        categorical: Mapping[str, Sequence[str | None]],
    ) -> None:
        """Fold rows in: ``prices`` and each numeric column (NaN = missing) have one value per
        row, each categorical column one ``str | None`` per row."""
        self.events += len(prices)
        self.prediction.update(prices)
        for name in NUMERIC_FEATURES:
            column = numeric[name]
            self.features[name].update(column)
            self.missing[name] += int(np.count_nonzero(np.isnan(column)))
        for name in CATEGORICAL_FEATURES:
            counts: Counter[str | None] = Counter(categorical[name])
            self.missing[name] += counts.pop(None, 0)
            self.categories[name].update({v: n for v, n in counts.items() if v is not None})

    def merge(self, other: Pane) -> None:
        """Fold another partial of the same pane and model version into this one."""
        if (other.start, other.seconds, other.model_version) != (
            self.start,
            self.seconds,
            self.model_version,
        ):
            raise ValueError(f"cannot merge pane {other.key!r} into {self.key!r}")
        self.events += other.events
        self.prediction.merge(other.prediction)
        for name in NUMERIC_FEATURES:
            self.features[name].merge(other.features[name])
        for name in FEATURES:
            self.missing[name] += other.missing[name]
        for name in CATEGORICAL_FEATURES:
            self.categories[name].update(other.categories[name])


class PaneBook:
    """The partials folded since the last :meth:`drain`, one :class:`Pane` per pane start.

    Args:
        pane_seconds: pane width in seconds (setting ``pane_seconds``, 10 by default).
        model_version: the version every folded prediction comes from.
        k: KLL sketch size of every sketch (setting ``sketch_k``, 200 by default).
    """

    def __init__(self, pane_seconds: float, model_version: str, k: int = DEFAULT_K) -> None:
        self.pane_seconds = pane_seconds
        self.model_version = model_version
        self.k = k
        self._panes: dict[float, Pane] = {}

    def __len__(self) -> int:
        return len(self._panes)

    def fold(
        self,
        event_seconds: FloatArray,
        prices: FloatArray,
        numeric: Mapping[str, FloatArray],
        categorical: Mapping[str, Sequence[str | None]],
    ) -> None:
        """Fold a batch of scored rows (columns as in :meth:`Pane.fold`) into their panes."""
        if len(prices) == 0:
            return
        starts = np.floor(event_seconds / self.pane_seconds) * self.pane_seconds
        first, last = starts.min(), starts.max()
        if first == last:  # the usual live case: the whole batch falls in one pane
            self._pane(float(first)).fold(prices, numeric, categorical)
            return
        # A replay spans many panes: sort once, then fold contiguous runs.
        order = np.argsort(starts, kind="stable")
        sorted_starts = starts[order]
        cuts = np.flatnonzero(np.diff(sorted_starts)) + 1
        for run in np.split(order, cuts):
            rows = run.tolist()
            self._pane(float(starts[run[0]])).fold(
                prices[run],
                {name: column[run] for name, column in numeric.items()},
                {name: [column[j] for j in rows] for name, column in categorical.items()},
            )

    def drain(self) -> list[Pane]:
        """The partials folded since the last call, oldest pane first; the book is empty after."""
        panes = [self._panes[start] for start in sorted(self._panes)]
        self._panes = {}
        return panes

    def _pane(self, start: float) -> Pane:
        pane = self._panes.get(start)
        if pane is None:
            pane = self._panes[start] = Pane(start, self.pane_seconds, self.model_version, self.k)
        return pane


# --- the record format ---------------------------------------------------------------------


class _PaneRecord(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    format: str
    pane_start: datetime
    pane_seconds: Annotated[float, Field(gt=0)]
    model_version: Annotated[str, Field(min_length=1, max_length=64)]
    sketch: str
    events: Annotated[int, Field(ge=0)]
    prediction: str
    features: dict[str, str]
    missing: dict[str, Annotated[int, Field(ge=0)]]
    categories: dict[str, dict[str, Annotated[int, Field(ge=0)]]]


def encode_pane(pane: Pane) -> bytes:
    """The record value of a pane partial (see the module docstring for the layout)."""
    return orjson.dumps(
        {
            "format": FORMAT,
            "pane_start": unix_rfc3339(pane.start),
            "pane_seconds": pane.seconds,
            "model_version": pane.model_version,
            "sketch": state_key_for(pane.k),
            "events": pane.events,
            "prediction": _b64(pane.prediction),
            "features": {name: _b64(pane.features[name]) for name in NUMERIC_FEATURES},
            "missing": pane.missing,
            "categories": {name: dict(pane.categories[name]) for name in CATEGORICAL_FEATURES},
        }
    )


def decode_pane(raw: bytes, *, k: int = DEFAULT_K) -> Pane:
    """Rebuild a pane partial from its record value; :class:`PaneFormatError` if the bytes are
    not a pane of this format, and ``SketchError`` if its sketches were written with another ``k``.
    """
    try:
        record = _PaneRecord.model_validate_json(raw, strict=False)
    except ValidationError as exc:
        raise PaneFormatError(f"not a pane record: {exc}") from exc
    if record.format != FORMAT:
        raise PaneFormatError(f"pane format {record.format!r}, this code reads {FORMAT!r}")
    if record.sketch != state_key_for(k):
        raise PaneFormatError(f"pane sketches are {record.sketch!r}, expected {state_key_for(k)!r}")
    if set(record.features) != set(NUMERIC_FEATURES) or set(record.missing) != set(FEATURES):
        raise PaneFormatError("pane record does not carry every feature of this model")
    pane = Pane(record.pane_start.timestamp(), record.pane_seconds, record.model_version, k)
    pane.events = record.events
    pane.prediction = _sketch(record.prediction, k)
    pane.features = {name: _sketch(record.features[name], k) for name in NUMERIC_FEATURES}
    pane.missing = dict(record.missing)
    for name in CATEGORICAL_FEATURES:
        pane.categories[name] = Counter(record.categories.get(name, {}))
    return pane


def _b64(sketch: QuantileSketch) -> str:
    return base64.b64encode(sketch.to_bytes()).decode("ascii")


def _sketch(text: str, k: int) -> QuantileSketch:
    try:
        data = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise PaneFormatError(f"sketch is not base64: {exc}") from exc
    return QuantileSketch.from_bytes(data, k)
