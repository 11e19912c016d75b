"""The published JSON Schema says what the contract accepts: every document of a generated corpus
(tests/stream/contract/corpus.py) gets the same verdict from the schema, checked by jsonschema's
draft 2020-12 validator with formats asserted, as from the contract's decoder. The only
exceptions are the rules the schema names as beyond JSON Schema, each recognised here by a small
predicate, so any other disagreement fails."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Final

import pytest
from jsonschema import Draft202012Validator
from pydantic import AwareDatetime

from stream.contract.decoding import decode
from stream.contract.events import EVENT_TYPES, FUTURE_YEAR_FIELDS, YEARS_AHEAD
from stream.contract.reasons import InvalidEvent, Reason
from stream.contract.schema import json_schema
from stream.contract.times import RFC3339_PATTERN, parse_rfc3339
from tests.stream.contract.corpus import MAX_BYTES, corpus

Value = Any
Verdict = Reason | None  # None: accepted


def _fields(kind: str, annotations: tuple[Any, ...]) -> tuple[str, ...]:
    fields = EVENT_TYPES[kind].model_fields
    return tuple(name for name, field in fields.items() if field.annotation in annotations)


INTEGERS: Final = {kind: _fields(kind, (int, int | None)) for kind in EVENT_TYPES}
TIMES: Final = {kind: _fields(kind, (AwareDatetime,)) for kind in EVENT_TYPES}
YEARS: Final[dict[str, tuple[str, ...]]] = {
    kind: FUTURE_YEAR_FIELDS if kind == "listing" else () for kind in EVENT_TYPES
}


# --- the rules the schema names as beyond JSON Schema, recognised in a document ---------------


def _integral_float_for_integer(kind: str, value: Value, raw: bytes) -> bool:
    """2.0 or 2e0 where the contract wants a JSON integer: integral for JSON Schema."""
    return any(isinstance(value.get(n), float) and value[n].is_integer() for n in INTEGERS[kind])


def _year_after_the_event(kind: str, value: Value, raw: bytes) -> bool:
    if not YEARS[kind] or _moment_outside_utc_years(kind, value, raw):
        return False
    latest = parse_rfc3339(value["event_time"]).year + YEARS_AHEAD
    return any(isinstance(value[n], int) and value[n] > latest for n in YEARS[kind])


_LAYOUT: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:[.][0-9]+)?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)


def _moment_outside_utc_years(kind: str, value: Value, raw: bytes) -> bool:
    """A time that its offset moves out of the years 0001-9999 in UTC."""
    for name in TIMES[kind]:
        parts = _LAYOUT.fullmatch(value[name])
        assert parts is not None, f"the schema took {value[name]!r}"
        year, month, day, hour, minute, second = (int(part) for part in parts.groups()[:6])
        local = datetime(year, month, day, hour, minute, second)  # naive: only its range matters
        offset = timedelta(hours=int(parts[8] or 0), minutes=int(parts[9] or 0))
        try:
            local - offset if parts[7] == "+" else local + offset
        except OverflowError:
            return True
    return False


def _over_max_bytes(kind: str, value: Value, raw: bytes) -> bool:
    return len(raw) > MAX_BYTES


def _unpaired_surrogate(kind: str, value: Value, raw: bytes) -> bool:
    """A \\ud800 escape without its pair: Python's parser keeps it, the contract's refuses it."""

    def texts(item: Value) -> Iterator[str]:
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            for key, inner in item.items():
                yield key
                yield from texts(inner)
        elif isinstance(item, list):
            for inner in item:
                yield from texts(inner)

    return any(re.search("[\ud800-\udfff]", text) for text in texts(value))


@dataclass(frozen=True, slots=True)
class Beyond:
    """A rule of the contract that JSON Schema cannot say: the schema lets a document pass that
    the contract refuses with ``reason``. The schema's description names the rule (``named``)
    and so does that of each property it touches (``touches``, ``named_there``)."""

    reason: Reason
    holds: Callable[[str, Value, bytes], bool]
    named: str
    touches: dict[str, tuple[str, ...]] | None = None
    named_there: str = ""


BEYOND: Final = (
    Beyond(
        "wrong_type",
        _integral_float_for_integer,
        "with a fraction part or an exponent, e.g. 2.0",
        INTEGERS,
        "not 2.0",
    ),
    Beyond(
        "out_of_range",
        _year_after_the_event,
        f"later than the year of event_time + {YEARS_AHEAD}",
        YEARS,
        f"event's own year + {YEARS_AHEAD}",
    ),
    Beyond(
        "out_of_range",
        _moment_outside_utc_years,
        "in UTC is outside the years 0001-9999",
        TIMES,
        "in UTC must fall in the years 0001-9999",
    ),
    Beyond("too_large", _over_max_bytes, "more than max_event_bytes"),
    Beyond("invalid_json", _unpaired_surrogate, "unpaired surrogate escape"),
)


# --- the two verdicts --------------------------------------------------------------------------


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _not_json(token: str) -> None:
    raise ValueError(f"{token} is not JSON")


def parsed(raw: bytes) -> Value:
    """The JSON value of a record, as a JSON Schema validator sees it; ValueError if the record
    is not JSON text (UTF-8, no byte order mark, no NaN)."""
    return json.loads(raw.decode("utf-8"), parse_constant=_not_json)


@cache
def contract_verdicts() -> tuple[Verdict, ...]:
    verdicts: list[Verdict] = []
    for doc in corpus():
        try:
            decode(EVENT_TYPES[doc.kind], doc.raw, max_bytes=MAX_BYTES)
        except InvalidEvent as exc:
            verdicts.append(exc.reason)
        else:
            verdicts.append(None)
    return tuple(verdicts)


def disagreements(schemas: dict[str, dict[str, Any]], *, first: bool = False) -> list[str]:
    """How the schemas (of the kinds given) and the contract disagree on the corpus, beyond the
    named rules: all the disagreements, or the ``first`` one found."""
    validators = {kind: validator(schema) for kind, schema in schemas.items()}
    found: list[str] = []
    for doc, verdict in zip(corpus(), contract_verdicts(), strict=True):
        if doc.kind not in validators or (first and found):
            continue
        try:
            value = parsed(doc.raw)
        except ValueError:
            schema_accepts = False
        else:
            schema_accepts = validators[doc.kind].is_valid(value)
        if schema_accepts == (verdict is None):
            continue
        if schema_accepts and any(
            rule.reason == verdict and rule.holds(doc.kind, value, doc.raw) for rule in BEYOND
        ):
            continue
        says = "accepts" if schema_accepts else "refuses"
        found.append(f"{doc.kind} {doc.made}: the schema {says}, the contract says {verdict}")
    return found


SCHEMAS: Final = {kind: json_schema(kind) for kind in EVENT_TYPES}


def test_the_corpus_is_large_and_has_both_verdicts() -> None:
    verdicts = contract_verdicts()
    assert len(verdicts) > 30_000
    assert sum(v is None for v in verdicts) > 5_000
    assert {v for v in verdicts if v is not None} >= {"wrong_type", "out_of_range", "invalid_value"}


def test_formats_are_asserted() -> None:
    """Without rfc3339-validator jsonschema skips date-time silently."""
    assert "date-time" in Draft202012Validator.FORMAT_CHECKER.checkers
    dates = validator({"type": "string", "format": "date-time"})
    assert not dates.is_valid("2008-02-30T12:00:00Z")


def test_the_schema_and_the_contract_agree_on_the_corpus() -> None:
    found = disagreements(SCHEMAS)
    assert not found, f"{len(found)} disagreements, e.g.:\n" + "\n".join(found[:20])


@pytest.mark.parametrize("kind", list(EVENT_TYPES))
def test_the_schema_names_what_it_cannot_say(kind: str) -> None:
    schema = SCHEMAS[kind]
    Draft202012Validator.check_schema(schema)
    for rule in BEYOND:
        touched = () if rule.touches is None else rule.touches[kind]
        if rule.touches is None or touched:
            assert rule.named in schema["description"], rule.named
        for name in touched:
            assert rule.named_there in schema["properties"][name]["description"], name
    assert "duplicated key is not refused" in schema["description"]


def _node(schema: dict[str, Any], path: str) -> tuple[Any, str | int]:
    """The parent of the keyword at ``path`` (dots; numbers index lists), and its key."""
    *parents, last = path.split(".")
    node: Any = schema
    for part in parents:
        node = node[int(part) if part.isdigit() else part]
    return node, int(last) if last.isdigit() else last


def _without(path: str) -> Callable[[dict[str, Any]], None]:
    def sabotage(schema: dict[str, Any]) -> None:
        node, key = _node(schema, path)
        del node[key]

    return sabotage


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def sabotage(schema: dict[str, Any]) -> None:
        node, key = _node(schema, path)
        node[key] = value

    return sabotage


SABOTAGES: Final = [
    ("listing", "garage_cars.anyOf.0.maximum", None),
    ("listing", "living_area_sqft.anyOf.0.exclusiveMinimum", None),
    ("listing", "latitude.anyOf.0.minimum", -91),
    ("listing", "bedrooms.anyOf.0.maximum", 99),
    ("listing", "listing_id.maxLength", 129),
    ("listing", "neighbourhood.anyOf.0.minLength", 0),
    ("listing", "neighbourhood.anyOf.1", None),
    ("listing", "event_time.pattern", None),
    ("listing", "event_time.pattern", RFC3339_PATTERN.replace("[Tt]", "T")),
    ("prediction", "scored_at.pattern", RFC3339_PATTERN.replace("{1,9}", "+")),
    ("prediction", "scored_at.pattern", RFC3339_PATTERN.replace("(?!\\n)", "")),
    ("prediction", "source_offset.type", "number"),
    ("sale", "sale_price.exclusiveMinimum", None),
    ("sale", "event_time.maxLength", 30),
]


@pytest.mark.parametrize(
    ("kind", "path", "value"), SABOTAGES, ids=[f"{k}.{p}={v}"[:60] for k, p, v in SABOTAGES]
)
def test_the_corpus_finds_a_schema_that_says_less_or_more(kind: str, path: str, value: Any) -> None:
    schema = copy.deepcopy(SCHEMAS[kind])
    path = f"properties.{path}"
    (_without(path) if value is None else _set(path, value))(schema)
    assert disagreements({kind: schema}, first=True)


@pytest.mark.parametrize("kind", list(EVENT_TYPES))
def test_the_corpus_finds_a_schema_without_the_rules_of_the_object(kind: str) -> None:
    for sabotage in (_without("additionalProperties"), _set("required", ["listing_id"])):
        schema = copy.deepcopy(SCHEMAS[kind])
        sabotage(schema)
        assert disagreements({kind: schema}, first=True)
