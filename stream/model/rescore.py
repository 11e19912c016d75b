"""``appraise replay --rescore``: price a range of listings with the champion and a candidate
model and compare their prices, and their realised errors where sale labels exist."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from stream.contract.decoding import decode, decode_listing
from stream.contract.events import SaleEvent
from stream.contract.features import FEATURES
from stream.contract.reasons import InvalidEvent
from stream.contract.windows import QUANTILES
from stream.errors import DataError
from stream.kafka.ranges import RangeProgress, TopicRange, read_range, records_in
from stream.kafka.topics import topic_partitions
from stream.model.load import load_model
from stream.model.predict import LoadedModel
from stream.settings import Settings


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
    selection: TopicRange,
    candidate_dir: Path,
    *,
    champion_dir: Path | None = None,
    move_threshold: float = 0.10,
    stop: asyncio.Event | None = None,
    on_progress: Callable[[RangeProgress], None] | None = None,
) -> Comparison:
    """Score the selected listings with the champion (the model in ``settings.model_dir``
    unless ``champion_dir``) and with the candidate, and compare; realised errors use the sale
    labels on the sales topic where there are any."""
    candidate = load_model(candidate_dir)  # first: the directory the user just named
    champion = load_model(champion_dir or settings.model_dir)
    progress = RangeProgress()
    ids: list[str] = []
    champion_prices: list[npt.NDArray[np.float64]] = []
    candidate_prices: list[npt.NDArray[np.float64]] = []
    invalid = 0
    async for batch in records_in(settings.kafka, selection, progress, stop):
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
