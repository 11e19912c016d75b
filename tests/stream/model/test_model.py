"""Training, the model card, safe loading and prediction.

Training takes seconds, so it runs once per module (plus once more for the determinism test);
tests that damage a model directory work on a copy.
"""

from __future__ import annotations

import fractions
import hashlib
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson
import pandas as pd
import pytest
import skops.io
from sklearn.metrics import r2_score

from stream.contract.features import FEATURES
from stream.errors import DataError, ModelLoadError
from stream.model import dataset
from stream.model.card import CARD_FILE, MODEL_FILE, PROFILE_FILE, ModelCard
from stream.model.load import load_model
from stream.model.predict import LoadedModel
from stream.model.train import train
from tests.stream.model.columns import sales_with_gaps


class Trained(NamedTuple):
    directory: Path
    card: ModelCard
    steps: list[str]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    directory = tmp_path_factory.mktemp("model") / "nested" / "out"
    steps: list[str] = []
    card = train(directory, progress=steps.append)
    return Trained(directory, card, steps)


@pytest.fixture(scope="module")
def model(trained: Trained) -> LoadedModel:
    return load_model(trained.directory)


@pytest.fixture
def model_copy(trained: Trained, tmp_path: Path) -> Path:
    """A private copy of the trained directory, free to damage."""
    return Path(shutil.copytree(trained.directory, tmp_path / "model"))


def _set_digest(model_dir: Path, name: str) -> None:
    """Make the card agree with whatever ``name`` now holds, as a careful attacker would."""
    card = orjson.loads((model_dir / CARD_FILE).read_bytes())
    card["artifacts"][name] = hashlib.sha256((model_dir / name).read_bytes()).hexdigest()
    (model_dir / CARD_FILE).write_bytes(orjson.dumps(card))


def test_holdout_meets_the_bar(trained: Trained) -> None:
    holdout = trained.card.holdout
    assert holdout.r2 >= 0.85
    assert holdout.mape <= 0.13
    assert 0 < holdout.mae < 25_000
    assert holdout.rows == 1611
    assert (holdout.period.start.year, holdout.period.end.year) == (2008, 2010)


def test_card_describes_the_run(trained: Trained) -> None:
    card = trained.card
    training = card.training
    assert training.rows == 1319
    assert training.reference_predictions == 1319
    assert (training.period.start.year, training.period.end.year) == (2006, 2007)
    assert (*card.features.numeric, *card.features.categorical) == FEATURES
    assert card.target.fit_on == "log(sale_price)"
    assert card.data.sha256 == dataset.data_sha256()
    assert set(card.libraries) >= {"scikit-learn", "numpy", "skops", "datasketches"}
    assert card.trained_at.utcoffset() is not None
    for name in (MODEL_FILE, PROFILE_FILE):
        digest = hashlib.sha256((trained.directory / name).read_bytes()).hexdigest()
        assert card.artifacts[name] == digest
    on_disk = ModelCard.model_validate_json((trained.directory / CARD_FILE).read_bytes())
    assert on_disk == card
    assert trained.steps[-1].startswith(f"writing model {card.model_version}")
    assert not list(trained.directory.glob("*.tmp")), "temporary files were left behind"


def test_training_is_deterministic(trained: Trained, tmp_path: Path) -> None:
    again = train(tmp_path / "again")
    assert again.model_version == trained.card.model_version
    assert again.holdout == trained.card.holdout
    # KLL compaction flips a coin the library seeds itself, so sketch bytes may differ between
    # runs; everything else in the profile (bin edges, frequencies, rates, counts) may not.
    assert _without_sketches(tmp_path / "again") == _without_sketches(trained.directory)


def _without_sketches(model_dir: Path) -> dict[str, Any]:
    profile: dict[str, Any] = orjson.loads((model_dir / PROFILE_FILE).read_bytes())
    for reference in [*profile["numeric"].values(), profile["prediction"], profile["target"]]:
        assert reference.pop("sketch")
    return profile


def test_profile_covers_every_feature_and_the_predictions(model: LoadedModel) -> None:
    profile = model.profile
    assert profile.model_version == model.version
    assert profile.numeric["living_area_sqft"].sketch.n == 1319
    assert len(profile.numeric["living_area_sqft"].bin_edges) == 9
    # A count gets a bin per value it took in training (no house had 7 bedrooms), not its
    # lumped deciles.
    assert profile.numeric["bedrooms"].bin_edges == (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)
    assert profile.numeric["half_baths"].bin_edges == (0.0, 1.0, 2.0)
    assert profile.numeric["bedrooms"].fractions[0] == 0.0  # (-inf, 0): nothing below 0
    assert sum(profile.numeric["bedrooms"].fractions) == pytest.approx(1.0)
    assert sum(profile.categorical["neighbourhood"].frequencies.values()) == pytest.approx(1.0)
    assert profile.prediction.sketch.n == model.card.training.reference_predictions
    median = float(profile.prediction.sketch.quantiles([0.5])[0])
    assert 100_000 < median < 250_000


def test_loaded_model_reproduces_the_card(model: LoadedModel) -> None:
    holdout = dataset.holdout_rows(dataset.load_ames())
    predicted = model.predict(holdout)
    assert predicted.dtype == np.float64
    assert r2_score(holdout["sale_price"], predicted) == pytest.approx(model.card.holdout.r2)


def test_predict_accepts_missing_values_and_unseen_categories(model: LoadedModel) -> None:
    rows = dataset.holdout_rows(dataset.load_ames()).head(4)
    columns: dict[str, list[Any]] = {name: rows[name].tolist() for name in FEATURES}
    columns["neighbourhood"][0] = "Atlantis"
    columns["living_area_sqft"][1] = None
    columns["zoning"][2] = None
    columns["latitude"][2] = math.nan
    for name in FEATURES:
        columns[name][3] = None
    prices = model.predict_columns(columns)
    assert prices.shape == (4,)
    assert np.isfinite(prices).all()
    assert (prices > 10_000).all()
    # A changed feature changes the price: the missing values really reached the model.
    assert not np.array_equal(prices[:3], model.predict(rows)[:3])


def test_the_scorers_column_path_gives_the_pipelines_prices(model: LoadedModel) -> None:
    columns = sales_with_gaps()
    by_columns = model.predict_columns(columns)
    by_pipeline = model.predict(pd.DataFrame(columns))
    np.testing.assert_allclose(by_columns, by_pipeline, rtol=1e-12)


def test_predict_columns_of_an_empty_batch(model: LoadedModel) -> None:
    assert model.predict_columns({name: [] for name in FEATURES}).shape == (0,)


def test_predict_columns_rejects_bad_input(model: LoadedModel) -> None:
    columns: dict[str, list[Any]] = {name: [1.0] for name in FEATURES}
    with pytest.raises(DataError, match="bedrooms"):
        model.predict_columns({k: v for k, v in columns.items() if k != "bedrooms"})
    with pytest.raises(DataError, match="'rooms' must be numeric"):
        model.predict_columns({**columns, "rooms": ["many"]})


def _refusal(model_dir: Path) -> str:
    with pytest.raises(ModelLoadError) as caught:
        load_model(model_dir)
    message = str(caught.value)
    assert f"appraise train --out {model_dir}" in message
    return message


def test_refuses_a_missing_directory(tmp_path: Path) -> None:
    assert "does not exist" in _refusal(tmp_path / "nowhere")


@pytest.mark.parametrize("name", [CARD_FILE, MODEL_FILE, PROFILE_FILE])
def test_refuses_a_missing_file(model_copy: Path, name: str) -> None:
    (model_copy / name).unlink()
    message = _refusal(model_copy)
    assert f"{model_copy / name} is missing" in message


def test_refuses_a_flipped_byte(model_copy: Path) -> None:
    data = bytearray((model_copy / MODEL_FILE).read_bytes())
    data[len(data) // 2] ^= 0x01
    (model_copy / MODEL_FILE).write_bytes(bytes(data))
    assert "tampered with or partly written" in _refusal(model_copy)


def test_refuses_untrusted_types_even_with_a_matching_digest(model_copy: Path) -> None:
    skops.io.dump({"payload": fractions.Fraction(1, 3)}, model_copy / MODEL_FILE)
    _set_digest(model_copy, MODEL_FILE)
    message = _refusal(model_copy)
    assert "not on the allowlist: ['fractions.Fraction']" in message
    assert "tampered" not in message


def test_refuses_a_corrupt_archive_with_a_matching_digest(model_copy: Path) -> None:
    (model_copy / MODEL_FILE).write_bytes(b"PK\x03\x04 this is not a zip archive")
    _set_digest(model_copy, MODEL_FILE)
    assert "is not a readable skops archive" in _refusal(model_copy)


Damage = Callable[[dict[str, Any]], object]


@pytest.mark.parametrize(
    ("text", "damage"),
    [
        (b"{ this is not json", None),
        (None, lambda card: card.pop("holdout")),
        (None, lambda card: card.update(model_version="not-a-hash")),
    ],
    ids=["not-json", "missing-field", "bad-version"],
)
def test_refuses_an_invalid_card(
    model_copy: Path, text: bytes | None, damage: Damage | None
) -> None:
    if damage is not None:
        card = orjson.loads((model_copy / CARD_FILE).read_bytes())
        damage(card)
        text = orjson.dumps(card)
    assert text is not None
    (model_copy / CARD_FILE).write_bytes(text)
    assert "is not a valid model card" in _refusal(model_copy)
