"""Times on the wire: RFC 3339 in UTC with ``Z``, written one way everywhere.

Events, pane and window records, dead-letter headers, replay bounds and run directories all
format and parse times through these helpers, so every part writes the same text for the same
moment (``2008-05-01T12:00:00Z``; six digits of fraction only when there is one).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Final

import orjson

from stream.errors import DataError

#: How an RFC 3339 date-time is written, for error messages.
RFC3339_FORM: Final = (
    "YYYY-MM-DDTHH:MM:SS, an optional fraction of 1 to 9 digits, then Z, +HH:MM or -HH:MM "
    "(2008-05-01T12:00:00Z, 2008-05-01T14:00:00.5+02:00)"
)
# The layout of RFC 3339 section 5.6, date-time (ASCII digits: re's \d takes any Unicode digit).
# Groups 1 to 6 are the year ... the second; datetime checks their ranges.
_RFC3339: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.(?P<fraction>[0-9]{1,9}))?"
    r"(?:[Zz]|(?P<sign>[+-])(?P<offset_h>[0-9]{2}):(?P<offset_m>[0-9]{2}))"
)

# What parse_rfc3339 takes, as one regular expression for JSON Schema's "pattern" (ECMA-262, and
# Python's re reads it the same): every date that exists in years 0001-9999 (Feb 29 in leap years
# only), hours 00-23, no leap second, offsets up to 23:59. A pattern is not anchored in JSON
# Schema; the "(?!\n)" keeps Python's "$", which also matches before a final newline, as strict as
# ECMA-262's. Only the moment's range in UTC is left out (9999-12-31T23:00:00-02:00 matches).
_YEAR = "(?:000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"
_LEAP_YEAR = "(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
_MONTH_DAY = (
    "(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    "|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    "|02-(?:0[1-9]|1[0-9]|2[0-8]))"
)
_CLOCK = "(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:[.][0-9]{1,9})?"
_ZONE = "(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
RFC3339_PATTERN: Final = f"^(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)[Tt]{_CLOCK}{_ZONE}(?!\\n)$"
#: The lengths of the shortest and the longest text parse_rfc3339 takes.
RFC3339_LENGTHS: Final = (len("2008-05-01T12:00:00Z"), len("2008-05-01T12:00:00.123456789+02:00"))

_RELATIVE: Final = re.compile(r"^-(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S: Final = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}


def rfc3339(moment: datetime) -> str:
    """``moment`` (aware) as RFC 3339 UTC text with ``Z``: what ``PredictionEvent.to_json``
    and every record write."""
    return orjson.dumps(moment.astimezone(UTC), option=orjson.OPT_UTC_Z).decode()[1:-1]


def unix_rfc3339(seconds: float) -> str:
    """Unix seconds as RFC 3339 UTC text (pane, window and replay boundaries)."""
    return rfc3339(datetime.fromtimestamp(seconds, UTC))


def now_rfc3339() -> str:
    """The current time as RFC 3339 UTC text, to the second."""
    return rfc3339(datetime.now(UTC).replace(microsecond=0))


class TimeOutOfRange(ValueError):
    """An RFC 3339 date-time whose moment is outside UTC years 0001-9999 (what Python holds)."""


def parse_rfc3339(text: str) -> datetime:
    """The moment of an RFC 3339 date-time, as an aware datetime in UTC.

    Exactly RFC 3339 section 5.6: ``YYYY-MM-DDTHH:MM:SS``, an optional fraction of 1 to 9
    digits (digits past the sixth are dropped: Python holds microseconds), then ``Z``,
    ``+HH:MM`` or ``-HH:MM``; ``t`` and ``z`` may be lower case. Refused with ValueError: any
    other layout (a space for ``T``, ``+0000``, no zone, a date alone, Unix seconds, week or
    ordinal dates, 10 digits of fraction), a date or time that does not exist (Feb 30, 24:00,
    an offset of 24:00, a leap second), and, as :class:`TimeOutOfRange`, a moment outside the
    UTC years 0001-9999 (year 0000, ``9999-12-31T23:00:00-02:00``).
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 date-time: expected {RFC3339_FORM}")
    year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
    micros = int((match["fraction"] or "0")[:6].ljust(6, "0"))
    zone = UTC
    if match["sign"]:
        offset_h, offset_m = int(match["offset_h"]), int(match["offset_m"])
        if offset_h > 23 or offset_m > 59:
            raise ValueError(
                f"no such offset (hours 00-23, minutes 00-59): expected {RFC3339_FORM}"
            )
        offset = timedelta(hours=offset_h, minutes=offset_m)
        zone = timezone(-offset if match["sign"] == "-" else offset)
    if year == 0:
        raise TimeOutOfRange("year 0000: the years are 0001 to 9999")
    if second == 60:
        raise ValueError(f"no leap second (:60): Python cannot hold one; expected {RFC3339_FORM}")
    try:
        moment = datetime(year, month, day, hour, minute, second, micros, tzinfo=zone)
    except ValueError as exc:
        raise ValueError(f"no such date or time ({exc}): expected {RFC3339_FORM}") from None
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise TimeOutOfRange("in UTC the moment is outside the years 0001 to 9999") from None


def compact_stamp(moment: datetime | None = None) -> str:
    """``20261122T133243Z``: a UTC time for directory names (runs, reports)."""
    return (moment or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def parse_time(text: str, *, now: datetime | None = None) -> int:
    """Milliseconds since the epoch for ``now``, ``-90s``/``-15m``/``-2h``/``-1d`` or RFC 3339
    (a time without a zone is refused: it would silently mean the machine's zone).

    Raises :class:`DataError` naming the accepted forms.
    """
    now = now or datetime.now(UTC)
    if text == "now":
        return int(now.timestamp() * 1000)
    relative = _RELATIVE.match(text)
    if relative:
        seconds = float(relative.group(1)) * _UNIT_S[relative.group(2)]
        return int((now - timedelta(seconds=seconds)).timestamp() * 1000)
    try:
        return int(parse_rfc3339(text).timestamp() * 1000)
    except ValueError:
        raise DataError(
            f"{text!r} is not a time: expected RFC 3339 with a zone (2026-11-22T10:00:00Z), "
            "'now', or relative like -90s, -15m, -2h, -1d"
        ) from None
