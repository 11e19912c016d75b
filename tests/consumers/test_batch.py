"""Scoring a batch: one prediction per valid record, one dead letter per invalid one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pytest

from consumers.batch import score_batch
from consumers.panes import PaneBook
from stream.contract.decoding import decode, decode_listing
from stream.contract.events import PredictionEvent
from stream.contract.features import FEATURES
from stream.contract.malformed import MALFORMATIONS
from stream.contract.reasons import (
    DLQ_DETAIL,
    DLQ_REASON,
    DLQ_SOURCE_OFFSET,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_TOPIC,
    DLQ_TIME,
)
from stream.model.predict import LoadedModel
from stream.model.ranges import TrainingRange
from tests.consumers.records import FakeRecord, invalid_value, listing, valid_value

MAX_BYTES = 1_000_000
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _records(n_valid: int, n_invalid: int) -> tuple[list[FakeRecord], list[str]]:
    """Valid and invalid records interleaved; the expected reason per record ("" if valid)."""
    records: list[FakeRecord] = []
    reasons: list[str] = []
    for i in range(n_valid + n_invalid):
        if i % 3 == 1 and len(reasons) - reasons.count("") < n_invalid:
            value, reason = invalid_value(len(reasons) - reasons.count(""))
        else:
            value, reason = valid_value(i), ""
        records.append(FakeRecord(value=value, offset=100 + i, key=f"k{i}".encode(), partition=2))
        reasons.append(reason)
    return records, reasons


def test_valid_records_get_predictions_and_invalid_ones_dead_letters(model: LoadedModel) -> None:
    records, reasons = _records(60, len(MALFORMATIONS))
    scored = score_batch(records, model, max_bytes=MAX_BYTES, now=NOW)

    valid = [r for r, why in zip(records, reasons, strict=True) if not why]
    assert len(scored.predictions) == len(valid)
    events = [decode_listing(r.value, max_bytes=MAX_BYTES) for r in valid]
    columns = {name: [getattr(e, name) for e in events] for name in FEATURES}
    expected = np.round(model.predict_columns(columns), 2)
    for (key, value), record, event, price in zip(
        scored.predictions, valid, events, expected, strict=True
    ):
        prediction = decode(PredictionEvent, value, max_bytes=MAX_BYTES)
        assert key == event.listing_id.encode()
        assert prediction.listing_id == event.listing_id
        assert prediction.event_time == event.event_time
        assert prediction.predicted_price == pytest.approx(price, abs=0.006)
        assert prediction.model_version == model.version
        assert prediction.scored_at == NOW
        assert (prediction.source_topic, prediction.source_partition) == ("listings", 2)
        assert prediction.source_offset == record.offset
        # the template writes what the contract's own encoder writes
        assert value == prediction.to_json()

    invalid = [(r, why) for r, why in zip(records, reasons, strict=True) if why]
    assert len(scored.dead_letters) == len(invalid)
    for letter, (record, reason) in zip(scored.dead_letters, invalid, strict=True):
        assert (letter.key, letter.value) == (record.key, record.value)
        headers = dict(letter.headers)
        assert headers[DLQ_REASON].decode() == reason == letter.reason
        assert headers[DLQ_DETAIL]
        assert headers[DLQ_SOURCE_TOPIC] == b"listings"
        assert headers[DLQ_SOURCE_PARTITION] == b"2"
        assert headers[DLQ_SOURCE_OFFSET] == str(record.offset).encode()
        assert headers[DLQ_TIME] == b"2026-11-22T12:00:00Z"
    assert sum(scored.reasons.values()) == len(invalid)


def test_original_headers_stay_on_the_dead_letter(model: LoadedModel) -> None:
    record = FakeRecord(value=b"{", offset=1, headers=(("trace", b"abc"),))
    (letter,) = score_batch([record], model, max_bytes=MAX_BYTES, now=NOW).dead_letters
    assert letter.headers[0] == ("trace", b"abc")
    assert dict(letter.headers)[DLQ_REASON] == b"invalid_json"


class _Fussy:
    """The real model, except that it raises for any batch holding a poisoned row (living area
    4242) and returns NaN for living area 4343: as a model with a bug would."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        self.calls = 0

    @property
    def version(self) -> str:
        return self.model.version

    @property
    def compiled(self) -> bool:
        return self.model.compiled

    @property
    def training_range(self) -> TrainingRange:
        return self.model.training_range

    def predict_columns(
        self, columns: Mapping[str, npt.NDArray[Any] | Sequence[Any]]
    ) -> npt.NDArray[np.float64]:
        self.calls += 1
        area = np.asarray(columns["living_area_sqft"], dtype=np.float64)
        if (area == 4242).any():
            raise ValueError("cannot price 4242 sqft")
        prices = self.model.predict_columns(columns)
        prices[area == 4343] = np.nan
        return prices


def test_model_failures_are_isolated_to_their_rows(model: LoadedModel) -> None:
    poisoned = {5: 4242, 77: 4242, 78: 4343}
    records = [
        FakeRecord(value=orjson.dumps(listing(i, living_area_sqft=poisoned.get(i, 1500))), offset=i)
        for i in range(200)
    ]
    fussy = _Fussy(model)
    scored = score_batch(records, fussy, max_bytes=MAX_BYTES, now=NOW)
    assert len(scored.predictions) == 197
    assert [int(dict(d.headers)[DLQ_SOURCE_OFFSET]) for d in scored.dead_letters] == [5, 77, 78]
    assert {d.reason for d in scored.dead_letters} == {"model_error"}
    assert b"cannot price 4242" in dict(scored.dead_letters[0].headers)[DLQ_DETAIL]
    assert b"nan" in dict(scored.dead_letters[2].headers)[DLQ_DETAIL]
    assert fussy.calls <= 1 + 2 * 2 * 8  # bisection: two bad rows, depth log2(200) < 8
    assert scored.reasons == {"model_error": 3}


def test_predictions_and_features_fold_into_panes(model: LoadedModel) -> None:
    records = [FakeRecord(value=valid_value(i), offset=i) for i in range(35)]
    book = PaneBook(10.0, model.version)
    scored = score_batch(records, model, max_bytes=MAX_BYTES, panes=book, now=NOW)
    panes = book.drain()
    assert [p.events for p in panes] == [10, 10, 10, 5]  # one listing per second
    assert sum(p.sketches.prediction.n for p in panes) == len(scored.predictions)
    first = panes[0]
    assert first.start == datetime(2008, 5, 1, 12, tzinfo=UTC).timestamp()
    assert first.sketches.missing["basement_area_sqft"] == 1  # listing 0: i % 17 == 0
    assert first.sketches.missing["central_air"] == 1  # listing 0: i % 23 == 0
    assert sum(first.sketches.categories["neighbourhood"].values()) == 10
    assert first.sketches.features["living_area_sqft"].n == 10
    assert book.drain() == []


def test_an_empty_batch_scores_nothing(model: LoadedModel) -> None:
    scored = score_batch([], model, max_bytes=MAX_BYTES, now=NOW)
    assert (scored.predictions, scored.dead_letters) == ([], [])


def test_each_prediction_names_its_features_outside_the_training_range(
    model: LoadedModel,
) -> None:
    # Inside the contract's bounds, far outside anything the model was trained on.
    odd: dict[int, dict[str, Any]] = {
        3: {"living_area_sqft": 99_000_000.0},
        4: {"bedrooms": 100, "living_area_sqft": 1.0, "neighbourhood": "Atlantis"},
    }
    records = [
        FakeRecord(value=orjson.dumps(listing(i, **odd.get(i, {}))), offset=i) for i in range(8)
    ]
    book = PaneBook(60.0, model.version)
    scored = score_batch(records, model, max_bytes=MAX_BYTES, panes=book, now=NOW)
    named = {
        p.source_offset: p.out_of_range
        for p in (decode(PredictionEvent, v, max_bytes=MAX_BYTES) for _, v in scored.predictions)
    }
    assert len(named) == 8
    # listing(i) draws its neighbourhood from a list that includes the unseen "Atlantis" (i=5).
    assert named[3] == ("living_area_sqft",)
    assert named[4] == ("living_area_sqft", "bedrooms", "neighbourhood")
    assert named[5] == ("neighbourhood",)
    assert [named[i] for i in (0, 1, 2, 6, 7)] == [()] * 5
    (pane,) = book.drain()
    counts = pane.sketches.out_of_range
    assert counts["living_area_sqft"] == 2
    assert counts["bedrooms"] == 1
    assert sum(counts.values()) == 3  # categories are not counted here: unseen rates say it


def test_listings_from_beyond_the_skew_are_dead_lettered_unpriced_and_not_folded(
    model: LoadedModel,
) -> None:
    def at(i: int, when: str) -> FakeRecord:
        value = orjson.dumps(listing(i, event_time=when))
        return FakeRecord(value=value, offset=i, key=f"k{i}".encode(), headers=(("t", b"x"),))

    skew = 300.0
    records = [
        at(0, "2026-11-22T12:00:00Z"),
        at(1, "2999-01-01T00:00:00Z"),
        at(2, "2026-11-22T12:05:00Z"),  # exactly the skew ahead: accepted
        at(3, "2026-11-22T12:05:01Z"),
        at(4, "2026-11-22T11:59:59.5Z"),
    ]
    book = PaneBook(10.0, model.version)
    scored = score_batch(records, model, max_bytes=MAX_BYTES, panes=book, now=NOW, skew_s=skew)

    offsets = [
        decode(PredictionEvent, v, max_bytes=MAX_BYTES).source_offset for _, v in scored.predictions
    ]
    assert offsets == [0, 2, 4]
    assert scored.reasons == {"future_event_time": 2}
    first, second = scored.dead_letters
    for letter, record in ((first, records[1]), (second, records[3])):
        assert (letter.key, letter.value, letter.reason) == (
            record.key,
            record.value,
            "future_event_time",
        )
        assert letter.headers[0] == ("t", b"x")
        assert dict(letter.headers)[DLQ_REASON] == b"future_event_time"
    detail = dict(first.headers)[DLQ_DETAIL].decode()
    assert "2999-01-01T00:00:00Z" in detail
    assert "2026-11-22T12:00:00Z" in detail  # the scorer's clock
    assert "300 s" in detail
    # Only the three priced listings reached the panes: nothing from the future.
    panes = book.drain()
    assert sum(p.events for p in panes) == 3
    assert max(p.start for p in panes) <= NOW.timestamp() + skew
    # Without a limit (the default) the same batch is priced whole.
    unlimited = score_batch(records, model, max_bytes=MAX_BYTES, now=NOW)
    assert len(unlimited.predictions) == 5
