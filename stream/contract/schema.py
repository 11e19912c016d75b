"""The published JSON Schema (draft 2020-12) of each event, ``appraise schema``, and what it
cannot say.

pydantic writes the schema from the models: types, bounds, lengths, required fields, no other
key, and the times' ``pattern`` (:data:`stream.contract.times.RFC3339_PATTERN`). A few rules of
the contract are out of JSON Schema's reach: the schema names them in its ``description`` and in
those of the properties they touch, and ``tests/stream/contract/test_schema_agrees.py`` checks
that the schema and the contract disagree on nothing else.
"""

from __future__ import annotations

from typing import Any, Final

from stream.contract.events import EVENT_TYPES, FUTURE_YEAR_FIELDS, YEARS_AHEAD
from stream.settings import Settings

DRAFT: Final = "https://json-schema.org/draft/2020-12/schema"
#: The latest year an event can carry, so the latest year_built any event allows.
_LATEST_YEAR: Final = 9999 + YEARS_AHEAD
_MAX_BYTES: Final = Settings.model_fields["max_event_bytes"].default

INTEGER_NOTE: Final = (
    "Written as a JSON integer (2, not 2.0 or 2e0): JSON Schema's integer is any number with a "
    "zero fractional part, so this schema lets 2.0 pass; the contract refuses it (wrong_type)."
)
YEAR_NOTE: Final = (
    f"At most the event's own year + {YEARS_AHEAD} (out_of_range), a rule across fields that "
    f"this schema cannot say; its maximum, {_LATEST_YEAR}, is that of the latest event_time."
)
TIME_NOTE: Final = (
    "RFC 3339 date-time (section 5.6): T and Z may be t and z; 1 to 9 digits of fraction, kept "
    "to the microsecond. The pattern says it all but the range: the moment in UTC must fall in "
    "the years 0001-9999 (9999-12-31T23:30:00-01:00 is refused, out_of_range)."
)


def _limits(kind: str) -> str:
    integers = "counts and years" if kind == "listing" else "source_partition and source_offset"
    lines = [
        "The contract also refuses what JSON Schema cannot say (a schema sees the parsed value, "
        "not the bytes, and compares numbers by value):",
        f"- {integers} written with a fraction part or an exponent, e.g. 2.0 (wrong_type);",
    ]
    if kind == "listing":
        lines.append(
            f"- {' or '.join(FUTURE_YEAR_FIELDS)} later than the year of event_time + "
            f"{YEARS_AHEAD} (out_of_range);"
        )
    lines += [
        "- a time whose moment in UTC is outside the years 0001-9999 (out_of_range);",
        f"- a record value of more than max_event_bytes bytes ({_MAX_BYTES:,} unless "
        "APPRAISE_MAX_EVENT_BYTES says otherwise; too_large), one that is not UTF-8 (not_utf8), "
        "or one with a string holding an unpaired surrogate escape such as \\ud800 "
        "(invalid_json).",
        "A duplicated key is not refused: its last value counts.",
    ]
    return "\n".join(lines)


def _note(prop: dict[str, Any], note: str) -> None:
    prop["description"] = f"{prop['description']}. {note}" if "description" in prop else note


def _branches(prop: dict[str, Any]) -> list[dict[str, Any]]:
    """The property's schema, or each of its anyOf options (a nullable field)."""
    options: list[dict[str, Any]] = prop.get("anyOf", [prop])
    return options


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of an event kind (``listing``, ``prediction`` or ``sale``)."""
    schema = EVENT_TYPES[kind].model_json_schema()
    schema["$schema"] = DRAFT
    for name, prop in schema["properties"].items():
        branches = _branches(prop)
        if any(branch.get("type") == "integer" for branch in branches):
            _note(prop, INTEGER_NOTE)
        if any(branch.get("format") == "date-time" for branch in branches):
            _note(prop, TIME_NOTE)
        if kind == "listing" and name in FUTURE_YEAR_FIELDS:
            for branch in branches:
                if branch.get("type") == "integer":
                    branch["maximum"] = _LATEST_YEAR
            _note(prop, YEAR_NOTE)
    schema["description"] = f"{schema['description']}\n\n{_limits(kind)}"
    return schema
