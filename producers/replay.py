"""``appraise replay``: read a range of a topic again, to re-publish it or to score it with a
candidate model and compare.

A range is offsets (``--from-offset``/``--until-offset``, per partition, end exclusive) and/or
record time (``--from``/``--until``: RFC 3339 or relative to now like ``-2h``; start inclusive,
end exclusive). Exactly the records inside it are read, across all partitions (or the ones
named): time is matched on each record's own timestamp, never on the broker's guess.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from aiokafka import ConsumerRecord

from stream.errors import DataError
from stream.events import InvalidEvent, SaleEvent, decode, decode_listing, unix_rfc3339
from stream.features import FEATURES
from stream.kafka import RangeBounds, make_producer, read_range, topic_partitions
from stream.model import LoadedModel, load_model
from stream.settings import Settings

_RELATIVE = re.compile(r"^-(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}
QUANTILES = (0.1, 0.5, 0.9, 0.99)


def parse_time(text: str, *, now: datetime | None = None) -> int:
    """Milliseconds since the epoch for ``now``, ``-90s``/``-15m``/``-2h``/``-1d`` or RFC 3339
    (a time without a zone is refused: it would silently mean the machine's zone)."""
    now = now or datetime.now(UTC)
    if text == "now":
        return int(now.timestamp() * 1000)
    relative = _RELATIVE.match(text)
    if relative:
        seconds = float(relative.group(1)) * _UNIT_S[relative.group(2)]
        return int((now - timedelta(seconds=seconds)).timestamp() * 1000)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise DataError(
            f"{text!r} is not a time: expected RFC 3339 with a zone (2026-11-22T10:00:00Z), "
            "'now', or relative like -90s, -15m, -2h, -1d"
        )
    return int(when.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class ReplayRange:
    """Which records to read: a topic, optionally some partitions, offsets and a time span."""

    topic: str
    partitions: Sequence[int] = ()
    start_ms: int | None = None
    end_ms: int | None = None
    start_offset: int | None = None
    end_offset: int | None = None

    def describe(self) -> str:
        """The range in words, for messages."""
        parts = [f"topic {self.topic!r}"]
        if self.partitions:
            parts.append(f"partitions {', '.join(map(str, self.partitions))}")
        if self.start_offset is not None or self.end_offset is not None:
            parts.append(f"offsets {self.start_offset or 0} to {self.end_offset or 'the end'}")
        if self.start_ms is not None or self.end_ms is not None:
            start = "the beginning" if self.start_ms is None else _iso(self.start_ms)
            end = "now" if self.end_ms is None else _iso(self.end_ms)
            parts.append(f"time {start} to {end}")
        return ", ".join(parts)


def _iso(ms: int) -> str:
    return unix_rfc3339(ms / 1000)


@dataclass(slots=True)
class ReplayProgress:
    """How far a replay got: records handled, the range's size, the next offset per partition."""

    done: int = 0
    total: int | None = None
    next_offsets: dict[int, int] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def where(self) -> str:
        """``partition:offset`` pairs: where to start again to continue."""
        return ", ".join(f"{p}:{o}" for p, o in sorted(self.next_offsets.items())) or "nowhere"


async def _records(
    settings: Settings,
    selection: ReplayRange,
    progress: ReplayProgress,
    stop: asyncio.Event | None,
) -> AsyncIterator[list[ConsumerRecord]]:
    """The selected records, batch by batch; DataError when the range holds none."""
    tps = await topic_partitions(settings.kafka, selection.topic)
    if selection.partitions:
        unknown = sorted(set(selection.partitions) - {tp.partition for tp in tps})
        if unknown:
            raise DataError(f"{selection.topic!r} has no partition {unknown}")
        tps = [tp for tp in tps if tp.partition in selection.partitions]

    def bounds(found: RangeBounds) -> None:
        progress.total = found.records if selection.start_ms is None else None

    batches = read_range(
        settings.kafka,
        tps,
        start_ms=selection.start_ms,
        end_ms=selection.end_ms,
        start_offsets=None
        if selection.start_offset is None
        else dict.fromkeys(tps, selection.start_offset),
        end_offsets=None
        if selection.end_offset is None
        else dict.fromkeys(tps, selection.end_offset),
        on_bounds=bounds,
    )
    seen = False
    async with contextlib.aclosing(batches) as reading:
        async for batch in reading:
            seen = True
            yield batch
            if stop is not None and stop.is_set():
                return
    if not seen:
        raise DataError(f"no records in {selection.describe()}")


# --- re-publish --------------------------------------------------------------------------------


async def republish(
    settings: Settings,
    selection: ReplayRange,
    to_topic: str,
    *,
    speed: float | None,
    stop: asyncio.Event | None = None,
    on_progress: Callable[[ReplayProgress], None] | None = None,
) -> ReplayProgress:
    """Publish the selected records to ``to_topic`` with key, headers and timestamp kept;
    paced as they happened divided by ``speed`` (None: as fast as possible).

    Each batch is acknowledged before the next is read, so when stopped, everything up to
    :attr:`ReplayProgress.next_offsets` was written and nothing after it.
    """
    if to_topic == selection.topic:
        raise DataError(f"--to {to_topic!r} is the topic being read: choose another")
    progress = ReplayProgress()
    producer = make_producer(settings.kafka)
    await producer.start()
    first: tuple[int, float] | None = None  # (record timestamp ms, wall clock s) of the first
    try:
        async for batch in _records(settings, selection, progress, stop):
            for record in sorted(batch, key=lambda r: r.timestamp) if speed else batch:
                if speed is not None:
                    first = first or (record.timestamp, time.monotonic())
                    due = first[1] + (record.timestamp - first[0]) / 1000 / speed
                    if await _stopped_within(stop, due - time.monotonic()):
                        break
                await _send(producer, to_topic, record, progress)
            await producer.flush()
            if on_progress is not None:
                on_progress(progress)
            if stop is not None and stop.is_set():
                break
    finally:
        await producer.stop()
    return progress


async def _send(
    producer: Any, topic: str, record: ConsumerRecord, progress: ReplayProgress
) -> None:
    await producer.send(
        topic,
        value=record.value,
        key=record.key,
        headers=list(record.headers or ()),
        timestamp_ms=record.timestamp,
    )
    progress.done += 1
    progress.next_offsets[record.partition] = record.offset + 1


async def _stopped_within(stop: asyncio.Event | None, seconds: float) -> bool:
    if seconds <= 0:
        return stop is not None and stop.is_set()
    if stop is None:
        await asyncio.sleep(seconds)
        return False
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    return stop.is_set()


# --- rescore -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelFigures:
    """One model's prices on the replayed listings."""

    version: str
    quantiles: dict[str, float]
    mae: float | None
    mape: float | None


@dataclass(frozen=True, slots=True)
class Comparison:
    """Champion against candidate on the same listings (what ``--rescore`` reports)."""

    range: str
    records: int
    scored: int
    invalid: int
    champion: ModelFigures
    candidate: ModelFigures
    mean_abs_diff: float
    p95_abs_diff: float
    move_threshold: float
    moved_share: float
    labelled: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what ``--json`` prints)."""
        return asdict(self)


async def rescore(
    settings: Settings,
    selection: ReplayRange,
    candidate_dir: Path,
    *,
    champion_dir: Path | None = None,
    move_threshold: float = 0.10,
    stop: asyncio.Event | None = None,
    on_progress: Callable[[ReplayProgress], None] | None = None,
) -> Comparison:
    """Score the selected listings with the champion (the model in ``settings.model_dir``
    unless ``champion_dir``) and with the candidate, and compare; realised errors use the sale
    labels on the sales topic where there are any."""
    candidate = load_model(candidate_dir)  # first: the directory the user just named
    champion = load_model(champion_dir or settings.model_dir)
    progress = ReplayProgress()
    ids: list[str] = []
    champion_prices: list[npt.NDArray[np.float64]] = []
    candidate_prices: list[npt.NDArray[np.float64]] = []
    invalid = 0
    async for batch in _records(settings, selection, progress, stop):
        columns: dict[str, list[Any]] = {name: [] for name in FEATURES}
        for record in batch:
            progress.done += 1
            progress.next_offsets[record.partition] = record.offset + 1
            try:
                event = decode_listing(record.value, max_bytes=settings.max_event_bytes)
            except InvalidEvent:
                invalid += 1
                continue
            ids.append(event.listing_id)
            for name in FEATURES:
                columns[name].append(getattr(event, name))
        if columns[FEATURES[0]]:
            champion_prices.append(champion.predict_columns(columns))
            candidate_prices.append(candidate.predict_columns(columns))
        if on_progress is not None:
            on_progress(progress)
    if not ids:
        raise DataError(f"no valid listings to score in {selection.describe()}")
    sales = await _sale_prices(settings)
    return compare(
        selection.describe(),
        progress.done,
        invalid,
        ids,
        (champion, np.concatenate(champion_prices)),
        (candidate, np.concatenate(candidate_prices)),
        sales,
        move_threshold,
    )


def compare(
    what: str,
    records: int,
    invalid: int,
    ids: Sequence[str],
    champion: tuple[LoadedModel, npt.NDArray[np.float64]],
    candidate: tuple[LoadedModel, npt.NDArray[np.float64]],
    sales: dict[str, float],
    move_threshold: float,
) -> Comparison:
    """The comparison of two models' prices for the same listings (pure: no broker)."""
    old, new = champion[1], candidate[1]
    diff = np.abs(new - old)
    actual = np.array([sales.get(i, np.nan) for i in ids])
    labelled = ~np.isnan(actual)
    return Comparison(
        range=what,
        records=records,
        scored=len(ids),
        invalid=invalid,
        champion=_figures(champion[0], old, actual, labelled),
        candidate=_figures(candidate[0], new, actual, labelled),
        mean_abs_diff=float(diff.mean()),
        p95_abs_diff=float(np.quantile(diff, 0.95)),
        move_threshold=move_threshold,
        moved_share=float(np.mean(diff > move_threshold * old)),
        labelled=int(labelled.sum()),
    )


def _figures(
    model: LoadedModel,
    prices: npt.NDArray[np.float64],
    actual: npt.NDArray[np.float64],
    labelled: npt.NDArray[np.bool_],
) -> ModelFigures:
    quantiles = dict(
        zip((f"p{round(q * 100)}" for q in QUANTILES), np.quantile(prices, QUANTILES), strict=True)
    )
    if not labelled.any():
        return ModelFigures(model.version, {k: float(v) for k, v in quantiles.items()}, None, None)
    errors = np.abs(prices[labelled] - actual[labelled])
    return ModelFigures(
        model.version,
        {k: float(v) for k, v in quantiles.items()},
        mae=float(errors.mean()),
        mape=float(np.mean(errors / actual[labelled])),
    )


async def _sale_prices(settings: Settings) -> dict[str, float]:
    """listing_id → sale price from the whole sales topic (the latest label wins)."""
    prices: dict[str, float] = {}
    try:
        tps = await topic_partitions(settings.kafka, settings.topics.sales)
    except DataError:
        return prices
    async with contextlib.aclosing(read_range(settings.kafka, tps)) as batches:
        async for batch in batches:
            for record in batch:
                with contextlib.suppress(InvalidEvent):
                    sale = decode(SaleEvent, record.value, max_bytes=settings.max_event_bytes)
                    prices[sale.listing_id] = sale.sale_price
    return prices


__all__ = [
    "Comparison",
    "ReplayProgress",
    "ReplayRange",
    "compare",
    "parse_time",
    "republish",
    "rescore",
]
