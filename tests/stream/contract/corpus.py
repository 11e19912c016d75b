"""A generated corpus of listing, prediction and sale documents: every valid event of the bundled
hold-out data, and seeded mutations of them that probe every field of every event with wrong
types, both sides of each bound (read off the models), nulls, missing and extra keys, integral
and fractional floats, long strings, odd escapes and many time strings."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Final

import annotated_types
import orjson
from pydantic.fields import FieldInfo

from producers.sources import holdout_drafts
from stream.contract.events import (
    EVENT_TYPES,
    FUTURE_YEAR_FIELDS,
    YEARS_AHEAD,
    Event,
)

MAX_BYTES: Final = 1_000_000


@dataclass(frozen=True, slots=True)
class Doc:
    """One record value of an event kind, and how it was made (for a failure message)."""

    kind: str
    raw: bytes
    made: str


@dataclass(frozen=True, slots=True)
class Raw:
    """A JSON token written as is (1e999, -0.0, an escape), where orjson would write another."""

    token: bytes


_MARK: Final = "__corpus_raw__"


def encode(document: dict[str, Any]) -> bytes:
    """``document`` as JSON, with each Raw value spliced in as its token."""
    tokens: dict[str, bytes] = {}
    clean: dict[str, Any] = {}
    for key, value in document.items():
        if isinstance(value, Raw):
            tokens[f"{_MARK}{len(tokens)}"] = value.token
            clean[key] = f"{_MARK}{len(tokens) - 1}"
        else:
            clean[key] = value
    raw = orjson.dumps(clean, option=orjson.OPT_UTC_Z)
    for mark, token in tokens.items():
        raw = raw.replace(f'"{mark}"'.encode(), token)
    return raw


# --- valid documents ---------------------------------------------------------------------------


@cache
def valid_documents() -> dict[str, list[dict[str, Any]]]:
    """Every hold-out sale as a listing, a prediction and a sale (times as RFC 3339 text)."""
    listings, predictions, sales = [], [], []
    for i, draft in enumerate(holdout_drafts()):
        assert draft.listing is not None
        assert draft.sale_price is not None
        listing = orjson.loads(encode(draft.listing))
        listings.append(listing)
        sales.append(
            {"listing_id": listing["listing_id"], "event_time": listing["event_time"]}
            | {"sale_price": draft.sale_price}
        )
        predictions.append(
            {
                "listing_id": listing["listing_id"],
                "event_time": listing["event_time"],
                "predicted_price": round(draft.sale_price * (0.9 + (i % 20) / 100), 2),
                "model_version": f"{i % 7:012x}",
                "scored_at": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:00:00.{i}Z",
                "source_topic": "listings",
                "source_partition": i % 6,
                "source_offset": i,
                "out_of_range": ["living_area_sqft", "zoning"][: i % 3],
            }
        )
    return {"listing": listings, "prediction": predictions, "sale": sales}


# --- values that probe one field ---------------------------------------------------------------

WRONG_TYPES: Final[list[Any]] = [True, False, [], [1], {}, {"a": 1}, "", "1", "x"]
HUGE: Final[list[Any]] = [
    1e300, -1e300, 2**63 - 1, 2**63, 2**64 - 1, -(2**63), 5e-324, Raw(b"100000000000000000000"),
    Raw(b"-18446744073709551616"), Raw(b"1" + b"0" * 400), Raw(b"1e999"), Raw(b"-1e999"),
    Raw(b"-0"), Raw(b"-0.0"), Raw(b"0e0"), Raw(b"1E2"), Raw(b"1.0e+2"),
]  # fmt: skip


def _bounds(field: FieldInfo) -> tuple[float | None, float | None, int | None, int | None]:
    """(lowest, highest, min_length, max_length) from the field's rules; None where unbounded."""
    low = high = shortest = longest = None
    for rule in field.metadata:
        if isinstance(rule, annotated_types.Ge | annotated_types.Gt):
            low = float(rule.ge if isinstance(rule, annotated_types.Ge) else rule.gt)  # type: ignore[arg-type]
        elif isinstance(rule, annotated_types.Le):
            high = float(rule.le)  # type: ignore[arg-type]
        elif isinstance(rule, annotated_types.MinLen):
            shortest = rule.min_length
        elif isinstance(rule, annotated_types.MaxLen):
            longest = rule.max_length
    return low, high, shortest, longest


def _integers(low: float | None, high: float | None) -> list[Any]:
    values: list[Any] = [3, 3.0, 3.5, "3", *HUGE]
    for edge in (low, high):
        if edge is not None:
            whole = int(edge)
            values += [whole - 1, whole, whole + 1, float(whole), whole + 0.5, whole - 0.5]
            values += [Raw(f"{whole}e0".encode()), Raw(f"{whole}.000".encode())]
    return values


def _numbers(low: float | None, high: float | None) -> list[Any]:
    values: list[Any] = [1.5, "1.5", *HUGE, Raw(b"NaN"), Raw(b"Infinity")]
    for edge in (low, high):
        if edge is not None:
            values += [edge, math.nextafter(edge, -math.inf), math.nextafter(edge, math.inf)]
            values += [int(edge), int(edge) - 1, int(edge) + 1, Raw(f"{edge:e}".encode())]
    if low is not None and high is not None:
        values.append((low + high) / 2)
    return values


def _strings(shortest: int | None, longest: int | None) -> list[Any]:
    values: list[Any] = ["x", " ", "\u0000", "a\nb", "é", 5, 5.0, "x" * 10_000]
    values += [Raw(b'"\\ud800"'), Raw(b'"a\\udc00"'), Raw(b'"\\ud83d\\ude00"'), Raw(b'"\\u00e9"')]
    for length in (shortest, longest):
        if length is not None:
            for n in (length - 1, length, length + 1):
                if n >= 0:
                    values += ["x" * n, "é" * n, "\U0001f600" * n]
    return values


def _kind_of(name: str, field: FieldInfo) -> str:
    if field.annotation in (int, int | None):
        return "integer"
    if field.annotation in (float, float | None):
        return "number"
    if field.annotation in (str, str | None):
        return "string"
    if field.annotation == tuple[str, ...]:
        return "names"
    return "time"


def probes(model: type[Event], name: str) -> list[Any]:
    """Values that probe one field of ``model``: its kind's, at both sides of its bounds."""
    field = model.model_fields[name]
    low, high, shortest, longest = _bounds(field)
    kind = _kind_of(name, field)
    values = {"integer": _integers, "number": _numbers}.get(kind, lambda _l, _h: [])(low, high)
    if kind == "string":
        values = _strings(shortest, longest)
    elif kind == "names":
        values = [[], ["living_area_sqft"], ["x", "x"], [""], [1], [None], [[]], ["x"] * 100, "x"]
    elif kind == "time":
        values = times()
    return [None, *WRONG_TYPES, *values]


# --- times -------------------------------------------------------------------------------------

TIMES: Final[list[Any]] = [
    "2008-05-01T12:00:00Z", "2008-05-01t12:00:00z", "2008-05-01T12:00:00.5Z",
    "2008-05-01T12:00:00.123456789Z", "2008-05-01T12:00:00.1234567890Z", "2008-05-01T12:00:00.Z",
    "2008-05-01T12:00:00,5Z", "2008-05-01 12:00:00Z", "2008-05-01_12:00:00Z", "2008-05-01T12:00Z",
    "2008-05-01T12Z", "2008-05-01T12:00:00", "2008-05-01", "20080501T120000Z", "2008-W18-4",
    "2008-W18-4T12:00:00Z", "2008-122T12:00:00Z", "1209643200", "1209643200.5", "now", "",
    "2008-05-01T12:00:00+0000", "2008-05-01T12:00:00+00", "2008-05-01T12:00:00+02:00:30",
    "2008-05-01T12:00:00 Z", "2008-05-01T12:00:00UTC", " 2008-05-01T12:00:00Z",
    "2008-05-01T12:00:00Z ", "2008-05-01T12:00:00Z\n", "\n2008-05-01T12:00:00Z",
    "+2008-05-01T12:00:00Z", "-2008-05-01T12:00:00Z", "12008-05-01T12:00:00Z", "2008-5-1T12:00:00Z",
    "\uff12\uff10\uff10\uff18-05-01T12:00:00Z", "2008-05-01T1\u0662:00:00Z",
    "9999-12-31T23:59:59.999999999Z", "9999-12-31T23:59:59-00:01", "9999-12-31T23:59:59+00:01",
    "0001-01-01T00:00:00+00:01", "0001-01-01T00:00:00-00:01", "0001-01-01T00:00:00Z",
    "2008-12-31T23:30:00-01:00", "1969-12-31T23:59:59.5Z", 1209643200, 1209643200.5,
]  # fmt: skip
_YEARS: Final = ("2008", "2009", "1900", "2000", "2100", "2400", "0000", "0001", "0004", "9999")
_CLOCKS: Final = ("00:00:00", "23:59:59", "24:00:00", "23:60:00", "23:59:60", "99:99:99", "7:00:00")
_ZONES: Final = ("Z", "z", "+00:00", "-00:00", "+23:59", "-23:59", "+24:00", "-12:60", "+0100", "")


@cache
def times() -> list[Any]:
    """Hand-picked variants and near misses, every month's edge days in common, leap and
    century years, clocks and zones at their edges, fractions of 0 to 11 digits, and seeded
    random assemblies of all those parts."""
    out = list(TIMES)
    out += [f"{y}-{m:02d}-{d:02d}T12:00:00Z" for y in _YEARS for m in range(14) for d in (0, 1, 28)]
    out += [f"{y}-{m:02d}-{d:02d}T00:00:00Z" for y in _YEARS for m in range(14) for d in (29, 30)]
    out += [f"{y}-{m:02d}-{d:02d}t23:59:59z" for y in _YEARS for m in range(14) for d in (31, 32)]
    out += [f"2008-05-01T{clock}{zone}" for clock in _CLOCKS for zone in _ZONES]
    out += [f"2008-05-01T12:00:00.{'7' * n}+01:00" for n in range(12)]
    rng = random.Random(3339)
    for _ in range(400):
        year, clock, zone = rng.choice(_YEARS), rng.choice(_CLOCKS), rng.choice(_ZONES)
        month, day = rng.randint(0, 13), rng.randint(0, 32)
        fraction = rng.choice(["", "." + "5" * rng.randint(0, 11)])
        out.append(f"{year}-{month:02d}-{day:02d}{rng.choice('Tt _')}{clock}{fraction}{zone}")
    return out


# --- the corpus --------------------------------------------------------------------------------


def _whole(kind: str, base: dict[str, Any]) -> Iterator[Doc]:
    """Documents that are not an object of the contract's, or not JSON text at all."""
    text = encode(base)
    for raw in (b"", b"[]", b'"x"', b"1", b"null", b"{}", b"[" + text + b"]", text[:-1]):
        yield Doc(kind, raw, f"whole document {raw[:20]!r}")
    yield Doc(kind, b" \n\t" + text + b"\r\n", "JSON whitespace around")
    yield Doc(kind, b"\xef\xbb\xbf" + text, "a byte order mark")
    yield Doc(kind, text + b" x", "trailing text")
    yield Doc(kind, text.replace(b'"listing_id":"', b'"listing_id":"\xff'), "not UTF-8")
    yield Doc(kind, text.replace(b'"listing_id":"', b'"listing_id":"\xed\xa0\x80'), "CESU-8")
    yield Doc(kind, text[:-1] + b" " * MAX_BYTES + b"}", "padded past max_event_bytes")
    for name in base:
        first = text.replace(f'"{name}":'.encode(), f'"{name}":null,"{name}":'.encode(), 1)
        yield Doc(kind, first, f"{name} twice, null first")
        yield Doc(kind, text[:-1] + f',"{name}":null}}'.encode(), f"{name} twice, null last")


def _per_field(kind: str, base: dict[str, Any], model: type[Event]) -> Iterator[Doc]:
    for name in model.model_fields:
        for value in probes(model, name):
            yield Doc(kind, encode({**base, name: value}), f"{name}={value!r}")
        yield Doc(kind, encode({k: v for k, v in base.items() if k != name}), f"no {name}")
        yield Doc(kind, encode({**base, name.upper(): base[name]}), f"also {name.upper()}")
    for extra in ("extra", "", "Event_Time", "__proto__"):
        yield Doc(kind, encode({**base, extra: None}), f"extra key {extra!r}")
    if kind == "listing":
        # the time alone, with no year to outrun it
        no_years = {**base, **dict.fromkeys(FUTURE_YEAR_FIELDS)}
        for value in times():
            yield Doc(kind, encode({**no_years, "event_time": value}), f"no years, {value!r}")
        year = datetime.fromisoformat(base["event_time"]).year
        for name, ahead in itertools.product(FUTURE_YEAR_FIELDS, range(-1, 5)):
            value = year + YEARS_AHEAD + ahead
            yield Doc(kind, encode({**base, name: value}), f"{name}={value}")
            yield Doc(kind, encode({**base, name: float(value)}), f"{name}={value}.0")


def _random(kind: str, bases: list[dict[str, Any]], model: type[Event], n: int) -> Iterator[Doc]:
    """Seeded random mutations of one to three fields at once."""
    rng = random.Random(f"{kind}-2020-12")
    names = list(model.model_fields)
    for _ in range(n):
        document = dict(rng.choice(bases))
        for name in rng.sample(names, rng.randint(1, 3)):
            if rng.random() < 0.1:
                document.pop(name)
            else:
                document[name] = rng.choice(probes(model, name))
        yield Doc(kind, encode(document), f"random {document!r}"[:300])


@cache
def corpus() -> tuple[Doc, ...]:
    """The whole corpus, the same on every run."""
    docs: list[Doc] = []
    for kind, documents in valid_documents().items():
        model = EVENT_TYPES[kind]
        docs += [Doc(kind, encode(document), "valid") for document in documents]
        bases = documents[:: len(documents) // 3][:3]  # early, middle and late in the hold-out
        for base in bases:
            docs += _whole(kind, base)
            docs += _per_field(kind, base, model)
        docs += _random(kind, documents, model, 2_000)
    return tuple(docs)
