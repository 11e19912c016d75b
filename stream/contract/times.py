"""Times on the wire: RFC 3339 in UTC with ``Z``, written one way everywhere.

Events, pane and window records, dead-letter headers, replay bounds and run directories all
format and parse times through these helpers, so every part writes the same text for the same
moment (``2008-05-01T12:00:00Z``; six digits of fraction only when there is one).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final

import orjson

from stream.errors import DataError

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


def parse_rfc3339(text: str) -> datetime:
    """An aware datetime from RFC 3339 text (``Z`` or an offset); ValueError without a zone."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return moment


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
