"""Fixtures of the stream app's tests: a reference profile of the bundled data and pane records
built with the scorer's own ``PaneBook``, so the tests speak the real pane contract."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from consumers.panes import PaneBook
from stream.aggregate.policy import DriftPolicy
from stream.contract.features import CATEGORICAL_FEATURES, FEATURES, NUMERIC_FEATURES
from stream.contract.panes import encode_pane
from stream.model import dataset
from stream.model.profile import ReferenceProfile, build_profile
from stream.settings import AggregateSettings

VERSION = "0123456789ab"
#: Importances for a profile without a model: living area matters most, bedrooms least.
IMPORTANCE = dict.fromkeys(FEATURES, 0.01) | {"living_area_sqft": 0.25, "bedrooms": 0.001}

#: ``make_panes(rows, prices, event_seconds, pane_seconds=10.0)``: encoded pane records.
PaneMaker = Callable[..., list[bytes]]


@pytest.fixture(scope="session")
def training() -> pd.DataFrame:
    """The 2006-2007 sales of the bundled data."""
    return dataset.training_rows(dataset.load_ames())


@pytest.fixture(scope="session")
def holdout() -> pd.DataFrame:
    """The 2008-2010 sales of the bundled data."""
    return dataset.holdout_rows(dataset.load_ames())


@pytest.fixture(scope="session")
def profile(training: pd.DataFrame) -> ReferenceProfile:
    """A reference profile of the training rows, with their sale prices as "predictions"
    (no model needed: the window code only compares distributions)."""
    prices = training["sale_price"].to_numpy(dtype=np.float64)
    return build_profile(training, prices, model_version=VERSION, importance=IMPORTANCE)


@pytest.fixture(scope="session")
def policy() -> DriftPolicy:
    """The default drift policy (the default windows and budget) with a floor of 200 events."""
    return DriftPolicy.of(AggregateSettings(min_events=200))


def fold_rows(book: PaneBook, rows: pd.DataFrame, event_seconds: np.ndarray) -> None:
    """Fold ``rows`` (with ``sale_price`` standing in for the prediction) into ``book``."""
    book.fold(
        np.asarray(event_seconds, dtype=np.float64),
        rows["sale_price"].to_numpy(dtype=np.float64),
        {name: rows[name].to_numpy(dtype=np.float64) for name in NUMERIC_FEATURES},
        {
            name: [None if pd.isna(v) else str(v) for v in rows[name]]
            for name in CATEGORICAL_FEATURES
        },
    )


@pytest.fixture
def make_panes() -> PaneMaker:
    """Encoded pane records of ``rows`` at ``event_seconds`` (one partial per pane)."""

    def make(
        rows: pd.DataFrame,
        event_seconds: np.ndarray,
        pane_seconds: float = 10.0,
        version: str = VERSION,
    ) -> list[bytes]:
        book = PaneBook(pane_seconds, version)
        fold_rows(book, rows, event_seconds)
        return [encode_pane(pane) for pane in book.drain()]

    return make
