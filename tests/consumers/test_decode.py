"""The columnar decoder gives exactly the verdicts of ``decode_listing``, record by record."""

from __future__ import annotations

import math
import random
from typing import Any

import orjson
import pytest

from consumers.decode import decode_batch
from stream.contract.decoding import decode_listing
from stream.contract.features import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from stream.contract.malformed import MALFORMATIONS
from stream.contract.reasons import InvalidEvent
from stream.contract.times import rfc3339
from tests.consumers.records import listing

MAX_BYTES = 1_000_000

#: Values that probe each rule of the contract from both sides of its edge.
PROBES: list[Any] = [
    None, 0, 1, -1, 0.5, 2.0, 1e8, 1e8 + 1, 100, 101, 1799, 1800, 2010, 2011, 2012, 90, 90.5,
    -90, -180.5, 180, True, False, "", "x", "3", "x" * 64, "x" * 65, "é" * 64, [], {},
    10**19, 2**63, 1e300, "2008-05-01T12:00:00Z",
]  # fmt: skip
TIMES = [
    "2008-05-01T12:00:00Z", "2008-05-01T12:00:00.5Z", "2008-05-01T12:00:00.123456Z",
    "2008-05-01T12:00:00.1234567Z", "2008-05-01t12:00:00z", "2008-05-01 12:00:00Z",
    "2008-05-01T24:00:00Z", "2008-05-01T23:59:60Z", "2008-02-30T12:00:00Z",
    "2008-05-01T12:00Z", "2008-05-01T12:00:00+02:00", "2008-05-01T12:00:00-23:59",
    "2008-05-01T12:00:00", "0999-05-01T12:00:00Z", "2008-05-01", "", 1209643200, None,
    "2008-12-31T23:30:00-01:00", "1969-12-31T23:59:59.5Z", "1899-12-31T23:59:59.999999Z",
    "2008-05-01T12:00:00.000000Z", "2008-05-01T12:00:00.100000Z", "2008-05-01T12:00:00.10000Z",
    "2008-05-01T12:00:00+0000", "1209643200", "2008-05-01T12:00:00.123456789Z",
    "2008-05-01T12:00:00.1234567890Z", "2008-05-01_12:00:00Z", "2008-W18-4T12:00:00Z",
    "2\uff10\uff10\uff18-05-01T12:00:00Z", "2008-05-01T12:00:00Z\n", "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:30:00-01:00", "1000-01-01T00:00:00Z", "2008-02-29T12:00:00Z",
    "1900-02-29T12:00:00Z", "2008-05-01T12:00:00+24:00",
]  # fmt: skip


def _same_verdict(raws: list[bytes | None]) -> None:
    batch = decode_batch(raws, max_bytes=MAX_BYTES)
    invalid = dict(batch.invalid)
    valid = {int(i): j for j, i in enumerate(batch.index)}
    assert len(valid) + len(invalid) == len(raws)
    for i, raw in enumerate(raws):
        try:
            event = decode_listing(raw, max_bytes=MAX_BYTES)
        except InvalidEvent as exc:
            refused: InvalidEvent | None = exc
        else:
            refused = None
        if refused is not None:
            assert i in invalid, f"accepted {raw!r}, the contract says {refused}"
            assert (invalid[i].reason, invalid[i].detail) == (refused.reason, refused.detail)
            continue
        assert i in valid, f"refused {raw!r}: {invalid.get(i)}"
        j = valid[i]
        assert batch.listing_ids[j] == event.listing_id
        assert batch.event_times[j] == rfc3339(event.event_time)
        assert batch.event_seconds[j] == event.event_time.timestamp()
        for name in NUMERIC_FEATURES:
            expected = getattr(event, name)
            got = batch.numeric[name][j]
            assert (math.isnan(got) and expected is None) or got == expected, name
        for name in CATEGORICAL_FEATURES:
            assert batch.categorical[name][j] == getattr(event, name), name


def test_every_malformation_gets_the_contract_reason() -> None:
    raws = [m.make(listing(i)) for i, m in enumerate(MALFORMATIONS)]
    _same_verdict([orjson.dumps(listing(100)), *raws, orjson.dumps(listing(101))])


def test_probes_of_every_field_match_the_contract() -> None:
    base = listing(7)
    raws: list[bytes | None] = []
    for name in base:
        if name == "event_time":
            continue
        raws += [orjson.dumps({**base, name: value}) for value in PROBES]
    raws += [orjson.dumps({**base, "event_time": t}) for t in TIMES]
    raws += [
        orjson.dumps({**base, "event_time": t, "year_built": None, "year_remodelled": None})
        for t in TIMES
    ]
    # the future-year rule at the edge of the event's own year
    for year in (1969, 1971, 1972, 1898, 1901, 1902):
        for when in ("1969-12-31T23:59:59.5Z", "1899-12-31T23:59:59.999999Z"):
            raws.append(orjson.dumps({**base, "event_time": when, "year_remodelled": year}))
    raws.append(orjson.dumps(base).replace(b'"rooms":', b'"rooms":3,"rooms":'))
    # a duplicated key: the last value counts, whether the first or the last is the bad one
    raws.append(orjson.dumps(base).replace(b'"rooms":', b'"rooms":"many","rooms":'))
    raws.append(orjson.dumps(base)[:-1] + b',"rooms":"many"}')
    raws.append(orjson.dumps(base)[:-1] + b',"rooms":-1}')
    # escapes, padding and bytes the JSON parsers may treat differently
    raws.append(orjson.dumps(base).replace(b'"house_style":"', b'"house_style":"\\ud800'))
    raws.append(orjson.dumps(base).replace(b'"house_style":"', b'"house_style":"\\u00e9\\"\\n'))
    raws.append(orjson.dumps(base).replace(b'"zoning":"', b'"zoning":"\xed\xa0\x80'))
    raws.append(b" \n" + orjson.dumps(base) + b"\t ")
    raws.append(orjson.dumps(base) + b" x")
    raws.append(orjson.dumps(base).replace(b'"rooms":', b'"rooms":100000000000000000000000,"x":'))
    raws.append(orjson.dumps(base).replace(b'"lot_area_sqft":', b'"lot_area_sqft":1e999,"x":'))
    _same_verdict(raws)


def test_random_mutations_match_the_contract_in_one_batch() -> None:
    rng = random.Random(7)
    raws: list[bytes | None] = []
    for i in range(3_000):
        event = listing(i)
        for _ in range(rng.choice([0, 0, 1, 2])):
            event[rng.choice(list(event))] = rng.choice(PROBES + TIMES)
        raws.append(orjson.dumps(event))
    _same_verdict(raws)


@pytest.mark.parametrize(
    "raws",
    [
        pytest.param([], id="nothing"),
        pytest.param([None, b"", b"{"], id="all invalid"),
        pytest.param([orjson.dumps(listing(1, event_time="2008-05-01T12:00:00+01:00"))], id="slow"),
    ],
)
def test_edge_batches(raws: list[bytes | None]) -> None:
    _same_verdict(raws)
