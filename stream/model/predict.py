"""The loaded model and its batch predictor: categorical codes and numerics straight into the
fitted regressor (or its compiled trees), with no DataFrame on the scorer's path."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import repeat
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.pipeline import Pipeline

from stream.contract.features import CATEGORICAL_FEATURES, FEATURES, NUMERIC_FEATURES
from stream.errors import DataError
from stream.model.card import (
    ModelCard,
)
from stream.model.compiled import compile_trees
from stream.model.pipeline import (
    feature_frame,
    price_predictor,
)
from stream.model.profile import ReferenceProfile
from stream.model.ranges import TrainingRange

_TEXT_OR_NONE: Final = frozenset({str, type(None)})


class _MatrixPredictor:
    """The fitted pipeline's arithmetic without its DataFrame plumbing, for the scorer's batches.

    Building a DataFrame and running the ColumnTransformer cost a fixed 10-15 ms per call, about
    half of a 2,000-row batch's predict. Here the categoricals are coded by a dict lookup over
    the fitted encoder's own categories (missing and unseen → NaN, as the encoder does), the
    numerics are taken as float64, and the matrix, in the ColumnTransformer's column order, goes
    straight to the fitted regressor. A test pins the prices to the pipeline's.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        columns = pipeline.named_steps["columns"]
        encoder = columns.named_transformers_["categorical"]
        self._codes = [
            {category: float(code) for code, category in enumerate(categories)}
            for categories in encoder.categories_
        ]
        self._regressor = pipeline.named_steps["regressor"]
        self._compiled: Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]] | None = None

    def __call__(
        self, columns: Mapping[str, npt.NDArray[Any] | Sequence[Any]]
    ) -> npt.NDArray[np.float64]:
        matrix = self.matrix(columns)
        if len(matrix) == 0:
            return np.empty(0, dtype=np.float64)
        raw = self._compiled(matrix) if self._compiled else self._regressor.predict(matrix)
        return np.exp(np.asarray(raw, dtype=np.float64))

    def matrix(
        self, columns: Mapping[str, npt.NDArray[Any] | Sequence[Any]]
    ) -> npt.NDArray[np.float64]:
        """The regressor's input for ``columns``: categorical codes, then the numerics."""
        absent = [name for name in FEATURES if name not in columns]
        if absent:
            raise DataError(f"the input has no column for the features {absent}")
        rows = len(columns[FEATURES[0]])
        matrix = np.empty((rows, len(FEATURES)), dtype=np.float64)
        if rows == 0:
            return matrix
        for j, name in enumerate(CATEGORICAL_FEATURES):
            codes, column = self._codes[j], columns[name]
            if set(map(type, column)) <= _TEXT_OR_NONE:  # the scorer's columns: one C-level pass
                matrix[:, j] = np.fromiter(map(codes.get, column, repeat(np.nan)), np.float64, rows)
            else:
                matrix[:, j] = [
                    codes.get(v if v is None or isinstance(v, str) else str(v), np.nan)
                    for v in column
                ]
        offset = len(CATEGORICAL_FEATURES)
        for j, name in enumerate(NUMERIC_FEATURES):
            try:
                matrix[:, offset + j] = np.asarray(columns[name], dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise DataError(f"feature {name!r} must be numeric: {exc}") from exc
        return matrix

    @property
    def is_compiled(self) -> bool:
        return self._compiled is not None

    @property
    def categories(self) -> dict[str, list[str]]:
        """The categories the encoder knows, per categorical feature."""
        return {
            name: list(codes) for name, codes in zip(CATEGORICAL_FEATURES, self._codes, strict=True)
        }

    def compile(self, probe: Mapping[str, Sequence[Any]]) -> None:
        """Predict with the trees compiled to native code from now on (see
        :mod:`stream.model.compiled`); raises :class:`~stream.model.compiled.CompileError` and
        changes nothing if they cannot be compiled or price ``probe`` differently."""
        self._compiled = compile_trees(self._regressor, self.matrix(probe))


class LoadedModel:
    """A verified model directory: the pipeline, its card and its reference profile."""

    def __init__(self, pipeline: Pipeline, card: ModelCard, profile: ReferenceProfile) -> None:
        self._pipeline = pipeline
        self._predict = price_predictor(pipeline)
        self._predict_matrix = _MatrixPredictor(pipeline)
        self.card = card
        self.profile = profile
        self.training_range = TrainingRange.of(profile)
        """What the model was trained on: each feature's range or categories."""

    @property
    def version(self) -> str:
        """The model's content hash (``model_version`` in the card)."""
        return self.card.model_version

    def predict(self, frame: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Predicted prices (US dollars) for the rows of ``frame`` (needs every feature column;
        None/NaN values and unseen categories are fine)."""
        return self._predict(feature_frame(frame))

    def predict_columns(
        self, columns: Mapping[str, npt.NDArray[Any] | Sequence[Any]]
    ) -> npt.NDArray[np.float64]:
        """Predicted prices for a batch given column-wise: feature name → one value per row
        (the scorer's path: no DataFrame, the same prices as :meth:`predict`, to rounding
        once :meth:`compile_trees` succeeded)."""
        return self._predict_matrix(columns)

    @property
    def compiled(self) -> bool:
        """Whether :meth:`predict_columns` runs the compiled trees."""
        return self._predict_matrix.is_compiled

    def compile_trees(self) -> None:
        """Compile the regressor's trees to native code for :meth:`predict_columns` (about 3x
        faster on a batch; see :mod:`stream.model.compiled`). They are checked first against
        scikit-learn on probe rows drawn from the reference profile (every category, an unseen
        one, missing values, the training range of every numeric). Raises
        :class:`~stream.model.compiled.CompileError` (and keeps scikit-learn) if that fails."""
        self._predict_matrix.compile(_probe(self.profile, self._predict_matrix.categories))


def _probe(
    profile: ReferenceProfile, categories: Mapping[str, Sequence[str]], rows: int = 4_000
) -> dict[str, list[Any]]:
    """Made-up rows for checking compiled trees: each value drawn at random from the training
    percentiles of its feature (missing one time in ten), each category from the known ones,
    an unseen one and None. Seeded: the same probe every time."""
    rng = np.random.default_rng(0)
    probe: dict[str, list[Any]] = {}
    ranks = np.linspace(0.0, 1.0, 101)
    for name in NUMERIC_FEATURES:
        values = profile.numeric[name].sketch.quantiles(ranks)
        drawn = rng.choice(np.append(values, np.nan), size=rows, p=[0.9 / 101] * 101 + [0.1])
        probe[name] = drawn.tolist()
    for name in CATEGORICAL_FEATURES:
        choices: list[str | None] = [*categories[name], "(unseen)", None]
        probe[name] = [choices[i] for i in rng.integers(0, len(choices), size=rows)]
    return probe
