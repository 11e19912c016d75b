"""Why a record is dead-lettered: the fixed set of reason codes, the error that carries one, and
the headers a dead letter carries beside the original key and value."""

from __future__ import annotations

from typing import Final, Literal, get_args

from stream.errors import AppraiseError

Reason = Literal[
    "too_large",  # the value is larger than max_event_bytes
    "empty",  # the record has no value (a tombstone)
    "not_utf8",  # the bytes are not UTF-8 text
    "invalid_json",  # UTF-8, but not JSON
    "not_an_object",  # JSON, but not an object
    "missing_field",  # a required field is absent
    "unknown_field",  # a field the contract does not have
    "wrong_type",  # e.g. a string where a number belongs
    "not_finite",  # NaN or infinity
    "out_of_range",  # a negative area, a year in the future, a latitude past 90...
    "invalid_value",  # any other rule (empty id, timestamp without a time zone, ...)
    "model_error",  # valid, but the model failed on this row
    "future_event_time",  # valid, but event_time is more than event_time_skew_s ahead of the scorer
]
#: Every reason code, so metrics can create their series at start-up.
REASONS: Final[tuple[Reason, ...]] = get_args(Reason)

#: Header names of a dead letter. The value and key are the original bytes, untouched.
DLQ_REASON: Final = "appraise.dlq.reason"
DLQ_DETAIL: Final = "appraise.dlq.detail"
DLQ_SOURCE_TOPIC: Final = "appraise.dlq.source.topic"
DLQ_SOURCE_PARTITION: Final = "appraise.dlq.source.partition"
DLQ_SOURCE_OFFSET: Final = "appraise.dlq.source.offset"
DLQ_TIME: Final = "appraise.dlq.time"
#: On a dead letter whose original value was too large for the dead-letter topic: the value is
#: left out and this header gives its size in bytes.
DLQ_VALUE_OMITTED: Final = "appraise.dlq.value.omitted_bytes"
DLQ_HEADERS: Final = (
    DLQ_REASON,
    DLQ_DETAIL,
    DLQ_SOURCE_TOPIC,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_OFFSET,
    DLQ_TIME,
)

#: A dead letter's detail is cut to this many characters (a header, not a log file).
MAX_DETAIL_CHARS: Final = 500


class InvalidEvent(AppraiseError):
    """Input that breaks the contract. Never retriable: it goes to the dead-letter topic."""

    def __init__(self, reason: Reason, detail: str, field: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: Reason = reason
        self.detail: str = detail[:MAX_DETAIL_CHARS]
        #: The offending field (``living_area_sqft``), when one field is to blame.
        self.field: str | None = field
