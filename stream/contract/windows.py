"""The window records on ``prediction-windows``: one per closed window, written by the stream app
and read by anyone (``appraise report``, a history sink, a notebook) through one typed reader.

Two kinds share the window's identity (``window`` kind such as ``1m``, ``start`` and ``end`` in
RFC 3339 UTC, ``model_version``) and the format ``appraise.window/1``:

``drift``
    events and panes counted, the prediction quantiles against the reference's, and, when the
    window had at least ``min_events`` events: per feature and for the predictions PSI and KS
    with their critical values at the window's size, the drift score (PSI over the larger of the
    material threshold and its critical value; above 1 is drift) and the decision, missing,
    unseen and out-of-training-range rates; the drifting features, their share and the likely
    causes (drifting features by score x importance); the false-alarm level per test; the bin
    shares each PSI compared.
``realised_error``
    sales joined to their predictions by sale time: how many, MAE (US dollars), MAPE (fraction),
    and the drift of the sale prices against the training prices (target drift).

Key: ``<kind>/<window>/<start>/<model version>``. A statistic that does not apply (KS of a
categorical feature) or could not be computed is ``null``. Readers ignore fields they do not
know, so a writer may add fields without a new format.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal, get_args

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from stream.contract.times import rfc3339

#: Format of every record on ``prediction-windows``.
RECORD_FORMAT: Final = "appraise.window/1"
#: Prediction quantiles a drift record reports (p10, p50, p90, p99), keyed as ``"0.1"`` etc.
QUANTILES: Final = (0.1, 0.5, 0.9, 0.99)

Kind = Literal["drift", "realised_error"]


def quantile_key(q: float) -> str:
    """How a quantile is keyed in a record and labelled on a gauge: ``0.5`` -> ``"0.5"``."""
    return f"{q:g}"


def record_key(kind: Kind, window: str, start: datetime, model_version: str) -> bytes:
    """The record key: ``<kind>/<window>/<start>/<model version>``."""
    return f"{kind}/{window}/{rfc3339(start)}/{model_version}".encode()


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class PredictionStats(_Part):
    """Drift statistics of one quantity in one window: the predictions, the sale prices, or
    (as :class:`FeatureStats`) a feature."""

    psi: float | None
    ks: float | None = Field(description="null for a categorical feature")
    psi_critical: float | None = Field(
        default=None, description="PSI sampling noise reaches at the window's level and size"
    )
    ks_critical: float | None = Field(default=None, description="the same for KS")
    noise: float | None = Field(
        default=None,
        description="how far beyond sampling noise: Pearson's chi-square statistic of the same "
        "bins over its quantile at the level (about psi / psi_critical); above 1 is beyond noise",
    )
    score: float | None = Field(
        default=None,
        description="min(psi / psi_threshold, noise), PSI over the larger of its two "
        "thresholds: above 1 is drift",
    )
    drifting: bool = Field(default=False, description="score above 1")


class FeatureStats(PredictionStats):
    """One feature's statistics in one window."""

    missing_rate: float | None
    unseen_rate: float | None = Field(description="null for a numeric feature")
    out_of_range_rate: float | None = Field(
        default=None,
        description="share of the events outside the model's training range (numeric features; "
        "null for a categorical one, whose unseen_rate says the same)",
    )


class Cause(_Part):
    """A drifting feature named as a likely cause of the window's drift."""

    feature: str
    score: float
    importance: float = Field(description="the model's permutation importance of the feature")


class Distribution(_Part):
    """The reference's and the window's shares over the bins PSI compared (for plots).

    Numeric: ``edges`` are the reference's bin edges, bins ``(-inf, e0), [e0, e1), ...,
    [e_last, +inf)``. Categorical: ``categories`` name the bins, most frequent first, with
    ``<unseen>`` for categories the reference never saw and ``<other>`` last for the rest.
    ``current`` is null when the window had no value.
    """

    edges: list[float] | None = None
    categories: list[str] | None = None
    reference: list[float] = Field(description="shares of all rows; the rest were missing")
    current: list[float] | None
    reference_missing: float = Field(default=0.0, description="share of rows with no value")
    current_missing: float | None = None


class Distributions(_Part):
    """The shares behind the prediction's and each feature's PSI."""

    prediction: Distribution
    features: dict[str, Distribution]


class _Window(_Part):
    format: Literal["appraise.window/1"] = RECORD_FORMAT
    kind: Kind
    window: str = Field(min_length=1, description="window kind, e.g. 1m or 5m")
    start: AwareDatetime
    end: AwareDatetime
    model_version: str = Field(min_length=1)

    @property
    def key(self) -> bytes:
        """The record key on ``prediction-windows``."""
        return record_key(self.kind, self.window, self.start, self.model_version)

    def to_bytes(self) -> bytes:
        """The record value: compact JSON, times as RFC 3339 UTC with ``Z``."""
        return orjson.dumps(self.model_dump(mode="json"))


class DriftRecord(_Window):
    """A closed window's counts, quantiles and drift. Every drift field is null when the window
    had fewer than ``min_events`` events."""

    kind: Literal["drift"] = "drift"
    reference_model_version: str
    events: int = Field(ge=0)
    panes: int = Field(ge=0)
    min_events: int = Field(ge=0)
    quantiles: dict[str, float] | None = Field(description="US dollars, keyed '0.1' ... '0.99'")
    reference_quantiles: dict[str, float]
    prediction: PredictionStats | None
    features: dict[str, FeatureStats] | None
    drifting_features: list[str] | None
    drifting_share: float | None = Field(description="share of the features drifting, 0..1")
    likely_causes: list[Cause] | None = Field(
        default=None, description="drifting features by score x importance, at most three"
    )
    psi_threshold: float | None = Field(default=None, description="the material PSI")
    false_alarm_level: float | None = Field(
        default=None, description="the false-alarm level of each test in this window"
    )
    distributions: Distributions | None

    @property
    def has_drift(self) -> bool:
        """Whether the window had enough events for drift values."""
        return self.features is not None


class ErrorRecord(_Window):
    """Realised error of the sales of a closed window of sale time."""

    kind: Literal["realised_error"] = "realised_error"
    sales: int = Field(ge=0)
    mae_dollars: float | None = Field(description="mean absolute error, US dollars")
    mape: float | None = Field(description="mean absolute percentage error, a fraction")
    target: PredictionStats | None = Field(
        default=None,
        description="drift of the sale prices against the training prices (null under "
        "min_events sales)",
    )


WindowRecord = Annotated[DriftRecord | ErrorRecord, Field(discriminator="kind")]
_READER: Final[TypeAdapter[DriftRecord | ErrorRecord]] = TypeAdapter(WindowRecord)


#: Why a value on ``prediction-windows`` is not a window record (a reader skips and counts it).
SkipReason = Literal["empty", "invalid_json", "not_an_object", "other_format", "invalid_record"]
SKIP_REASONS: Final[tuple[SkipReason, ...]] = get_args(SkipReason)


class NotAWindowRecord(ValueError):
    """A value that is not a window record of this format, and why (:data:`SkipReason`)."""

    def __init__(self, reason: SkipReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: SkipReason = reason
        self.detail = detail[:500]


def decode_window_record(value: bytes | None) -> DriftRecord | ErrorRecord:
    """The typed record in ``value``; :class:`NotAWindowRecord` says why it is none."""
    if not value:
        raise NotAWindowRecord("empty", "no value (a tombstone)")
    try:  # pydantic's own JSON parser: a third faster than orjson and validate_python
        return _READER.validate_json(value)
    except ValidationError:
        pass  # say why below
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise NotAWindowRecord("invalid_json", str(exc)) from None
    if not isinstance(data, dict):
        raise NotAWindowRecord("not_an_object", f"a JSON {type(data).__name__}")
    if data.get("format") != RECORD_FORMAT:
        raise NotAWindowRecord(
            "other_format", f"format {data.get('format')!r}, not {RECORD_FORMAT}"
        )
    try:
        return _READER.validate_python(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise NotAWindowRecord("invalid_record", f"{where}: {first['msg']}") from None


def read_window_record(value: bytes | None) -> DriftRecord | ErrorRecord | None:
    """The typed record in ``value``, or None when it is not a window record of this format."""
    try:
        return decode_window_record(value)
    except NotAWindowRecord:
        return None
