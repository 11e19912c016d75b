"""The event contract: every kind of bad input yields a typed error with its reason code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from stream.contract.decoding import decode, decode_listing
from stream.contract.events import Event, ListingEvent, PredictionEvent, SaleEvent
from stream.contract.features import FEATURES
from stream.contract.malformed import MALFORMATIONS, MALFORMATIONS_BY_NAME, Malformation
from stream.contract.reasons import REASONS, InvalidEvent
from stream.contract.schema import json_schema

MAX_BYTES = 1_000_000


def listing(**changes: Any) -> dict[str, Any]:
    """A valid listing as a JSON-ready dict, with ``changes`` applied."""
    event: dict[str, Any] = {
        "listing_id": "ames-0001",
        "event_time": "2008-05-01T12:00:00Z",
        "living_area_sqft": 1656,
        "lot_area_sqft": 31770,
        "basement_area_sqft": 1080,
        "year_built": 1960,
        "year_remodelled": 1960,
        "garage_cars": 2,
        "garage_area_sqft": 528,
        "full_baths": 1,
        "half_baths": 0,
        "bedrooms": 3,
        "rooms": 7,
        "fireplaces": 2,
        "latitude": 42.054035,
        "longitude": -93.619754,
        "neighbourhood": "North_Ames",
        "building_type": "OneFam",
        "house_style": "One_Story",
        "overall_condition": "Average",
        "zoning": "Residential_Low_Density",
        "central_air": "Y",
    }
    event.update(changes)
    return event


def without(field: str) -> dict[str, Any]:
    event = listing()
    del event[field]
    return event


def encode(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)


def test_a_valid_listing_round_trips() -> None:
    raw = encode(listing(event_time="2008-05-01T14:00:00+02:00"))
    event = decode_listing(raw, max_bytes=MAX_BYTES)
    assert event.event_time == datetime(2008, 5, 1, 12, tzinfo=UTC)
    again = decode_listing(event.to_json(), max_bytes=MAX_BYTES)
    assert again == event
    assert b'"event_time":"2008-05-01T12:00:00Z"' in event.to_json()


def test_the_contract_carries_every_model_feature() -> None:
    assert set(FEATURES) <= set(ListingEvent.model_fields)


def test_null_feature_values_are_missing_values_not_errors() -> None:
    event = decode_listing(
        encode(listing(living_area_sqft=None, neighbourhood=None)), max_bytes=MAX_BYTES
    )
    assert event.living_area_sqft is None
    assert event.neighbourhood is None


def test_an_unseen_category_is_valid() -> None:
    event = decode_listing(encode(listing(neighbourhood="Atlantis")), max_bytes=MAX_BYTES)
    assert event.neighbourhood == "Atlantis"


@pytest.mark.parametrize("bad", MALFORMATIONS, ids=lambda m: m.name)
def test_bad_input_is_refused_with_its_reason(bad: Malformation) -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode_listing(bad.make(listing()), max_bytes=MAX_BYTES)
    assert caught.value.reason == bad.reason
    assert bad.says in caught.value.detail
    assert caught.value.retriable is False


def test_every_reason_but_model_error_has_a_malformation() -> None:
    # model_error and future_event_time are the scorer's verdicts on valid listings.
    assert {bad.reason for bad in MALFORMATIONS} == set(REASONS) - {
        "model_error",
        "future_event_time",
    }


def test_the_oversized_malformation_fits_a_stock_kafka_record() -> None:
    bad = MALFORMATIONS_BY_NAME["too_large"].make(listing())
    assert bad is not None
    assert MAX_BYTES < len(bad) < 1_048_576


def test_a_2_mb_value_is_too_large_before_it_is_parsed() -> None:
    raw = b'{"listing_id": "' + b"x" * 2_000_000 + b'"}'
    with pytest.raises(InvalidEvent) as caught:
        decode_listing(raw, max_bytes=MAX_BYTES)
    assert caught.value.reason == "too_large"
    assert caught.value.detail == f"{len(raw)} bytes, more than the limit {MAX_BYTES}"


def test_detail_is_bounded() -> None:
    many_unknown = listing(**{f"extra_{i}": i for i in range(500)})
    with pytest.raises(InvalidEvent) as caught:
        decode_listing(encode(many_unknown), max_bytes=MAX_BYTES)
    assert caught.value.reason == "unknown_field"
    assert len(caught.value.detail) <= 500


def test_prediction_and_sale_events_validate() -> None:
    prediction = PredictionEvent(
        listing_id="a",
        event_time=datetime(2008, 1, 1, tzinfo=UTC),
        predicted_price=215_000.0,
        model_version="abc123",
        scored_at=datetime(2026, 1, 1, tzinfo=UTC),
        source_topic="listings",
        source_partition=0,
        source_offset=42,
    )
    assert decode(PredictionEvent, prediction.to_json(), max_bytes=MAX_BYTES) == prediction
    sale = {"listing_id": "a", "event_time": "2008-02-01T00:00:00Z", "sale_price": -1}
    with pytest.raises(InvalidEvent) as caught:
        decode(SaleEvent, encode(sale), max_bytes=MAX_BYTES)
    assert caught.value.reason == "out_of_range"
    assert (
        decode(SaleEvent, encode({**sale, "sale_price": 185_000}), max_bytes=MAX_BYTES).sale_price
        == 185_000
    )


PREDICTION: dict[str, Any] = {
    "listing_id": "a",
    "event_time": "2008-01-01T00:00:00Z",
    "predicted_price": 215_000.0,
    "model_version": "abc123",
    "scored_at": "2026-01-01T00:00:00Z",
    "source_topic": "listings",
    "source_partition": 0,
    "source_offset": 42,
}
SALE: dict[str, Any] = {"listing_id": "a", "event_time": "2008-02-01T00:00:00Z", "sale_price": 1}
TIME_FIELDS = [
    pytest.param(ListingEvent, listing(), "event_time", id="listing"),
    pytest.param(PredictionEvent, PREDICTION, "event_time", id="prediction"),
    pytest.param(PredictionEvent, PREDICTION, "scored_at", id="scored_at"),
    pytest.param(SaleEvent, SALE, "event_time", id="sale"),
]


@pytest.mark.parametrize(("model", "valid", "field"), TIME_FIELDS)
@pytest.mark.parametrize(
    "text",
    [
        "1209643200",
        "2008-05-01T12:00:00+0000",
        "2008-05-01",
        "2008-05-01 12:00:00Z",
        "2008-W18-4T12:00:00Z",
        "2008-05-01T12:00:00.1234567890Z",
        "2008-02-30T12:00:00Z",
    ],
)
def test_a_time_that_is_not_rfc_3339_is_an_invalid_value(
    model: type[Event], valid: dict[str, Any], field: str, text: str
) -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode(model, encode({**valid, field: text}), max_bytes=MAX_BYTES)
    assert caught.value.reason == "invalid_value"
    assert caught.value.detail.startswith(f"{field}: ")
    assert "YYYY-MM-DDTHH:MM:SS" in caught.value.detail


@pytest.mark.parametrize(("model", "valid", "field"), TIME_FIELDS)
def test_times_of_every_event_are_rfc_3339_in_utc(
    model: type[Event], valid: dict[str, Any], field: str
) -> None:
    text = "2008-05-01t14:00:00.123456789+02:00"
    event = decode(model, encode({**valid, field: text}), max_bytes=MAX_BYTES)
    assert getattr(event, field) == datetime(2008, 5, 1, 12, 0, 0, 123_456, tzinfo=UTC)
    assert getattr(event, field).tzinfo is UTC
    assert f'"{field}":"2008-05-01T12:00:00.123456Z"'.encode() in event.to_json()
    for wrong, reason in (
        (1209643200, "wrong_type"),
        ("9999-12-31T23:30:00-01:00", "out_of_range"),
    ):
        with pytest.raises(InvalidEvent) as caught:
            decode(model, encode({**valid, field: wrong}), max_bytes=MAX_BYTES)
        assert caught.value.reason == reason
        assert caught.value.detail.startswith(f"{field}: ")


def test_a_time_built_in_python_is_stored_in_utc() -> None:
    plus_two = datetime(2026, 1, 1, 2, tzinfo=timezone(timedelta(hours=2)))
    prediction = PredictionEvent.model_validate({**PREDICTION, "scored_at": plus_two})
    assert prediction.scored_at.tzinfo is UTC
    assert b'"scored_at":"2026-01-01T00:00:00Z"' in prediction.to_json()


@pytest.mark.parametrize("kind", ["listing", "prediction", "sale"])
def test_json_schema_describes_the_contract(kind: str) -> None:
    schema = json_schema(kind)
    assert schema["additionalProperties"] is False
    assert "event_time" in schema["required"]
    assert schema["properties"]["event_time"]["format"] == "date-time"


def test_listing_schema_accepts_nulls_and_bounds_areas() -> None:
    area = json_schema("listing")["properties"]["living_area_sqft"]
    options = {option.get("type") for option in area["anyOf"]}
    assert options == {"number", "null"}
    bounded = next(option for option in area["anyOf"] if option.get("type") == "number")
    assert bounded["exclusiveMinimum"] == 0
