"""The bundled data set: shape, types, time order, the split, and the extractor's safety."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
from importlib import resources

import numpy as np
import pandas as pd
import pytest

from stream.contract.features import CATEGORICAL_FEATURES, FEATURES, NUMERIC_FEATURES, TARGET
from stream.model import dataset
from stream.model.data import extract_ames


@pytest.fixture(scope="module")
def ames() -> pd.DataFrame:
    return dataset.load_ames()


def test_columns_and_types(ames: pd.DataFrame) -> None:
    assert list(ames.columns) == ["listing_id", "sold_at", TARGET, *FEATURES]
    assert len(ames) == 2930
    assert str(ames["sold_at"].dt.tz) == "UTC"
    for name in (*NUMERIC_FEATURES, TARGET):
        assert ames[name].dtype == np.float64, name
    for name in CATEGORICAL_FEATURES:
        assert all(isinstance(v, str) for v in ames[name]), name
    assert ames["central_air"].isin(["Y", "N"]).all()
    assert not ames[list(FEATURES)].isna().any().any()


def test_ids_are_unique_and_rows_in_time_order(ames: pd.DataFrame) -> None:
    assert ames["listing_id"].is_unique
    assert ames["listing_id"].str.fullmatch(r"ames-\d{4}").all()
    keys = list(zip(ames["sold_at"], ames["listing_id"], strict=True))
    assert keys == sorted(keys)


def test_sales_sit_at_noon_within_their_month(ames: pd.DataFrame) -> None:
    sold = ames["sold_at"]
    assert (sold.dt.hour == 12).all()
    assert ((sold.dt.minute == 0) & (sold.dt.second == 0)).all()
    # Spread over the month: every month with more sales than days uses its first and last week.
    by_month = ames.groupby([sold.dt.year, sold.dt.month])["sold_at"]
    busy = by_month.size() > 31
    assert busy.any()
    assert (by_month.min()[busy].dt.day == 1).all()
    assert (by_month.max()[busy].dt.day >= 24).all()


def test_split_by_year(ames: pd.DataFrame) -> None:
    training = dataset.training_rows(ames)
    holdout = dataset.holdout_rows(ames)
    assert set(training["sold_at"].dt.year) == {2006, 2007}
    assert set(holdout["sold_at"].dt.year) == {2008, 2009, 2010}
    assert len(training) + len(holdout) == len(ames)
    assert holdout["sold_at"].is_monotonic_increasing
    assert training["sold_at"].max() < holdout["sold_at"].min()


def test_file_matches_the_checksum_in_provenance() -> None:
    provenance = (
        resources.files("stream.model").joinpath("data", "PROVENANCE.md").read_text("utf-8")
    )
    recorded = re.findall(r"\b([0-9a-f]{64})\s+ames\.csv\.gz", provenance)
    assert recorded == [hashlib.sha256(dataset.data_bytes()).hexdigest()]
    assert recorded == [dataset.data_sha256()]


def test_sale_times_spread_a_month_evenly() -> None:
    year = pd.Series([2007] * 4 + [2008])
    month = pd.Series([2] * 4 + [2])
    times = extract_ames.sale_times(year, month)
    # February 2007 has 28 days: four sales land on days 1, 8, 15, 22; leap-year 2008 is apart.
    assert list(times) == [
        "2007-02-01T12:00:00Z",
        "2007-02-08T12:00:00Z",
        "2007-02-15T12:00:00Z",
        "2007-02-22T12:00:00Z",
        "2008-02-01T12:00:00Z",
    ]


def test_restricted_unpickler_refuses_other_globals() -> None:
    payload = pickle.dumps(os.getcwd)
    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        extract_ames._RestrictedUnpickler(io.BytesIO(payload)).load()


def test_restricted_unpickler_refuses_a_reduce_to_eval() -> None:
    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (eval, ("1 + 1",))

    with pytest.raises(pickle.UnpicklingError, match=r"builtins\.eval"):
        extract_ames._RestrictedUnpickler(io.BytesIO(pickle.dumps(Exploit()))).load()
