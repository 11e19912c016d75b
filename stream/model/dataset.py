"""The bundled Ames sales (``stream/model/data/ames.csv.gz``; provenance in
``stream/model/data/PROVENANCE.md``).

The split is by time, as the design fixes it: the model learns from the sales of 2006-2007 and
the stream replays 2008-2010 in time order, real data no one here shaped.
"""

from __future__ import annotations

import hashlib
import io
from importlib import resources
from typing import Final

import pandas as pd

from stream.contract.features import CATEGORICAL_FEATURES, NUMERIC_FEATURES, TARGET

DATA_FILE: Final = "ames.csv.gz"
#: Calendar years (inclusive) of the training sales and of the streamed hold-out sales.
TRAINING_YEARS: Final = (2006, 2007)
HOLDOUT_YEARS: Final = (2008, 2010)


def data_bytes() -> bytes:
    """The bundled file's raw (gzip) bytes, read through importlib.resources."""
    return resources.files("stream.model").joinpath("data", DATA_FILE).read_bytes()


def data_sha256() -> str:
    """sha256 (hex) of the bundled file; the model version depends on it."""
    return hashlib.sha256(data_bytes()).hexdigest()


def load_ames() -> pd.DataFrame:
    """All 2,930 sales, in sale-time order.

    Columns: ``listing_id`` (str), ``sold_at`` (tz-aware UTC datetimes), ``sale_price`` (US
    dollars, float64), every numeric feature as float64, every categorical feature as str.
    """
    dtypes: dict[str, str] = {"listing_id": "str", "sold_at": "str"}
    dtypes.update(dict.fromkeys(NUMERIC_FEATURES, "float64"))
    dtypes.update(dict.fromkeys(CATEGORICAL_FEATURES, "str"))
    dtypes[TARGET] = "float64"
    # keep_default_na=False: the data has no missing values, and a category spelled "NA" or
    # "None" must stay that string instead of silently becoming missing.
    frame = pd.read_csv(
        io.BytesIO(data_bytes()),
        compression="gzip",
        dtype=dtypes,
        keep_default_na=False,
    )
    frame["sold_at"] = pd.to_datetime(frame["sold_at"], utc=True, format="ISO8601")
    return frame


def rows_between(frame: pd.DataFrame, first: int, last: int) -> pd.DataFrame:
    """The sales of the years ``first`` to ``last`` (inclusive), in time order."""
    years = frame["sold_at"].dt.year
    chosen: pd.DataFrame = frame[(years >= first) & (years <= last)]
    return _in_time_order(chosen)


def rows_outside(frame: pd.DataFrame, first: int, last: int) -> pd.DataFrame:
    """The sales of every other year, in time order."""
    years = frame["sold_at"].dt.year
    chosen: pd.DataFrame = frame[(years < first) | (years > last)]
    return _in_time_order(chosen)


def _in_time_order(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["sold_at", "listing_id"], kind="stable").reset_index(drop=True)


def training_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The sales of 2006-2007 (the model's training period), in time order."""
    return rows_between(frame, *TRAINING_YEARS)


def holdout_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The sales of 2008-2010 (streamed and used as the hold-out), in time order."""
    return rows_between(frame, *HOLDOUT_YEARS)
