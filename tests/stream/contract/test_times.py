"""Times on the wire: one text for one moment, whoever writes it; user-given times parsed or
refused with the forms that work."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from stream.contract.events import SaleEvent
from stream.contract.times import (
    TimeOutOfRange,
    compact_stamp,
    parse_rfc3339,
    parse_time,
    rfc3339,
    unix_rfc3339,
)
from stream.errors import DataError


@pytest.mark.parametrize("micros", [0, 500_000, 123_456])
def test_every_writer_gives_the_same_text(micros: int) -> None:
    moment = datetime(2008, 5, 1, 12, 0, 0, micros, tzinfo=UTC)
    text = rfc3339(moment)
    assert text == ("2008-05-01T12:00:00Z" if not micros else f"2008-05-01T12:00:00.{micros:06d}Z")
    assert unix_rfc3339(moment.timestamp()) == text
    sale = SaleEvent(event_time=moment, listing_id="x", sale_price=1.0)
    assert orjson.loads(sale.to_json())["event_time"] == text  # what the events carry


def test_other_offsets_are_written_in_utc() -> None:
    moment = datetime(2008, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    assert rfc3339(moment) == "2008-05-01T12:00:00Z"
    assert parse_rfc3339("2008-05-01T14:00:00+02:00") == moment
    assert parse_rfc3339("2008-05-01T12:00:00Z") == moment
    assert parse_rfc3339("2008-05-01T14:00:00+02:00").tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2008-05-01T12:00:00Z", datetime(2008, 5, 1, 12, tzinfo=UTC)),
        ("2008-05-01t12:00:00z", datetime(2008, 5, 1, 12, tzinfo=UTC)),
        ("2008-05-01T12:00:00-00:00", datetime(2008, 5, 1, 12, tzinfo=UTC)),
        ("2008-05-01T12:00:00.5Z", datetime(2008, 5, 1, 12, 0, 0, 500_000, tzinfo=UTC)),
        # past the sixth digit of fraction is dropped, never rounded into the next second
        ("2008-05-01T12:00:00.999999999Z", datetime(2008, 5, 1, 12, 0, 0, 999_999, tzinfo=UTC)),
        ("2008-05-01T00:30:00+23:59", datetime(2008, 4, 30, 0, 31, tzinfo=UTC)),
        ("2008-12-31T23:30:00-01:00", datetime(2009, 1, 1, 0, 30, tzinfo=UTC)),
        ("2008-02-29T00:00:00Z", datetime(2008, 2, 29, tzinfo=UTC)),
        ("2000-02-29T00:00:00Z", datetime(2000, 2, 29, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC)),
        ("9999-12-31T23:59:59.999999Z", datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)),
    ],
)
def test_rfc3339_date_times_are_parsed(text: str, moment: datetime) -> None:
    parsed = parse_rfc3339(text)
    assert parsed == moment
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("2008-05-01T12:00:00", "not an RFC 3339 date-time"),  # no zone
        ("2008-05-01T12:00:00+0000", "not an RFC 3339"),  # ISO 8601 basic offset
        ("2008-05-01T12:00:00+00", "not an RFC 3339"),
        ("1209643200", "not an RFC 3339"),  # Unix seconds
        ("2008-05-01", "not an RFC 3339"),
        ("2008-05-01 12:00:00Z", "not an RFC 3339"),  # RFC 3339 allows it only as a note
        ("2008-05-01_12:00:00Z", "not an RFC 3339"),
        ("2008-05-01T12:00Z", "not an RFC 3339"),
        ("20080501T120000Z", "not an RFC 3339"),
        ("2008-W18-4T12:00:00Z", "not an RFC 3339"),
        ("2008-122T12:00:00Z", "not an RFC 3339"),
        ("2008-05-01T12:00:00,5Z", "not an RFC 3339"),
        ("2008-05-01T12:00:00.Z", "not an RFC 3339"),
        ("2008-05-01T12:00:00.1234567890Z", "not an RFC 3339"),  # 10 digits of fraction
        ("2008-05-01T12:00:00Z\n", "not an RFC 3339"),
        (" 2008-05-01T12:00:00Z", "not an RFC 3339"),
        ("+2008-05-01T12:00:00Z", "not an RFC 3339"),
        ("\uff12\uff10\uff10\uff18-05-01T12:00:00Z", "not an RFC 3339"),  # fullwidth digits
        ("2008-02-30T12:00:00Z", "no such date or time"),
        ("1900-02-29T12:00:00Z", "no such date or time"),
        ("2008-13-01T12:00:00Z", "no such date or time"),
        ("2008-05-01T24:00:00Z", "no such date or time"),
        ("2008-05-01T12:60:00Z", "no such date or time"),
        ("2008-12-31T23:59:60Z", "no leap second"),
        ("2008-05-01T12:00:00+24:00", "no such offset"),
        ("2008-05-01T12:00:00+01:60", "no such offset"),
    ],
)
def test_anything_else_is_refused_with_the_expected_form(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says) as caught:
        parse_rfc3339(text)
    assert not isinstance(caught.value, TimeOutOfRange)
    assert "YYYY-MM-DDTHH:MM:SS" in str(caught.value)


@pytest.mark.parametrize(
    "text", ["0000-01-01T00:00:00Z", "9999-12-31T23:30:00-01:00", "0001-01-01T00:30:00+01:00"]
)
def test_a_moment_outside_years_1_to_9999_is_out_of_range(text: str) -> None:
    with pytest.raises(TimeOutOfRange):
        parse_rfc3339(text)


def test_a_compact_stamp_names_a_directory() -> None:
    assert compact_stamp(datetime(2026, 11, 22, 13, 32, 43, tzinfo=UTC)) == "20261122T133243Z"


def test_parse_time_accepts_rfc3339_now_and_relative() -> None:
    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    assert parse_time("2026-11-22T10:00:00Z", now=now) == int(now.timestamp() * 1000) - 7_200_000
    assert parse_time("-2h", now=now) == int(now.timestamp() * 1000) - 7_200_000
    assert parse_time("-90s", now=now) == int(now.timestamp() * 1000) - 90_000
    assert parse_time("now", now=now) == int(now.timestamp() * 1000)
    for bad in ("yesterday", "2026-11-22T10:00:00", "-2w", "2026-11-22", "1795000000"):
        with pytest.raises(DataError, match="is not a time"):
            parse_time(bad, now=now)
