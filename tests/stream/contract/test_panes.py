"""Pane partials: fold, merge, and a record format that round-trips."""

from __future__ import annotations

import base64

import numpy as np
import orjson
import pytest

from consumers.panes import PaneBook
from stream.contract.features import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from stream.contract.panes import FORMAT, Pane, PaneFormatError, decode_pane, encode_pane
from stream.contract.sketch import SketchError

T0 = 1_209_643_200.0  # 2008-05-01T12:00:00Z


def _book(n: int, seed: int, *, start: float = T0) -> PaneBook:
    rng = np.random.default_rng(seed)
    book = PaneBook(10.0, "v1", k=200)
    numeric = {name: rng.normal(100, 10, n).astype(np.float64) for name in NUMERIC_FEATURES}
    numeric["lot_area_sqft"][::4] = np.nan
    categorical: dict[str, list[str | None]] = {
        name: [None if i % 5 == 0 else f"c{i % 3}" for i in range(n)]
        for name in CATEGORICAL_FEATURES
    }
    times = np.arange(n, dtype=np.float64) * 0.25 + start
    book.fold(times, rng.lognormal(12, 0.3, n).astype(np.float64), numeric, categorical)
    return book


def test_a_pane_round_trips_through_its_record() -> None:
    (pane, *_) = _book(40, 1).drain()
    raw = encode_pane(pane)
    assert pane.key == b"2008-05-01T12:00:00Z/v1"
    assert orjson.loads(raw)["format"] == FORMAT
    again = decode_pane(raw)
    assert (again.start, again.seconds, again.model_version) == (T0, 10.0, "v1")
    assert again.events == pane.events == 40
    assert again.sketches.missing == pane.sketches.missing
    assert again.sketches.missing["lot_area_sqft"] == 10
    assert again.sketches.missing["zoning"] == 8
    assert again.sketches.categories == pane.sketches.categories
    assert again.sketches.prediction.to_bytes() == pane.sketches.prediction.to_bytes()
    for name in NUMERIC_FEATURES:
        assert again.sketches.features[name].to_bytes() == pane.sketches.features[name].to_bytes()


def test_out_of_range_counts_travel_and_the_first_format_is_still_read() -> None:
    book = _book(20, 4)
    flags = {name: np.zeros(20, dtype=np.bool_) for name in NUMERIC_FEATURES}
    flags["living_area_sqft"][:3] = True
    n = 20
    book.fold(
        np.full(n, T0),
        np.full(n, 200_000.0),
        {name: np.full(n, 5.0) for name in NUMERIC_FEATURES},
        {name: ["a"] * n for name in CATEGORICAL_FEATURES},
        flags,
    )
    (pane, *_) = book.drain()
    again = decode_pane(encode_pane(pane))
    assert again.sketches.out_of_range["living_area_sqft"] == 3
    assert sum(again.sketches.out_of_range.values()) == 3
    first = orjson.loads(encode_pane(pane))
    first["format"] = "appraise.pane/1"
    del first["out_of_range"]
    old = decode_pane(orjson.dumps(first))
    assert old.events == pane.events
    assert set(old.sketches.out_of_range.values()) == {0}
    first["out_of_range"] = {"living_area_sqft": 1}  # /1 never carried it; /2 always does
    with pytest.raises(PaneFormatError):
        decode_pane(orjson.dumps(first))


def test_partials_merge_into_the_whole() -> None:
    parts = _book(30, 2).drain() + _book(30, 3).drain()
    merged = Pane(T0, 10.0, "v1")
    for part in parts:
        merged.merge(decode_pane(encode_pane(part)))
    assert merged.events == 60
    assert merged.sketches.prediction.n == 60
    assert merged.sketches.missing["lot_area_sqft"] == sum(
        p.sketches.missing["lot_area_sqft"] for p in parts
    )
    assert sum(merged.sketches.categories["zoning"].values()) == 48


def test_a_batch_spanning_panes_splits_by_event_time() -> None:
    panes = _book(100, 4).drain()  # 25 s of events, 4 per second
    assert [p.start - T0 for p in panes] == [0.0, 10.0, 20.0]
    assert [p.events for p in panes] == [40, 40, 20]


def test_other_versions_and_sizes_are_refused() -> None:
    (pane, *_) = _book(5, 5).drain()
    with pytest.raises(ValueError, match="cannot merge"):
        Pane(T0, 10.0, "v2").merge(pane)
    with pytest.raises(PaneFormatError, match="kll_doubles:k=100"):
        decode_pane(encode_pane(pane), k=100)
    record = orjson.loads(encode_pane(pane))
    with pytest.raises(PaneFormatError, match="format"):
        decode_pane(orjson.dumps({**record, "format": "appraise.pane/0"}))
    with pytest.raises(PaneFormatError, match="not a pane record"):
        decode_pane(b"[]")
    other = base64.b64encode(b"kll_doubles:k=8\n" + b"\0" * 8).decode()
    with pytest.raises(SketchError):
        decode_pane(orjson.dumps({**record, "prediction": other}))
