"""Training: fit the pipeline on the training years, price each training sale out of fold and
measure each feature's permutation importance on the validation folds for the reference profile,
evaluate on the other years, and write the model directory atomically."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import orjson
import pandas as pd
import skops.io
from sklearn.base import clone
from sklearn.inspection import permutation_importance
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits  # no py.typed

from stream.contract.features import CATEGORICAL_FEATURES, FEATURES, NUMERIC_FEATURES, TARGET
from stream.errors import DataError
from stream.model import dataset
from stream.model.card import (
    CARD_FILE,
    MODEL_FILE,
    PROFILE_FILE,
    DataInfo,
    FeatureList,
    HoldoutInfo,
    ModelCard,
    Period,
    TargetInfo,
    TrainingInfo,
    card_bytes,
    sha256,
)
from stream.model.pipeline import (
    FOLDS,
    HYPERPARAMETERS,
    SPLIT_SEED,
    build_pipeline,
    feature_frame,
    price_predictor,
)
from stream.model.profile import build_profile

_LIBRARIES: Final = ("scikit-learn", "numpy", "pandas", "skops", "datasketches")
#: Shuffles per feature and fold for the permutation importance: 5 x 5 folds give each feature's
#: importance to about 0.005 of R² here (its spread over seeds), enough to rank the causes.
IMPORTANCE_REPEATS: Final = 5


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries a model file depends on."""
    return {name: metadata.version(name) for name in _LIBRARIES}


def train(
    out_dir: Path,
    *,
    progress: Callable[[str], None] | None = None,
    years: tuple[int, int] = dataset.TRAINING_YEARS,
) -> ModelCard:
    """Train on the sales of ``years`` (inclusive; 2006-2007 by default), evaluate on all other
    sales (2008-2010 by default), write the model directory.

    Deterministic: the same data, code and library versions give the same ``model_version``
    (only ``trained_at`` and the timing differ). ``progress`` gets one line per step.
    """
    say = progress or (lambda _message: None)
    started = time.perf_counter()
    say("loading the bundled Ames data")
    everything = dataset.load_ames()
    training = dataset.rows_between(everything, *years)
    holdout = dataset.rows_outside(everything, *years)
    if training.empty or holdout.empty:
        raise DataError(
            f"training years {years[0]}-{years[1]} leave no sales to train on or to hold out: "
            "the bundled data covers 2006-2010"
        )
    features = feature_frame(training)
    target = np.log(training[TARGET].to_numpy())

    say(f"fitting on {len(training)} sales of {years[0]}-{years[1]}")
    pipeline = build_pipeline()
    # One OpenMP thread: the fit sums gradients in parallel, and a fixed order of additions is
    # what makes the fitted trees identical on every machine. It is also faster on data this
    # small.
    with threadpool_limits(limits=1, user_api="openmp"):
        pipeline.fit(features, target)
        say(
            f"pricing each training sale out of fold ({FOLDS} folds) and measuring each "
            "feature's importance on the validation folds, for the reference"
        )
        out_of_fold, importance = _out_of_fold(pipeline, features, target)
    predict = price_predictor(pipeline)

    say(f"evaluating on {len(holdout)} sales of the other years")
    actual = holdout[TARGET].to_numpy(dtype=np.float64)
    predicted = predict(feature_frame(holdout))
    libraries = library_versions()
    data_sha256 = dataset.data_sha256()
    version = _model_version(predict(feature_frame(everything)), data_sha256, libraries)
    profile = build_profile(training, out_of_fold, model_version=version, importance=importance)
    seconds = time.perf_counter() - started

    say(f"writing model {version} to {out_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    # Deflate: the 400 small tree arrays shrink from ~2.6 MB stored to ~0.5 MB.
    model_bytes = skops.io.dumps(pipeline, compression=zipfile.ZIP_DEFLATED)
    profile_bytes = profile.to_json()
    _write_atomic(out_dir / MODEL_FILE, model_bytes)
    _write_atomic(out_dir / PROFILE_FILE, profile_bytes)
    card = ModelCard(
        model_version=version,
        trained_at=datetime.now(UTC),
        features=FeatureList(
            numeric=list(NUMERIC_FEATURES), categorical=list(CATEGORICAL_FEATURES)
        ),
        target=TargetInfo(),
        training=TrainingInfo(
            rows=len(training),
            period=_period(training),
            reference_predictions=len(out_of_fold),
            folds=FOLDS,
            split_seed=SPLIT_SEED,
            seconds=round(seconds, 3),
        ),
        holdout=HoldoutInfo(
            r2=float(r2_score(actual, predicted)),
            mae=float(mean_absolute_error(actual, predicted)),
            mape=float(np.mean(np.abs(predicted - actual) / actual)),
            rows=len(holdout),
            period=_period(holdout),
        ),
        hyperparameters=dict(HYPERPARAMETERS),
        data=DataInfo(file=f"stream/model/data/{dataset.DATA_FILE}", sha256=data_sha256),
        libraries=libraries,
        artifacts={MODEL_FILE: sha256(model_bytes), PROFILE_FILE: sha256(profile_bytes)},
    )
    # The card goes last: a directory without one is visibly incomplete, never half-trusted.
    _write_atomic(out_dir / CARD_FILE, card_bytes(card))
    return card


def _out_of_fold(
    pipeline: Pipeline, features: pd.DataFrame, target: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], dict[str, float]]:
    """Each training sale's price from a model fit on the other folds (what
    ``cross_val_predict`` gives), and each feature's permutation importance on the validation
    folds: the mean drop in R² of log(price) when its column is shuffled, weighted by fold size.
    Seeded, so training stays deterministic."""
    folds = KFold(FOLDS, shuffle=True, random_state=SPLIT_SEED)
    predicted = np.empty(len(features), dtype=np.float64)
    importance = dict.fromkeys(FEATURES, 0.0)
    for train_rows, valid_rows in folds.split(features):
        model = clone(pipeline).fit(features.iloc[train_rows], target[train_rows])
        valid = features.iloc[valid_rows]
        predicted[valid_rows] = model.predict(valid)
        drops = permutation_importance(
            model,
            valid,
            target[valid_rows],
            n_repeats=IMPORTANCE_REPEATS,
            random_state=SPLIT_SEED,
            scoring="r2",
        )
        weight = len(valid_rows) / len(features)
        for name, drop in zip(valid.columns, drops["importances_mean"], strict=True):
            importance[str(name)] += weight * float(drop)
    return np.exp(predicted), importance


def _model_version(
    all_predictions: npt.NDArray[np.float64], data_sha256: str, libraries: Mapping[str, str]
) -> str:
    """First 12 hex of sha256 over what defines the model and what it predicts.

    Not the skops file: its zip entries carry timestamps. Predictions are rounded to cents so
    that a last-bit difference in floating point cannot change the version, while any real
    change to the model moves some of the 2,930 prices by more than a cent.
    """
    definition = {
        "features": {"numeric": NUMERIC_FEATURES, "categorical": CATEGORICAL_FEATURES},
        "target": "log(sale_price)",
        "hyperparameters": dict(HYPERPARAMETERS),
        "reference": {"folds": FOLDS, "seed": SPLIT_SEED},
        "data_sha256": data_sha256,
        "libraries": dict(libraries),
    }
    digest = hashlib.sha256(orjson.dumps(definition, option=orjson.OPT_SORT_KEYS))
    digest.update(np.round(all_predictions, 2).astype("<f8").tobytes())
    return digest.hexdigest()[:12]


def _period(rows: pd.DataFrame) -> Period:
    return Period(
        start=rows["sold_at"].min().to_pydatetime(), end=rows["sold_at"].max().to_pydatetime()
    )


def _write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same directory and rename, so readers never see half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates 0600; a model is read by other users (the scorer's container user).
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
