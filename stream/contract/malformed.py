"""Every kind of malformed listing the contract knows, made from a valid one.

One catalogue serves the contract tests, the scorer's dead-letter tests and the producer's
"inject malformed records" scenario, so all three agree on what bad input is and which reason
code it earns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from stream.contract.reasons import Reason

Listing = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Malformation:
    """One way to break a valid listing: ``make`` turns its dict into the bad record value."""

    name: str
    reason: Reason
    make: Callable[[Listing], bytes | None]
    #: A piece of text the InvalidEvent detail names (the field or the cause).
    says: str


def _with(**changes: Any) -> Callable[[Listing], bytes]:
    return lambda event: orjson.dumps({**event, **changes})


def _without(field: str) -> Callable[[Listing], bytes]:
    return lambda event: orjson.dumps({k: v for k, v in event.items() if k != field})


def _raw_value(field: str, literal: bytes) -> Callable[[Listing], bytes]:
    """Put a token JSON encoders refuse to write (NaN, 1e999) as the field's value."""

    def make(event: Listing) -> bytes:
        marker = "__appraise_raw__"
        return orjson.dumps({**event, field: marker}).replace(f'"{marker}"'.encode(), literal)

    return make


def _not_utf8(event: Listing) -> bytes:
    marker = "__appraise_raw__"
    return orjson.dumps({**event, "neighbourhood": marker}).replace(marker.encode(), b"\xff\xfe")


def _truncated(event: Listing) -> bytes:
    raw = orjson.dumps(event)
    return raw[: len(raw) // 2]


#: Just over the default max_event_bytes (1,000,000) yet under Apache Kafka's default
#: message.max.bytes (1,048,588) and aiokafka's max_request_size (1,048,576), so the record can
#: be published to a stock cluster and reach the scorer, which must refuse it.
OVERSIZED_BYTES: Final = 1_000_600


def _oversized(event: Listing) -> bytes:
    padding = OVERSIZED_BYTES - len(orjson.dumps({**event, "neighbourhood": ""}))
    return orjson.dumps({**event, "neighbourhood": "x" * padding})


MALFORMATIONS: Final[tuple[Malformation, ...]] = (
    Malformation("string_for_number", "wrong_type", _with(living_area_sqft="big"), "living_area"),
    Malformation("numeric_string", "wrong_type", _with(bedrooms="3"), "bedrooms"),
    Malformation("fraction_for_count", "wrong_type", _with(garage_cars=1.5), "garage_cars"),
    Malformation("number_for_category", "wrong_type", _with(neighbourhood=7), "neighbourhood"),
    Malformation("missing_field", "missing_field", _without("year_built"), "year_built"),
    Malformation("missing_event_time", "missing_field", _without("event_time"), "event_time"),
    Malformation("nan", "not_finite", _raw_value("living_area_sqft", b"NaN"), "living_area"),
    Malformation("infinity", "not_finite", _raw_value("lot_area_sqft", b"1e999"), "lot_area"),
    Malformation("negative_area", "out_of_range", _with(basement_area_sqft=-10), "basement"),
    Malformation("zero_living_area", "out_of_range", _with(living_area_sqft=0), "living_area"),
    Malformation("latitude_past_pole", "out_of_range", _with(latitude=91.0), "latitude"),
    Malformation("built_in_future", "out_of_range", _with(year_built=2999), "in the future"),
    Malformation("remodelled_in_future", "out_of_range", _with(year_remodelled=2999), "remodel"),
    Malformation("unknown_field", "unknown_field", _with(pool="yes"), "pool"),
    Malformation("not_utf8", "not_utf8", _not_utf8, "byte"),
    Malformation("invalid_json", "invalid_json", _truncated, "EOF"),
    Malformation("not_an_object", "not_an_object", lambda _: b"[1, 2, 3]", "object"),
    Malformation("too_large", "too_large", _oversized, "more than the limit"),
    Malformation("empty", "empty", lambda _: b"", "no value"),
    Malformation("tombstone", "empty", lambda _: None, "no value"),
    Malformation("naive_time", "invalid_value", _with(event_time="2008-05-01T12:00"), "event_time"),
    Malformation("unix_time", "invalid_value", _with(event_time="1209643200"), "RFC 3339"),
    Malformation(
        "offset_without_colon",
        "invalid_value",
        _with(event_time="2008-05-01T12:00:00+0000"),
        "event_time: not an RFC 3339 date-time",
    ),
    Malformation("empty_id", "invalid_value", _with(listing_id=""), "listing_id"),
)

MALFORMATIONS_BY_NAME: Final[dict[str, Malformation]] = {m.name: m for m in MALFORMATIONS}
