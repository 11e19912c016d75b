"""Columnar decoding of a batch of listing records: the same verdicts as ``decode_listing``, with
a fraction of the Python objects.

``decode_listing`` builds one pydantic model per record. Here each record is parsed by msgspec
into a tuple of the contract's fields, checking the key set and each field's JSON type in C (half
the cost of orjson into a dict, then picking the fields), the batch is pivoted into one list per
field, and ranges are checked per column (numpy comparisons). The fast path only *accepts* what it
can prove the contract accepts; every record it cannot prove valid, and every record it refuses,
is handed to ``decode_listing`` itself, whose verdict (and reason code and detail) is final. So
the reasons on dead letters are identical by construction, and a record only the contract's own
parser understands (a lower-case ``t`` in a time, an offset, a duplicated key) is still scored.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import numpy as np
import numpy.typing as npt

from stream.contract.decoding import decode_listing
from stream.contract.events import INTEGER_FIELDS, NUMERIC_BOUNDS, YEARS_AHEAD, ListingEvent
from stream.contract.features import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from stream.contract.reasons import InvalidEvent
from stream.contract.times import rfc3339

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_FIELD_ORDER: Final = tuple(ListingEvent.model_fields)
_NONE = type(None)


def _wire_type(name: str) -> Any:
    """The JSON type of a contract field, as msgspec checks it."""
    if name in INTEGER_FIELDS:
        return int | None
    if name in NUMERIC_FEATURES:
        return float | None  # msgspec takes a JSON integer here too, as the contract does
    if name in CATEGORICAL_FEATURES:
        return str | None
    if name in ("listing_id", "event_time"):
        return str
    raise TypeError(f"no wire type for the contract's field {name!r}")


# Every field required, no other key: the contract's key set. A duplicated key keeps its last
# value, as the contract's parser does.
_WireListing = msgspec.defstruct(
    "_WireListing",
    [(name, _wire_type(name)) for name in _FIELD_ORDER],
    forbid_unknown_fields=True,
    gc=False,
)
_WIRE: Final = msgspec.json.Decoder(_WireListing)
_FLOATS: Final = frozenset({int, float, _NONE})
_INTS: Final = frozenset({int, _NONE})
_STRS: Final = frozenset({str, _NONE})

# Bounds and integer fields come from the contract itself (stream/contract/events.py).
_BOUNDS: Final = NUMERIC_BOUNDS
_INT_FIELDS: Final = INTEGER_FIELDS
_MAX_CATEGORY: Final = 64
_MAX_ID: Final = 128

# The one time layout the fast path parses itself: UTC with "Z", up to microseconds, ASCII digits
# (re's \d takes any Unicode digit). Anything else (offsets, lower case, 7 to 9 digits of
# fraction) goes to the contract's parser. Years 1000-9999 with "Z" only, so no edge of Python's
# or numpy's calendar is ever reached; numpy refuses a date or time that does not exist.
_UTC_TIME: Final = r"[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?Z"
_UTC_TIMES: Final = re.compile(rf"(?:{_UTC_TIME}\n)*{_UTC_TIME}")
_ONE_UTC_TIME: Final = re.compile(_UTC_TIME)


@dataclass(slots=True)
class DecodedBatch:
    """The valid records of a batch as columns (rows in input order), and the invalid ones.

    ``index[j]`` is the position in the input of valid row ``j``. Numeric columns are float64
    with NaN for a missing value; categorical columns are lists of ``str | None``.
    """

    index: npt.NDArray[np.intp]
    listing_ids: list[str]
    event_seconds: FloatArray
    """event_time as Unix seconds (UTC)."""
    event_times: list[str]
    """event_time as RFC 3339 UTC text, formatted exactly as ``PredictionEvent.to_json`` does."""
    numeric: dict[str, FloatArray]
    categorical: dict[str, list[str | None]]
    invalid: list[tuple[int, InvalidEvent]]

    def __len__(self) -> int:
        return len(self.listing_ids)


def decode_batch(values: Sequence[bytes | None], *, max_bytes: int) -> DecodedBatch:
    """Decode and validate every record value; same verdicts as ``decode_listing`` per value."""
    rows: list[tuple[Any, ...]] = []
    positions: list[int] = []
    doubtful: list[int] = []
    decode, astuple = _WIRE.decode, msgspec.structs.astuple
    for i, raw in enumerate(values):
        if raw and len(raw) <= max_bytes:
            try:
                rows.append(astuple(decode(raw)))
                positions.append(i)
                continue
            except (msgspec.DecodeError, UnicodeDecodeError):
                pass
        doubtful.append(i)

    if not rows:
        batch = _empty()
        _settle(batch, values, doubtful, max_bytes)
        return batch
    # one C-level transpose: walking 2,000 dicts once per field costs twice as much
    columns = dict(zip(_FIELD_ORDER, zip(*rows, strict=True), strict=True))
    bad = np.zeros(len(rows), dtype=np.bool_)
    seconds, times, bad_time = _utc_times(columns["event_time"])
    bad |= bad_time
    # floor, not the cast's truncation toward zero: 1969-12-31T23:59:59.5Z is still in 1969
    whole_seconds = np.floor(seconds).astype(np.int64).astype("datetime64[s]")
    event_year = whole_seconds.astype("datetime64[Y]").astype(np.int64) + 1970
    numeric: dict[str, FloatArray] = {}
    for name in NUMERIC_FEATURES:
        values_, bad_col = _numbers(columns[name], integer=name in _INT_FIELDS)
        low, high, exclusive = _BOUNDS[name]
        out = (values_ <= low) if exclusive else (values_ < low)
        out |= values_ > high
        if name.startswith("year_"):
            out |= values_ > event_year + YEARS_AHEAD
        bad |= bad_col | out  # NaN compares False: a missing value is never out of range
        numeric[name] = values_
    for name in CATEGORICAL_FEATURES:
        bad |= _strings(columns[name], _MAX_CATEGORY, nullable=True)
    bad |= _strings(columns["listing_id"], _MAX_ID, nullable=False)

    good = ~bad
    index = np.asarray(positions, dtype=np.intp)[good]
    good_rows = np.flatnonzero(good).tolist()
    batch = DecodedBatch(
        index=index,
        listing_ids=_take(columns["listing_id"], good_rows, bad),
        event_seconds=seconds[good],
        event_times=_take(times, good_rows, bad),
        numeric={name: column[good] for name, column in numeric.items()},
        categorical={n: _take(columns[n], good_rows, bad) for n in CATEGORICAL_FEATURES},
        invalid=[],
    )
    doubtful.extend(np.asarray(positions, dtype=np.intp)[bad].tolist())
    if doubtful:
        _settle(batch, values, sorted(doubtful), max_bytes)
    return batch


def _empty() -> DecodedBatch:
    return DecodedBatch(
        index=np.zeros(0, dtype=np.intp),
        listing_ids=[],
        event_seconds=np.zeros(0),
        event_times=[],
        numeric={name: np.zeros(0) for name in NUMERIC_FEATURES},
        categorical={name: [] for name in CATEGORICAL_FEATURES},
        invalid=[],
    )


def _take(column: Sequence[Any], rows: list[int], bad: BoolArray) -> list[Any]:
    return list(column) if not bad.any() else [column[j] for j in rows]


def _utc_times(texts: Sequence[Any]) -> tuple[FloatArray, list[str], BoolArray]:
    """Unix seconds and canonical text of each time, and which ones the fast path cannot vouch
    for. One regex pass over the joined batch checks every layout at once."""
    n = len(texts)
    bad = np.zeros(n, dtype=np.bool_)
    if set(map(type, texts)) <= {str} and _UTC_TIMES.fullmatch("\n".join(texts)):
        candidates = texts
    else:
        bad = np.array([not (type(t) is str and _ONE_UTC_TIME.fullmatch(t)) for t in texts])
        candidates = ["2000-01-01T00:00:00Z" if b else t for t, b in zip(texts, bad, strict=True)]
    try:
        stamps = np.array([t[:-1] for t in candidates], dtype="datetime64[us]")
    except ValueError:  # a date that does not exist (Feb 30): let the contract say so
        stamps = np.array([_stamp(t) for t in candidates], dtype="datetime64[us]")
        bad |= np.isnat(stamps)
    # numpy refuses 24:00, second 60 and Feb 30 as the contract does (see _stamp).
    micros = stamps.astype(np.int64)
    fraction = micros % 1_000_000 != 0
    # The layout is proven above, so the length tells whether a text is already canonical:
    # "YYYY-MM-DDTHH:MM:SSZ" for a whole second, six digits of fraction otherwise.
    lengths = np.fromiter(map(len, candidates), dtype=np.intp, count=n)
    if np.array_equal(lengths, np.where(fraction, 27, 20)):
        canonical: list[str] = list(candidates)
    else:
        whole = np.char.add(np.datetime_as_string(stamps, unit="s"), "Z")
        precise = np.char.add(np.datetime_as_string(stamps, unit="us"), "Z")
        canonical = np.where(fraction, precise, whole).tolist()
    seconds = micros / 1e6
    seconds[bad] = 0.0
    return seconds, canonical, bad


def _stamp(text: str) -> np.datetime64:
    try:
        return np.datetime64(text[:-1], "us")
    except ValueError:
        return np.datetime64("NaT", "us")


def _numbers(column: Sequence[Any], *, integer: bool) -> tuple[FloatArray, BoolArray]:
    """The column as float64 (None → NaN) and where a value has a type the contract refuses
    (bool is an int subclass but not a number here; an int field takes no float)."""
    allowed = _INTS if integer else _FLOATS
    if set(map(type, column)) <= allowed:
        return np.array(column, dtype=np.float64), np.zeros(len(column), dtype=np.bool_)
    wrong = np.array([type(v) not in allowed for v in column], dtype=np.bool_)
    clean = [None if w else v for v, w in zip(column, wrong, strict=True)]
    return np.array(clean, dtype=np.float64), wrong


def _strings(column: Sequence[Any], longest: int, *, nullable: bool) -> BoolArray:
    """Where a value is not a string of 1..longest characters (or None if ``nullable``)."""
    types = set(map(type, column))
    if types <= (_STRS if nullable else {str}):
        texts = [v for v in column if v is not None] if _NONE in types else column
        if not texts or (min(map(len, texts)) > 0 and max(map(len, texts)) <= longest):
            return np.zeros(len(column), dtype=np.bool_)
    return np.array(
        [
            not ((type(v) is str and 0 < len(v) <= longest) or (nullable and v is None))
            for v in column
        ],
        dtype=np.bool_,
    )


def _settle(
    batch: DecodedBatch, values: Sequence[bytes | None], doubtful: list[int], max_bytes: int
) -> None:
    """Run the contract's own parser on the doubtful records: refused ones become invalid with
    its reason; accepted ones join the valid columns (kept in input order)."""
    accepted: list[tuple[int, ListingEvent]] = []
    for i in doubtful:
        try:
            accepted.append((i, decode_listing(values[i], max_bytes=max_bytes)))
        except InvalidEvent as exc:
            batch.invalid.append((i, exc))
    if not accepted:
        return
    extra_index = np.array([i for i, _ in accepted], dtype=np.intp)
    events = [event for _, event in accepted]
    batch.index = np.concatenate([batch.index, extra_index])
    batch.listing_ids += [e.listing_id for e in events]
    batch.event_seconds = np.concatenate(
        [batch.event_seconds, np.array([e.event_time.timestamp() for e in events])]
    )
    batch.event_times += [rfc3339(e.event_time) for e in events]
    for name in NUMERIC_FEATURES:
        more = np.array([getattr(e, name) for e in events], dtype=np.float64)
        batch.numeric[name] = np.concatenate([batch.numeric[name], more])
    for name in CATEGORICAL_FEATURES:
        batch.categorical[name] = batch.categorical[name] + [getattr(e, name) for e in events]
    order = np.argsort(batch.index, kind="stable")
    batch.index = batch.index[order]
    rows = order.tolist()
    batch.listing_ids = [batch.listing_ids[j] for j in rows]
    batch.event_seconds = batch.event_seconds[order]
    batch.event_times = [batch.event_times[j] for j in rows]
    batch.numeric = {name: column[order] for name, column in batch.numeric.items()}
    batch.categorical = {n: [c[j] for j in rows] for n, c in batch.categorical.items()}
