"""Decoding one record value into an event, or a reason code for its dead letter.

``decode_listing`` turns raw record bytes into a ``ListingEvent`` or raises ``InvalidEvent``
with a reason code from the small fixed set ``REASONS``; the scorer puts that code and the
detail on the dead letter, and counts dead letters by it.
"""

from __future__ import annotations

from typing import Final, TypeVar

from pydantic import ValidationError

from stream.contract.events import Event, ListingEvent
from stream.contract.reasons import InvalidEvent, Reason

E = TypeVar("E", bound=Event)

_REASON_BY_ERROR_TYPE: Final[dict[str, Reason]] = {
    "missing": "missing_field",
    "extra_forbidden": "unknown_field",
    "finite_number": "not_finite",
    "model_type": "not_an_object",
    "model_attributes_type": "not_an_object",
    "greater_than": "out_of_range",
    "greater_than_equal": "out_of_range",
    "less_than": "out_of_range",
    "less_than_equal": "out_of_range",
    "out_of_range": "out_of_range",
}


def decode_listing(raw: bytes | None, *, max_bytes: int) -> ListingEvent:
    """Decode and validate one record value, or raise ``InvalidEvent``."""
    return decode(ListingEvent, raw, max_bytes=max_bytes)


def decode(model: type[E], raw: bytes | None, *, max_bytes: int) -> E:
    """Decode and validate one record value as ``model``, or raise ``InvalidEvent``."""
    if raw is None or raw == b"":
        raise InvalidEvent("empty", "the record has no value")
    if len(raw) > max_bytes:
        raise InvalidEvent("too_large", f"{len(raw)} bytes, more than the limit {max_bytes}")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise _invalid(exc, raw) from None


def _invalid(exc: ValidationError, raw: bytes) -> InvalidEvent:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    kind = first["type"]
    if kind == "json_invalid":
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            return InvalidEvent("not_utf8", f"byte {bad.start}: {bad.reason}")
        return InvalidEvent("invalid_json", first["msg"].removeprefix("Invalid JSON: "))
    reason = _REASON_BY_ERROR_TYPE.get(kind)
    if reason is None:
        reason = "wrong_type" if kind.endswith("_type") else "invalid_value"
    detail = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '<event>'}: {err['msg']}" for err in errors
    )
    loc = first["loc"]
    # A rule across fields (a year after the event's) names its field in the context.
    field = str(loc[0]) if loc else (first.get("ctx") or {}).get("field")
    return InvalidEvent(reason, detail, field)
