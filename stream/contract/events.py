"""The events: what travels on the topics, as pydantic v2 models encoded with orjson.

Every event carries ``event_time``: an RFC 3339 date-time and nothing else (see
:func:`stream.contract.times.parse_rfc3339`; any offset, normalised to UTC).
Feature values may be ``null`` (a missing value the model and the monitor handle), but every
field must be present: an absent field is a contract error, not a missing value. Decoding
(:mod:`stream.contract.decoding`) turns raw bytes into an event or a reason code.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Final

import annotated_types
import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from stream.contract.times import (
    RFC3339_FORM,
    RFC3339_LENGTHS,
    RFC3339_PATTERN,
    TimeOutOfRange,
    parse_rfc3339,
)

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
#: The listing's years that the rule above bounds.
FUTURE_YEAR_FIELDS: Final = ("year_built", "year_remodelled")


def _parse_time(value: object) -> object:
    """Text must be an RFC 3339 date-time exactly; a datetime (built in Python) passes on."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise PydanticCustomError("datetime_type", f"expected a JSON string: {RFC3339_FORM}")
    try:
        return parse_rfc3339(value)
    except TimeOutOfRange as exc:
        raise PydanticCustomError("out_of_range", str(exc)) from None
    except ValueError as exc:
        raise PydanticCustomError("rfc3339", str(exc)) from None


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        message = "in UTC the moment is outside the years 0001 to 9999"
        raise PydanticCustomError("out_of_range", message) from None


#: A moment: RFC 3339 text on the wire (parse_rfc3339 says what is accepted), UTC inside.
Time = Annotated[
    AwareDatetime,
    BeforeValidator(_parse_time),
    AfterValidator(_to_utc),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "pattern": RFC3339_PATTERN,
            "minLength": RFC3339_LENGTHS[0],
            "maxLength": RFC3339_LENGTHS[1],
        }
    ),
]


class Event(BaseModel):
    """What every event has: ``event_time``, strict types, JSON bytes out."""

    # strict: "1500" is not a number and 2.0 is not a count; a producer in any language can
    # meet that, and lax coercion would hide its bugs.
    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)

    event_time: Time = Field(description="when the event happened; stored as UTC")

    def to_json(self) -> bytes:
        """The event as compact JSON bytes (times as RFC 3339 with ``Z``)."""
        return orjson.dumps(self.model_dump(), option=orjson.OPT_UTC_Z)


class ListingEvent(Event):
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
        for name in FUTURE_YEAR_FIELDS:
            year = getattr(self, name)
            if year is not None and year > latest:
                raise PydanticCustomError(
                    "out_of_range",
                    "{field} {year} is in the future: the event is from {event_year}",
                    {"field": name, "year": year, "event_year": self.event_time.year},
                )
        return self


class PredictionEvent(Event):
    """The model's price for one listing. Key: ``listing_id``; ``event_time`` is the listing's."""

    listing_id: ListingId
    predicted_price: Price
    model_version: str = Field(min_length=1, max_length=64)
    scored_at: Time = Field(description="when the scorer priced it; stored as UTC")
    source_topic: str
    source_partition: int = Field(ge=0)
    source_offset: int = Field(ge=0)
    out_of_range: tuple[str, ...] = Field(
        default=(),
        description="the listing's features outside what the model was trained on: a number "
        "outside the training range, a category training never saw (distrust this price)",
    )


class SaleEvent(Event):
    """The realised sale price of a listing, known later. Key: ``listing_id``."""

    listing_id: ListingId
    sale_price: Price


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

EVENT_TYPES: Final[dict[str, type[Event]]] = {
    "listing": ListingEvent,
    "prediction": PredictionEvent,
    "sale": SaleEvent,
}
