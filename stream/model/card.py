"""The model directory's files and its card.

A model directory holds three files, written by :func:`stream.model.train.train` and checked by
:func:`stream.model.load.load_model`:

``model.skops``
    the scikit-learn pipeline, persisted with skops (no pickle: loading cannot run code, and
    only the types in ``stream.model.pipeline.TRUSTED_TYPES`` beyond skops' defaults are
    accepted);
``reference_profile.json``
    the :class:`~stream.model.profile.ReferenceProfile` drift is measured against;
``model_card.json``
    the :class:`ModelCard`: version, data, hold-out figures, library versions, and the sha256 of
    the two other files, so a tampered or half-copied directory is refused.
"""

from __future__ import annotations

import hashlib
from typing import Final, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from stream.contract.features import TARGET

MODEL_FILE: Final = "model.skops"
PROFILE_FILE: Final = "reference_profile.json"
CARD_FILE: Final = "model_card.json"


class _Card(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FeatureList(_Card):
    """The features the model was trained on, in the model's order."""

    numeric: list[str]
    categorical: list[str]


class TargetInfo(_Card):
    """What the regressor predicts and how that becomes a price."""

    column: str = TARGET
    fit_on: Literal["log(sale_price)"] = "log(sale_price)"
    inverse: Literal["exp(prediction)"] = "exp(prediction)"
    unit: Literal["USD"] = "USD"


class Period(_Card):
    """First and last sale time in a set of rows (UTC)."""

    start: AwareDatetime
    end: AwareDatetime


class TrainingInfo(_Card):
    """The rows the model learned from."""

    rows: int = Field(description="sales of the training years, all used to fit")
    period: Period
    reference_predictions: int = Field(
        description="out-of-fold predictions sketched for the reference profile"
    )
    folds: int
    split_seed: int
    seconds: float = Field(description="wall time of fit + evaluation")


class HoldoutInfo(_Card):
    """Figures on the sales outside the training years (2008-2010 by default): r2 and mae on
    price (US dollars), mape as a fraction."""

    r2: float
    mae: float
    mape: float
    rows: int
    period: Period


class DataInfo(_Card):
    """The bundled data file the model was trained from."""

    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ModelCard(_Card):
    """``model_card.json``: what the model is, what it was trained on, and how well it does."""

    format: Literal["appraise-model-card/1"] = "appraise-model-card/1"
    model_version: str = Field(pattern=r"^[0-9a-f]{12}$")
    trained_at: AwareDatetime
    features: FeatureList
    target: TargetInfo
    training: TrainingInfo
    holdout: HoldoutInfo
    hyperparameters: dict[str, int | float]
    data: DataInfo
    libraries: dict[str, str]
    artifacts: dict[str, str] = Field(description="file name -> sha256 hex")


def card_bytes(card: ModelCard) -> bytes:
    """The card as indented JSON bytes."""
    return orjson.dumps(card.model_dump(mode="json"), option=orjson.OPT_INDENT_2)


def sha256(data: bytes) -> str:
    """Hex sha256 of ``data``: how the card names each file's content."""
    return hashlib.sha256(data).hexdigest()
