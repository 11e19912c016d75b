"""Loading a model directory safely: digests checked against the card, skops types against an
allowlist, the profile against the card's version; every refusal names the fix."""

from __future__ import annotations

import zipfile
from pathlib import Path

import orjson
import skops.io
from pydantic import ValidationError
from sklearn.pipeline import Pipeline

from stream.contract.features import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from stream.contract.sketch import SketchError
from stream.errors import ModelLoadError
from stream.model.card import (
    CARD_FILE,
    MODEL_FILE,
    PROFILE_FILE,
    ModelCard,
    sha256,
)
from stream.model.pipeline import (
    TRUSTED_TYPES,
)
from stream.model.predict import LoadedModel
from stream.model.profile import ReferenceProfile


def load_model(model_dir: Path) -> LoadedModel:
    """Load and verify a model directory.

    Raises :class:`ModelLoadError` naming what is wrong and the command that fixes it.
    """
    retrain = f"run `appraise train --out {model_dir}` to write a fresh one"
    if not model_dir.is_dir():
        raise ModelLoadError(f"model directory {model_dir} does not exist; {retrain}")
    for name in (CARD_FILE, MODEL_FILE, PROFILE_FILE):
        if not (model_dir / name).is_file():
            raise ModelLoadError(f"{model_dir / name} is missing; {retrain}")
    card = _read_card(model_dir / CARD_FILE, retrain)
    for name in (MODEL_FILE, PROFILE_FILE):
        expected = card.artifacts.get(name)
        actual = sha256((model_dir / name).read_bytes())
        if expected != actual:
            raise ModelLoadError(
                f"{model_dir / name} has sha256 {actual}, the model card says {expected}: "
                f"the file was tampered with or partly written; {retrain}"
            )
    pipeline = _read_pipeline(model_dir / MODEL_FILE, retrain)
    try:
        profile = ReferenceProfile.from_json((model_dir / PROFILE_FILE).read_bytes())
    except (ValueError, SketchError) as exc:
        raise ModelLoadError(
            f"{model_dir / PROFILE_FILE} is not a valid profile ({exc}); {retrain}"
        ) from exc
    if profile.model_version != card.model_version:
        raise ModelLoadError(
            f"{model_dir / PROFILE_FILE} belongs to model {profile.model_version}, the card to "
            f"{card.model_version}; {retrain}"
        )
    return LoadedModel(pipeline, card, profile)


def _read_card(path: Path, retrain: str) -> ModelCard:
    try:
        card = ModelCard.model_validate(orjson.loads(path.read_bytes()))
    except (orjson.JSONDecodeError, ValidationError) as exc:
        raise ModelLoadError(f"{path} is not a valid model card ({exc}); {retrain}") from exc
    if (tuple(card.features.numeric), tuple(card.features.categorical)) != (
        NUMERIC_FEATURES,
        CATEGORICAL_FEATURES,
    ):
        raise ModelLoadError(
            f"{path} describes a model for other features than this code's; {retrain}"
        )
    return card


def _read_pipeline(path: Path, retrain: str) -> Pipeline:
    try:
        untrusted = skops.io.get_untrusted_types(file=path)
    except (zipfile.BadZipFile, OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"{path} is not a readable skops archive ({exc}); {retrain}") from exc
    refused = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if refused:
        raise ModelLoadError(
            f"{path} contains types that are not on the allowlist: {refused}; it was not written "
            f"by `appraise train`, or by a version that needs other types; {retrain}"
        )
    try:
        pipeline = skops.io.load(path, trusted=list(TRUSTED_TYPES))
    except Exception as exc:  # any failure to rebuild a verified archive means it is corrupt
        raise ModelLoadError(f"{path} could not be loaded ({exc!r}); {retrain}") from exc
    if not isinstance(pipeline, Pipeline):
        raise ModelLoadError(f"{path} holds a {type(pipeline).__name__}, not a Pipeline; {retrain}")
    return pipeline
