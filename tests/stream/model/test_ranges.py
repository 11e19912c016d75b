"""The training range: what the model saw per feature, and which rows lie outside it."""

from __future__ import annotations

import numpy as np

from stream.contract.features import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from stream.model import dataset
from stream.model.predict import LoadedModel
from stream.model.ranges import TrainingRange, names_per_row


def test_the_range_is_the_training_data_s(model: LoadedModel) -> None:
    training = dataset.training_rows(dataset.load_ames())
    found = model.training_range
    for name in NUMERIC_FEATURES:
        assert found.numeric[name] == (training[name].min(), training[name].max()), name
    for name in CATEGORICAL_FEATURES:
        assert found.categories[name] == frozenset(training[name].dropna().astype(str)), name
    assert TrainingRange.of(model.profile) == found


def test_rows_outside_are_flagged_per_feature(model: LoadedModel) -> None:
    low, high = model.training_range.numeric["living_area_sqft"]
    numeric = {name: np.full(4, model.training_range.numeric[name][0]) for name in NUMERIC_FEATURES}
    numeric["living_area_sqft"] = np.array([low, high, high + 1, np.nan])
    categorical: dict[str, list[str | None]] = {
        name: [sorted(model.training_range.categories[name])[0]] * 4
        for name in CATEGORICAL_FEATURES
    }
    categorical["zoning"] = [None, "Atlantis", categorical["zoning"][0], None]
    flags = model.training_range.outside(numeric, categorical)
    assert flags["living_area_sqft"].tolist() == [False, False, True, False]  # NaN: missing
    assert flags["zoning"].tolist() == [False, True, False, False]  # None: missing
    assert not flags["bedrooms"].any()
    assert names_per_row(flags, 4) == {1: ["zoning"], 2: ["living_area_sqft"]}
