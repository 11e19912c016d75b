"""The pane record: the scorer's map-side pre-aggregation for the stream app's windows.

A writer (the scorer) folds each batch into one :class:`Pane` per event-time pane
(``pane_seconds`` wide, 10 s by default) and model version: a sketch bundle of the predictions
and every feature (:mod:`stream.contract.bundle`). At most every second it publishes
what it folded since the last publish, as one record per pane on ``prediction-panes``. Partials
of one pane from several scorers or several publishes merge exactly (sketch merge, count sums), so
the stream app's cost grows with panes, not with events.

Record format (``FORMAT``), key ``<pane start RFC 3339>/<model version>``, value UTF-8 JSON::

    {"format": "appraise.pane/2", "pane_start": "2008-05-01T12:00:00Z", "pane_seconds": 10.0,
     "model_version": "d235ed04b76f", "sketch": "kll_doubles:k=200", "events": 812,
     "prediction": "<base64 of QuantileSketch.to_bytes()>",
     "features": {"living_area_sqft": "<base64>", ...},          # every numeric feature
     "missing": {"living_area_sqft": 3, ..., "neighbourhood": 0},  # every feature
     "out_of_range": {"living_area_sqft": 0, ...},               # every numeric feature
     "categories": {"neighbourhood": {"North_Ames": 120, ...}, ...}}

``out_of_range`` counts the values outside the model's training range. A record of the first
format (``appraise.pane/1``, written before it existed) is still read, with no value out of
range.

A sketch's bytes start with its state key (``kll_doubles:k=200``), and ``sketch`` repeats it, so
a reader configured for another ``k`` refuses the record instead of misreading it.
"""

from __future__ import annotations

import base64
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Final

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stream.contract.bundle import SketchBundle
from stream.contract.features import CATEGORICAL_FEATURES, FEATURES, NUMERIC_FEATURES
from stream.contract.sketch import DEFAULT_K, QuantileSketch, state_key_for
from stream.contract.times import unix_rfc3339
from stream.errors import DataError

FORMAT: Final = "appraise.pane/2"
#: The first format: no ``out_of_range`` counts.
_FORMAT_V1: Final = "appraise.pane/1"


class PaneFormatError(DataError):
    """Bytes that are not a pane record of this format."""


@dataclass(slots=True)
class Pane:
    """The partial aggregate of one event-time pane for one model version."""

    start: float
    """Pane start, Unix seconds (UTC), a multiple of ``seconds``."""
    seconds: float
    model_version: str
    sketches: SketchBundle = field(default_factory=SketchBundle)

    @property
    def k(self) -> int:
        """KLL size of the pane's sketches."""
        return self.sketches.k

    @property
    def events(self) -> int:
        """Listings folded into the pane."""
        return self.sketches.events

    @property
    def key(self) -> bytes:
        """The record key: pane start and model version."""
        return f"{unix_rfc3339(self.start)}/{self.model_version}".encode()

    def merge(self, other: Pane) -> None:
        """Fold another partial of the same pane and model version into this one."""
        if (other.start, other.seconds, other.model_version) != (
            self.start,
            self.seconds,
            self.model_version,
        ):
            raise ValueError(f"cannot merge pane {other.key!r} into {self.key!r}")
        self.sketches.merge(other.sketches)


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
    out_of_range: dict[str, Annotated[int, Field(ge=0)]] | None = None
    categories: dict[str, dict[str, Annotated[int, Field(ge=0)]]]


def encode_pane(pane: Pane) -> bytes:
    """The record value of a pane partial (see the module docstring for the layout)."""
    sketches = pane.sketches
    return orjson.dumps(
        {
            "format": FORMAT,
            "pane_start": unix_rfc3339(pane.start),
            "pane_seconds": pane.seconds,
            "model_version": pane.model_version,
            "sketch": state_key_for(pane.k),
            "events": sketches.events,
            "prediction": _b64(sketches.prediction),
            "features": {name: _b64(sketches.features[name]) for name in NUMERIC_FEATURES},
            "missing": sketches.missing,
            "out_of_range": sketches.out_of_range,
            "categories": {name: dict(sketches.categories[name]) for name in CATEGORICAL_FEATURES},
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
    if record.format not in (FORMAT, _FORMAT_V1):
        raise PaneFormatError(f"pane format {record.format!r}, this code reads {FORMAT!r}")
    if (record.out_of_range is None) != (record.format == _FORMAT_V1):
        raise PaneFormatError(f"a {record.format} record must carry out_of_range only from /2")
    if record.sketch != state_key_for(k):
        raise PaneFormatError(f"pane sketches are {record.sketch!r}, expected {state_key_for(k)!r}")
    if set(record.features) != set(NUMERIC_FEATURES) or set(record.missing) != set(FEATURES):
        raise PaneFormatError("pane record does not carry every feature of this model")
    sketches = SketchBundle(k)
    sketches.events = record.events
    sketches.prediction = _sketch(record.prediction, k)
    sketches.features = {name: _sketch(record.features[name], k) for name in NUMERIC_FEATURES}
    sketches.missing = dict(record.missing)
    if record.out_of_range is not None:
        if set(record.out_of_range) != set(NUMERIC_FEATURES):
            raise PaneFormatError("pane record does not count out_of_range for every feature")
        sketches.out_of_range = dict(record.out_of_range)
    for name in CATEGORICAL_FEATURES:
        sketches.categories[name] = Counter(record.categories.get(name, {}))
    return Pane(record.pane_start.timestamp(), record.pane_seconds, record.model_version, sketches)


def _b64(sketch: QuantileSketch) -> str:
    return base64.b64encode(sketch.to_bytes()).decode("ascii")


def _sketch(text: str, k: int) -> QuantileSketch:
    try:
        data = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise PaneFormatError(f"sketch is not base64: {exc}") from exc
    return QuantileSketch.from_bytes(data, k)
