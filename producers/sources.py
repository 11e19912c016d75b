"""Where listings come from: the bundled hold-out sales, a JSONL file, or standard input.

A source yields ``Draft``s: a listing as a JSON-ready dict (the contract's field names and
types) and, where known, the price it really sold for, so sale labels can follow it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson
import pandas as pd

from stream.contract.events import INTEGER_FIELDS
from stream.contract.features import FEATURES, TARGET
from stream.model.dataset import holdout_rows, load_ames


@dataclass(slots=True)
class Draft:
    """One listing on its way to the topic.

    ``listing`` is the event as a dict, or ``None`` when ``raw`` holds bytes that are not a
    JSON object (passed through untouched: the scorer decides what they are worth). ``key`` is
    the record key, the listing id where there is one.
    """

    listing: dict[str, Any] | None
    raw: bytes | None = None
    sale_price: float | None = None
    key: bytes | None = None

    @classmethod
    def of(cls, listing: dict[str, Any], sale_price: float | None = None) -> Draft:
        """A draft of a listing dict, keyed by its ``listing_id`` when that is a string."""
        listing_id = listing.get("listing_id")
        key = listing_id.encode() if isinstance(listing_id, str) else None
        return cls(listing=listing, sale_price=sale_price, key=key)


def frame_to_drafts(frame: pd.DataFrame) -> list[Draft]:
    """Turn rows of the bundled data set into drafts, column by column (no per-row pandas)."""
    columns: dict[str, list[Any]] = {"listing_id": frame["listing_id"].astype(str).tolist()}
    columns["event_time"] = frame["sold_at"].dt.to_pydatetime().tolist()
    for name in FEATURES:
        values = frame[name].tolist()
        if name in INTEGER_FIELDS:
            values = [None if _missing(v) else int(v) for v in values]
        else:
            values = [None if _missing(v) else v for v in values]
        columns[name] = values
    prices = frame[TARGET].astype(float).tolist()
    names = list(columns)
    rows = zip(*(columns[name] for name in names), strict=True)
    return [
        Draft.of(dict(zip(names, row, strict=True)), sale_price=price)
        for row, price in zip(rows, prices, strict=True)
    ]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def holdout_drafts() -> list[Draft]:
    """The 2008-2010 sales in time order: the stream a good monitor stays quiet on."""
    return frame_to_drafts(holdout_rows(load_ames()))


def jsonl_drafts(lines: Iterable[bytes]) -> Iterator[Draft]:
    """One draft per non-blank line. A line that is not a JSON object is passed on as raw bytes,
    so malformed input reaches the scorer (and its dead-letter topic) exactly as written."""
    for line in lines:
        stripped = line.strip()
        if not stripped:
            continue
        try:
            parsed = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            yield Draft(listing=None, raw=stripped)
            continue
        if isinstance(parsed, dict):
            yield Draft.of(parsed)
        else:
            yield Draft(listing=None, raw=stripped)


def read_lines(stream: IO[bytes]) -> Iterator[bytes]:
    """The lines of a binary stream (standard input), read lazily."""
    yield from stream


def read_file_lines(path: Path) -> Iterator[bytes]:
    """The lines of a file, read lazily; the file is closed when the lines run out."""
    with path.open("rb") as stream:
        yield from stream


def repeat(source: Iterable[Draft]) -> Iterator[Draft]:
    """``source`` over and over, lazily: the first pass is yielded as it is read (a stdin stream
    starts at once), later passes from memory. An empty source yields nothing."""
    cached = []
    for draft in source:
        cached.append(draft)
        yield draft
    while cached:
        yield from cached
