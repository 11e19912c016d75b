"""Times on the wire: one text for one moment, whoever writes it; user-given times parsed or
refused with the forms that work."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from stream.contract.events import SaleEvent
from stream.contract.times import (
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
    with pytest.raises(ValueError, match="no time zone"):
        parse_rfc3339("2008-05-01T12:00:00")


def test_a_compact_stamp_names_a_directory() -> None:
    assert compact_stamp(datetime(2026, 11, 22, 13, 32, 43, tzinfo=UTC)) == "20261122T133243Z"


def test_parse_time_accepts_rfc3339_now_and_relative() -> None:
    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    assert parse_time("2026-11-22T10:00:00Z", now=now) == int(now.timestamp() * 1000) - 7_200_000
    assert parse_time("-2h", now=now) == int(now.timestamp() * 1000) - 7_200_000
    assert parse_time("-90s", now=now) == int(now.timestamp() * 1000) - 90_000
    assert parse_time("now", now=now) == int(now.timestamp() * 1000)
    for bad in ("yesterday", "2026-11-22T10:00:00", "-2w"):
        with pytest.raises(DataError, match="is not a time"):
            parse_time(bad, now=now)
