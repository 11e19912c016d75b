"""The event contract: what travels on the topics, as pydantic v2 models encoded with orjson.

Every event carries ``event_time`` (RFC 3339; any offset is accepted and normalised to UTC).
Feature values may be ``null`` (a missing value the model and the monitor handle), but every
field must be present: an absent field is a contract error, not a missing value.

``decode_listing`` turns raw record bytes into a ``ListingEvent`` or raises ``InvalidEvent``
with a reason code from the small fixed set ``REASONS``; the scorer puts that code and the
detail on the dead letter, and counts dead letters by it.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal, TypeVar, get_args

import annotated_types
import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from stream.errors import AppraiseError

# --- dead letters ------------------------------------------------------------------------------

Reason = Literal[
    "too_large",  # the value is larger than max_event_bytes
    "empty",  # the record has no value (a tombstone)
    "not_utf8",  # the bytes are not UTF-8 text
    "invalid_json",  # UTF-8, but not JSON
    "not_an_object",  # JSON, but not an object
    "missing_field",  # a required field is absent
    "unknown_field",  # a field the contract does not have
    "wrong_type",  # e.g. a string where a number belongs
    "not_finite",  # NaN or infinity
    "out_of_range",  # a negative area, a year in the future, a latitude past 90...
    "invalid_value",  # any other rule (empty id, timestamp without a time zone, ...)
    "model_error",  # valid, but the model failed on this row
]
#: Every reason code, so metrics can create their series at start-up.
REASONS: Final[tuple[Reason, ...]] = get_args(Reason)

#: Header names of a dead letter. The value and key are the original bytes, untouched.
DLQ_REASON: Final = "appraise.dlq.reason"
DLQ_DETAIL: Final = "appraise.dlq.detail"
DLQ_SOURCE_TOPIC: Final = "appraise.dlq.source.topic"
DLQ_SOURCE_PARTITION: Final = "appraise.dlq.source.partition"
DLQ_SOURCE_OFFSET: Final = "appraise.dlq.source.offset"
DLQ_TIME: Final = "appraise.dlq.time"
DLQ_HEADERS: Final = (
    DLQ_REASON,
    DLQ_DETAIL,
    DLQ_SOURCE_TOPIC,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_OFFSET,
    DLQ_TIME,
)

#: A dead letter's detail is cut to this many characters (a header, not a log file).
MAX_DETAIL_CHARS: Final = 500


class InvalidEvent(AppraiseError):
    """Input that breaks the contract. Never retriable: it goes to the dead-letter topic."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: Reason = reason
        self.detail: str = detail[:MAX_DETAIL_CHARS]


# --- value types -------------------------------------------------------------------------------

Area = Annotated[float | None, Field(ge=0, le=1e8, description="square feet")]
PositiveArea = Annotated[float | None, Field(gt=0, le=1e8, description="square feet")]
Count = Annotated[int | None, Field(ge=0, le=100)]
Year = Annotated[int | None, Field(ge=1800, description="calendar year")]
Category = Annotated[str | None, Field(min_length=1, max_length=64)]
ListingId = Annotated[str, Field(min_length=1, max_length=128)]
#: The highest price the contract accepts, in US dollars.
MAX_PRICE: Final = 1e10
Price = Annotated[float, Field(gt=0, le=MAX_PRICE, description="US dollars")]

#: A year may be up to this far past the event's own year (homes sold before completion).
_YEARS_AHEAD: Final = 2


class _Event(BaseModel):
    # strict: "1500" is not a number and 2.0 is not a count; a producer in any language can
    # meet that, and lax coercion would hide its bugs.
    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)

    event_time: AwareDatetime = Field(description="RFC 3339 time of the event; stored as UTC")

    @field_validator("event_time", mode="after")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    def to_json(self) -> bytes:
        """The event as compact JSON bytes (times as RFC 3339 with ``Z``)."""
        return orjson.dumps(self.model_dump(), option=orjson.OPT_UTC_Z)


class ListingEvent(_Event):
    """A property listing to be priced. Key on the topic: ``listing_id``."""

    listing_id: ListingId
    living_area_sqft: PositiveArea
    lot_area_sqft: PositiveArea
    basement_area_sqft: Area
    year_built: Year
    year_remodelled: Year
    garage_cars: Count
    garage_area_sqft: Area
    full_baths: Count
    half_baths: Count
    bedrooms: Count
    rooms: Count = Field(description="rooms above grade, bathrooms excluded")
    fireplaces: Count
    latitude: Annotated[float | None, Field(ge=-90, le=90, description="degrees")]
    longitude: Annotated[float | None, Field(ge=-180, le=180, description="degrees")]
    neighbourhood: Category
    building_type: Category
    house_style: Category
    overall_condition: Category
    zoning: Category
    central_air: Category = Field(description='"Y" or "N" in the bundled data')

    @model_validator(mode="after")
    def _years_not_in_future(self) -> ListingEvent:
        latest = self.event_time.year + _YEARS_AHEAD
        for name in ("year_built", "year_remodelled"):
            year = getattr(self, name)
            if year is not None and year > latest:
                raise PydanticCustomError(
                    "out_of_range",
                    "{field} {year} is in the future: the event is from {event_year}",
                    {"field": name, "year": year, "event_year": self.event_time.year},
                )
        return self


class PredictionEvent(_Event):
    """The model's price for one listing. Key: ``listing_id``; ``event_time`` is the listing's."""

    listing_id: ListingId
    predicted_price: Price
    model_version: str = Field(min_length=1, max_length=64)
    scored_at: AwareDatetime = Field(description="when the scorer priced it (UTC)")
    source_topic: str
    source_partition: int = Field(ge=0)
    source_offset: int = Field(ge=0)


class SaleEvent(_Event):
    """The realised sale price of a listing, known later. Key: ``listing_id``."""

    listing_id: ListingId
    sale_price: Price


E = TypeVar("E", bound=_Event)


def _numeric_rules() -> tuple[frozenset[str], dict[str, tuple[float, float, bool]]]:
    """Read the integer fields and the numeric bounds off ListingEvent, so code that checks the
    contract column by column (the scorer's fast path) cannot drift from it."""
    integers: set[str] = set()
    bounds: dict[str, tuple[float, float, bool]] = {}
    for name, field in ListingEvent.model_fields.items():
        if field.annotation in (int, int | None):
            integers.add(name)
        elif field.annotation not in (float, float | None):
            continue
        low, high, exclusive = -math.inf, math.inf, False
        for rule in field.metadata:
            if isinstance(rule, annotated_types.Gt):
                low, exclusive = float(rule.gt), True  # type: ignore[arg-type]
            elif isinstance(rule, annotated_types.Ge):
                low = float(rule.ge)  # type: ignore[arg-type]
            elif isinstance(rule, annotated_types.Le):
                high = float(rule.le)  # type: ignore[arg-type]
            elif isinstance(rule, annotated_types.Lt):
                raise TypeError(f"{name}: an exclusive upper bound is not supported here")
        bounds[name] = (low, high, exclusive)
    return frozenset(integers), bounds


#: ListingEvent's integer fields (counts, years: strict, so 2.0 is refused).
#: NUMERIC_BOUNDS: (low, high, low is exclusive) of every numeric field, from its Field rules;
#: the years' upper bound is the event's own year + YEARS_AHEAD (a model validator).
INTEGER_FIELDS, NUMERIC_BOUNDS = _numeric_rules()
YEARS_AHEAD: Final = _YEARS_AHEAD

EVENT_TYPES: Final[dict[str, type[_Event]]] = {
    "listing": ListingEvent,
    "prediction": PredictionEvent,
    "sale": SaleEvent,
}


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of an event kind (``listing``, ``prediction`` or ``sale``)."""
    model = EVENT_TYPES[kind]
    schema = model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


# --- decoding ----------------------------------------------------------------------------------

_REASON_BY_ERROR_TYPE: Final[dict[str, Reason]] = {
    "missing": "missing_field",
    "extra_forbidden": "unknown_field",
    "finite_number": "not_finite",
    "model_type": "not_an_object",
    "model_attributes_type": "not_an_object",
    "greater_than": "out_of_range",
    "greater_than_equal": "out_of_range",
    "less_than": "out_of_range",
    "less_than_equal": "out_of_range",
    "out_of_range": "out_of_range",
}


def decode_listing(raw: bytes | None, *, max_bytes: int) -> ListingEvent:
    """Decode and validate one record value, or raise ``InvalidEvent``."""
    return decode(ListingEvent, raw, max_bytes=max_bytes)


def decode(model: type[E], raw: bytes | None, *, max_bytes: int) -> E:
    """Decode and validate one record value as ``model``, or raise ``InvalidEvent``."""
    if raw is None or raw == b"":
        raise InvalidEvent("empty", "the record has no value")
    if len(raw) > max_bytes:
        raise InvalidEvent("too_large", f"{len(raw)} bytes, more than the limit {max_bytes}")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise _invalid(exc, raw) from None


def _invalid(exc: ValidationError, raw: bytes) -> InvalidEvent:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    kind = first["type"]
    if kind == "json_invalid":
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            return InvalidEvent("not_utf8", f"byte {bad.start}: {bad.reason}")
        return InvalidEvent("invalid_json", first["msg"].removeprefix("Invalid JSON: "))
    reason = _REASON_BY_ERROR_TYPE.get(kind)
    if reason is None:
        reason = "wrong_type" if kind.endswith("_type") else "invalid_value"
    detail = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '<event>'}: {err['msg']}" for err in errors
    )
    return InvalidEvent(reason, detail)


def unix_rfc3339(seconds: float) -> str:
    """Unix seconds as RFC 3339 UTC with ``Z`` (e.g. pane, window and replay boundaries)."""
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
