"""The reference profile: what "normal" looked like in training, so drift never rescans the data.

For every numeric feature: a quantile sketch, the PSI bin edges (the reference's deciles, with
repeats dropped, or one bin per value for a count) with the exact share of the training values
in each bin, the missing rate and
the training range; for every categorical feature: category frequencies and the missing rate;
the same numeric reference for the model's out-of-fold predictions on the training sales and for
the training sale prices (target drift); and each feature's permutation importance.

It is stored as JSON only (``reference_profile.json``): sketches are base64 of
:meth:`QuantileSketch.to_bytes` next to their state key. No pickle anywhere.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import orjson
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from stream.contract.features import CATEGORICAL_FEATURES, FEATURES, NUMERIC_FEATURES, TARGET
from stream.contract.sketch import DEFAULT_K, QuantileSketch, state_key_for

#: Deciles: ten bins of ~10 % each in the reference, coarse enough that sketch error stays small.
DECILE_RANKS: Final = tuple(i / 10 for i in range(1, 10))
#: A numeric feature with at most this many distinct training values (a count) gets a bin per
#: value instead of deciles: bedrooms, baths, rooms, garage places and fireplaces here.
DISCRETE_VALUES: Final = 20
#: The profile file's format; a profile written by an older version is refused (retrain).
PROFILE_FORMAT: Final = "appraise-reference-profile/2"


@dataclass(frozen=True)
class NumericReference:
    """Reference distribution of one numeric quantity. Do not update ``sketch``: copy it first."""

    sketch: QuantileSketch
    #: Strictly increasing PSI bin edges (bins are left-closed, see ``stream.stats.drift``).
    bin_edges: tuple[float, ...]
    #: Exact share of the values (missing ones excluded) in each of the ``len(bin_edges) + 1``
    #: bins, counted at training: the frozen bins carry no sketch error.
    fractions: tuple[float, ...]
    #: Share of rows with no value (0..1).
    missing_rate: float
    #: Rows the reference was built from, missing ones included.
    rows: int
    #: The smallest and largest value in training (NaN without values): the training range.
    low: float
    high: float


@dataclass(frozen=True)
class CategoricalReference:
    """Reference distribution of one categorical feature."""

    #: Share of each category among the rows that have a value (sums to 1).
    frequencies: Mapping[str, float]
    missing_rate: float
    rows: int


@dataclass(frozen=True)
class ReferenceProfile:
    """Everything the drift gauges compare a window against; built once by training."""

    model_version: str
    sketch_k: int
    numeric: Mapping[str, NumericReference]
    categorical: Mapping[str, CategoricalReference]
    #: The model's out-of-fold predicted prices (US dollars) on the training sales.
    prediction: NumericReference
    #: The training sale prices (US dollars): what target drift is measured against.
    target: NumericReference
    #: Permutation importance of each feature on the validation folds: the mean drop in R² of
    #: log(price) when the feature's values are shuffled (0 or below: the model does not use it).
    importance: Mapping[str, float]

    @property
    def sketch_state_key(self) -> str:
        """State key of every sketch in the profile, e.g. ``kll_doubles:k=200``."""
        return state_key_for(self.sketch_k)

    def to_json(self) -> bytes:
        """Deterministic, indented JSON bytes (sorted keys)."""
        document = _ProfileFile(
            model_version=self.model_version,
            sketch_k=self.sketch_k,
            numeric={name: _numeric_out(ref) for name, ref in self.numeric.items()},
            categorical={
                name: _CategoricalFile(
                    frequencies=dict(ref.frequencies), missing_rate=ref.missing_rate, rows=ref.rows
                )
                for name, ref in self.categorical.items()
            },
            prediction=_numeric_out(self.prediction),
            target=_numeric_out(self.target),
            importance=dict(self.importance),
        )
        return orjson.dumps(
            document.model_dump(mode="json"), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
        )

    @classmethod
    def from_json(cls, data: bytes) -> ReferenceProfile:
        """Parse :meth:`to_json` output.

        Raises ``pydantic.ValidationError`` / ``orjson.JSONDecodeError`` (both ``ValueError``) or
        ``stream.contract.sketch.SketchError`` if the document does not hold a valid profile.
        """
        raw = orjson.loads(data)
        found = raw.get("format") if isinstance(raw, dict) else None
        if found != PROFILE_FORMAT:
            raise ValueError(
                f"the profile's format is {found!r}, this version of appraise reads "
                f"{PROFILE_FORMAT!r} (a model trained by an older version: train it again)"
            )
        document = _ProfileFile.model_validate(raw)
        k = document.sketch_k
        missing = sorted(
            {*NUMERIC_FEATURES} - document.numeric.keys()
            | {*CATEGORICAL_FEATURES} - document.categorical.keys()
            | {*FEATURES} - document.importance.keys()
        )
        if missing:
            raise ValueError(f"the profile has no reference for {missing}")
        return cls(
            model_version=document.model_version,
            sketch_k=k,
            numeric={name: _numeric_in(ref, k) for name, ref in document.numeric.items()},
            categorical={
                name: CategoricalReference(
                    frequencies=ref.frequencies, missing_rate=ref.missing_rate, rows=ref.rows
                )
                for name, ref in document.categorical.items()
            },
            prediction=_numeric_in(document.prediction, k),
            target=_numeric_in(document.target, k),
            importance=dict(document.importance),
        )


def decile_edges(values: npt.ArrayLike) -> tuple[float, ...]:
    """The deciles of the finite ``values``, repeats dropped (a discrete feature gets fewer bins).

    ``inverted_cdf`` picks observed values rather than interpolating, so an integer feature's
    edges are integers and each value lands wholly in one left-closed bin.
    """
    array = np.asarray(values, dtype=np.float64)
    finite = array[np.isfinite(array)]
    if finite.size == 0:
        return ()
    edges = np.quantile(finite, DECILE_RANKS, method="inverted_cdf")
    return tuple(float(e) for e in np.unique(edges))


def bin_edges(values: npt.ArrayLike) -> tuple[float, ...]:
    """The PSI bin edges of a numeric column: its deciles (:func:`decile_edges`), and every
    distinct value when it has at most :data:`DISCRETE_VALUES` of them.

    A count's deciles lump its upper values together (half baths 0, 1, 2 give the edges 0 and 1,
    so the bin [1, inf) holds both 1 and 2): a shift among them, one more half bath in every
    listing, would not move PSI at all. One bin per value sees it.
    """
    array = np.asarray(values, dtype=np.float64)
    finite = array[np.isfinite(array)]
    distinct = np.unique(finite)
    if distinct.size > DISCRETE_VALUES:
        return decile_edges(finite)
    return tuple(float(e) for e in np.union1d(decile_edges(finite), distinct))


def numeric_reference(values: npt.ArrayLike, k: int = DEFAULT_K) -> NumericReference:
    """Sketch, bin edges with their exact shares, missing rate and range of one column."""
    array = np.asarray(values, dtype=np.float64)
    rows = int(array.size)
    finite = array[np.isfinite(array)]
    edges = bin_edges(array)
    # Left-closed bins (-inf, e0), [e0, e1), ..., as stream.stats.drift.bin_fractions reads them.
    counts = np.bincount(np.searchsorted(edges, finite, side="right"), minlength=len(edges) + 1)
    return NumericReference(
        sketch=QuantileSketch.of(array, k),
        bin_edges=edges,
        fractions=tuple(float(c) / finite.size for c in counts) if finite.size else (),
        missing_rate=(rows - finite.size) / rows if rows else 0.0,
        rows=rows,
        low=float(finite.min()) if finite.size else math.nan,
        high=float(finite.max()) if finite.size else math.nan,
    )


def categorical_reference(values: pd.Series) -> CategoricalReference:
    """Frequencies (sorted by category) and missing rate of one categorical column."""
    rows = len(values)
    present = values.dropna().astype(str)
    counts = present.value_counts()
    total = int(counts.sum())
    frequencies = {str(c): int(counts[c]) / total for c in sorted(counts.index)} if total else {}
    return CategoricalReference(
        frequencies=frequencies,
        missing_rate=(rows - len(present)) / rows if rows else 0.0,
        rows=rows,
    )


def build_profile(
    reference_rows: pd.DataFrame,
    reference_predictions: npt.ArrayLike,
    *,
    model_version: str,
    importance: Mapping[str, float],
    k: int = DEFAULT_K,
) -> ReferenceProfile:
    """The profile of ``reference_rows`` (every feature column and the sale price), of the
    predicted prices, with each feature's ``importance``."""
    return ReferenceProfile(
        model_version=model_version,
        sketch_k=k,
        numeric={
            name: numeric_reference(reference_rows[name].to_numpy(dtype=np.float64), k)
            for name in NUMERIC_FEATURES
        },
        categorical={
            name: categorical_reference(reference_rows[name]) for name in CATEGORICAL_FEATURES
        },
        prediction=numeric_reference(reference_predictions, k),
        target=numeric_reference(reference_rows[TARGET].to_numpy(dtype=np.float64), k),
        importance={name: float(importance[name]) for name in FEATURES},
    )


# --- the JSON document -------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _NumericFile(_Strict):
    state_key: str
    sketch: str = Field(description="base64 of QuantileSketch.to_bytes()")
    bin_edges: list[float]
    fractions: list[float]
    missing_rate: float = Field(ge=0, le=1)
    rows: int = Field(ge=0)
    low: float | None = Field(description="smallest training value; null without values")
    high: float | None


class _CategoricalFile(_Strict):
    frequencies: dict[str, float]
    missing_rate: float = Field(ge=0, le=1)
    rows: int = Field(ge=0)


class _ProfileFile(_Strict):
    format: Literal["appraise-reference-profile/2"] = PROFILE_FORMAT
    model_version: str
    sketch_k: int
    numeric: dict[str, _NumericFile]
    categorical: dict[str, _CategoricalFile]
    prediction: _NumericFile
    target: _NumericFile
    importance: dict[str, float]


def _numeric_out(ref: NumericReference) -> _NumericFile:
    return _NumericFile(
        state_key=ref.sketch.state_key,
        sketch=base64.b64encode(ref.sketch.to_bytes()).decode("ascii"),
        bin_edges=list(ref.bin_edges),
        fractions=list(ref.fractions),
        missing_rate=ref.missing_rate,
        rows=ref.rows,
        low=None if math.isnan(ref.low) else ref.low,
        high=None if math.isnan(ref.high) else ref.high,
    )


def _numeric_in(ref: _NumericFile, k: int) -> NumericReference:
    if ref.state_key != state_key_for(k):
        raise ValueError(
            f"a sketch has state key {ref.state_key!r}, the profile {state_key_for(k)!r}"
        )
    if any(b <= a for a, b in itertools.pairwise(ref.bin_edges)):
        raise ValueError("bin edges must be strictly increasing")
    if ref.fractions and len(ref.fractions) != len(ref.bin_edges) + 1:
        raise ValueError("a numeric reference needs one share per bin (its edges + 1)")
    try:
        raw = base64.b64decode(ref.sketch, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"a sketch is not valid base64: {exc}") from exc
    return NumericReference(
        sketch=QuantileSketch.from_bytes(raw, k),
        bin_edges=tuple(ref.bin_edges),
        fractions=tuple(ref.fractions),
        missing_rate=ref.missing_rate,
        rows=ref.rows,
        low=math.nan if ref.low is None else ref.low,
        high=math.nan if ref.high is None else ref.high,
    )
