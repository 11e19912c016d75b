"""Scoring one batch of records, without Kafka: decode, predict once, build what to produce.

Pure apart from the clock passed in, so the whole contract (one prediction per valid record, one
dead letter per invalid one with its original bytes, model failures isolated to their rows) is
unit-tested without a broker.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import orjson

from consumers.decode import DecodedBatch, decode_batch
from consumers.panes import PaneBook
from stream.contract.events import MAX_PRICE
from stream.contract.features import NUMERIC_FEATURES
from stream.contract.reasons import (
    DLQ_DETAIL,
    DLQ_REASON,
    DLQ_SOURCE_OFFSET,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_TOPIC,
    DLQ_TIME,
    MAX_DETAIL_CHARS,
    Reason,
)
from stream.contract.times import rfc3339
from stream.model.ranges import TrainingRange, names_per_row

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
Headers = list[tuple[str, bytes]]


class RecordLike(Protocol):
    """The attributes of an aiokafka ``ConsumerRecord`` scoring reads."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


class Predictor(Protocol):
    """What scoring needs of a model (``stream.model.LoadedModel`` fits)."""

    @property
    def version(self) -> str: ...

    @property
    def compiled(self) -> bool:
        """Whether predict runs compiled trees (which use no OpenMP threads)."""
        ...

    @property
    def training_range(self) -> TrainingRange:
        """What the model was trained on: each prediction names its features outside it."""
        ...

    def predict_columns(
        self, columns: Mapping[str, npt.NDArray[Any] | Sequence[Any]]
    ) -> FloatArray: ...


@dataclass(slots=True)
class DeadLetter:
    """One record for the dead-letter topic: the original key and value, untouched."""

    key: bytes | None
    value: bytes | None
    headers: Headers
    reason: Reason
    index: int = 0
    """Position of the record in the scored batch."""
    field: str | None = None
    """The offending field, when one field is to blame (the HTTP service's 422 names it)."""
    detail: str = ""
    """What was wrong, as the reason's detail header says."""


@dataclass(slots=True)
class ScoredBatch:
    """What one batch produced: records to send, and figures for the metrics."""

    predictions: list[tuple[bytes, bytes]]
    """(key, value) of each PredictionEvent, in input order."""
    rows: list[int]
    """Position in the batch of each prediction's record."""
    dead_letters: list[DeadLetter]
    prices: FloatArray
    event_seconds: FloatArray
    """event_time of each prediction, Unix seconds."""
    scored_at: float
    """Unix seconds."""
    reasons: Counter[str] = field(default_factory=Counter)


def score_batch(
    records: Sequence[RecordLike],
    model: Predictor,
    *,
    max_bytes: int,
    panes: PaneBook | None = None,
    now: datetime | None = None,
    skew_s: float | None = None,
) -> ScoredBatch:
    """Score ``records``: every valid one gets a prediction, every other one a dead letter.

    A valid row whose event_time is more than ``skew_s`` ahead of ``now`` is dead-lettered
    (reason ``future_event_time``) before anything is predicted: it gets no prediction and is
    not folded into a pane, so it cannot move the stream app's watermark into the future.
    All other valid rows are predicted in one vectorised call. If that call raises, the batch
    is split in halves until the rows that make the model fail are found; only those are
    dead-lettered (reason ``model_error``), as are rows whose prediction is not a finite price
    within the contract's range. Each prediction names its features outside the model's
    training range (``out_of_range``). Predictions, features and out-of-range counts are folded
    into ``panes``.

    Args:
        records: consumer records (any topics and partitions).
        model: the price model.
        max_bytes: the largest accepted value (setting ``max_event_bytes``).
        panes: where to fold the pane partials, if anywhere.
        now: the scoring time (default: the clock), stamped on predictions and dead letters.
        skew_s: how far ahead of ``now`` an event_time may be, in seconds (setting
            ``event_time_skew_s``); None: no limit.
    """
    moment = now or datetime.now(UTC)
    scored_at = moment.timestamp()
    stamp = rfc3339(moment)
    decoded = decode_batch([r.value for r in records], max_bytes=max_bytes)
    dead = [(i, exc.reason, exc.detail, exc.field) for i, exc in decoded.invalid]
    if skew_s is not None and len(decoded):
        # One vectorised comparison per batch; rows from the future are rare.
        ahead = decoded.event_seconds > scored_at + skew_s
        if ahead.any():
            for row in np.flatnonzero(ahead).tolist():
                when = decoded.event_times[row]
                detail = _future_detail(when, float(decoded.event_seconds[row]), moment, skew_s)
                dead.append((int(decoded.index[row]), "future_event_time", detail, "event_time"))
            decoded = _subset(decoded, ~ahead)
    prices, failures = _predict(model, decoded)
    if failures:
        keep = np.ones(len(decoded), dtype=np.bool_)
        for row, detail in failures.items():
            keep[row] = False
            dead.append((int(decoded.index[row]), "model_error", detail, None))
        decoded, prices = _subset(decoded, keep), prices[keep]

    dead.sort(key=lambda entry: entry[0])
    dead_letters = [
        _dead_letter(records, i, reason, detail, field, stamp) for i, reason, detail, field in dead
    ]
    outside = model.training_range.outside(decoded.numeric, decoded.categorical)
    predictions = _prediction_records(
        records, decoded, prices, model.version, stamp, names_per_row(outside, len(decoded))
    )
    if panes is not None:
        panes.fold(
            decoded.event_seconds,
            prices,
            decoded.numeric,
            decoded.categorical,
            {name: outside[name] for name in NUMERIC_FEATURES},
        )
    return ScoredBatch(
        predictions=predictions,
        rows=decoded.index.tolist(),
        dead_letters=dead_letters,
        prices=prices,
        event_seconds=decoded.event_seconds,
        scored_at=scored_at,
        reasons=Counter(entry[1] for entry in dead),
    )


def _columns(decoded: DecodedBatch) -> dict[str, Any]:
    return {**decoded.numeric, **decoded.categorical}


def _predict(model: Predictor, decoded: DecodedBatch) -> tuple[FloatArray, dict[int, str]]:
    """Prices for every valid row, and the rows the model failed on with why."""
    if len(decoded) == 0:
        return np.zeros(0), {}
    failures: dict[int, str] = {}
    prices = np.full(len(decoded), np.nan)
    _predict_range(model, _columns(decoded), 0, len(decoded), prices, failures)
    prices = np.round(prices, 2)  # cents: the price a person reads, and shorter JSON
    bad = ~(np.isfinite(prices) & (prices > 0) & (prices <= MAX_PRICE))
    for row in np.flatnonzero(bad).tolist():
        shown = float(prices[row])
        detail = f"the model predicted {shown!r}, not a price in (0, {MAX_PRICE:g}]"
        failures.setdefault(row, detail)
    return prices, failures


def _predict_range(
    model: Predictor,
    columns: Mapping[str, Any],
    start: int,
    stop: int,
    out: FloatArray,
    failures: dict[int, str],
) -> None:
    """Predict rows ``start:stop`` into ``out``; on failure bisect down to the failing rows."""
    part = columns if (start, stop) == (0, len(out)) else _slice(columns, start, stop)
    try:
        result = np.asarray(model.predict_columns(part), dtype=np.float64)
        if result.shape != (stop - start,):
            raise ValueError(f"the model returned shape {result.shape} for {stop - start} rows")
    # Model code can raise anything on odd input; the row goes to the DLQ, the scorer goes on.
    except Exception as exc:  # noqa: BLE001
        if stop - start == 1:
            failures[start] = f"{type(exc).__name__}: {exc}"[:MAX_DETAIL_CHARS]
            return
        if (start, stop) == (0, len(out)):
            log.warning("predict failed on a batch of %d rows (%r); isolating", stop, exc)
        middle = (start + stop) // 2
        _predict_range(model, columns, start, middle, out, failures)
        _predict_range(model, columns, middle, stop, out, failures)
        return
    out[start:stop] = result


def _slice(columns: Mapping[str, Any], start: int, stop: int) -> dict[str, Any]:
    return {name: column[start:stop] for name, column in columns.items()}


def _subset(decoded: DecodedBatch, keep: npt.NDArray[np.bool_]) -> DecodedBatch:
    rows = np.flatnonzero(keep).tolist()
    return DecodedBatch(
        index=decoded.index[keep],
        listing_ids=[decoded.listing_ids[j] for j in rows],
        event_seconds=decoded.event_seconds[keep],
        event_times=[decoded.event_times[j] for j in rows],
        numeric={name: column[keep] for name, column in decoded.numeric.items()},
        categorical={
            name: [column[j] for j in rows] for name, column in decoded.categorical.items()
        },
        invalid=decoded.invalid,
    )


def _prediction_records(
    records: Sequence[RecordLike],
    decoded: DecodedBatch,
    prices: FloatArray,
    model_version: str,
    stamp: str,
    outside: Mapping[int, list[str]],
) -> list[tuple[bytes, bytes]]:
    """PredictionEvent JSON per valid row, built from a template: a dict and orjson.dumps per
    row cost twice as much. Field order and layout are those of ``PredictionEvent.to_json``.
    ``outside`` names the out-of-range features of the rows that have any."""
    if len(decoded) == 0:
        return []
    head = '{"event_time":"'
    middle = f',"model_version":{_json(model_version)},"scored_at":"{stamp}","source_topic":'
    topics = {topic: _json(topic) for topic in {r.topic for r in records}}
    out: list[tuple[bytes, bytes]] = []
    append = out.append
    rows = zip(
        decoded.index.tolist(),
        decoded.listing_ids,
        decoded.event_times,
        prices.tolist(),
        strict=True,
    )
    for j, (i, lid, when, price) in enumerate(rows):
        record = records[i]
        names = outside.get(j)
        value = (
            f'{head}{when}","listing_id":{_json(lid)},"predicted_price":{price!r}{middle}'
            f'{topics[record.topic]},"source_partition":{record.partition},'
            f'"source_offset":{record.offset},"out_of_range":'
            f"{'[]' if names is None else orjson.dumps(names).decode()}}}"
        )
        append((lid.encode(), value.encode()))
    return out


def _json(text: str) -> str:
    return orjson.dumps(text).decode()


def _future_detail(when: str, seconds: float, now: datetime, skew_s: float) -> str:
    ahead = seconds - now.timestamp()
    return (
        f"event_time {when} is {ahead:,.0f} s ahead of the scorer's clock {rfc3339(now)} "
        f"(allowed skew {skew_s:g} s, setting event_time_skew_s)"
    )


def _dead_letter(
    records: Sequence[RecordLike],
    index: int,
    reason: Reason,
    detail: str,
    field: str | None,
    stamp: str,
) -> DeadLetter:
    record = records[index]
    headers: Headers = list(record.headers or ())
    headers += [
        (DLQ_REASON, reason.encode()),
        (DLQ_DETAIL, detail.encode("utf-8", errors="replace")),
        (DLQ_SOURCE_TOPIC, record.topic.encode()),
        (DLQ_SOURCE_PARTITION, str(record.partition).encode()),
        (DLQ_SOURCE_OFFSET, str(record.offset).encode()),
        (DLQ_TIME, stamp.encode()),
    ]
    return DeadLetter(record.key, record.value, headers, reason, index, field, detail)
