"""The pools ``appraise bench detection`` resamples windows from, and the scenario catalogue.

A pool is a set of listings as the scorer sees them: the bundled 2008-2010 hold-out stream
(1,611 listings), or that stream after one drift scenario (applied by the producer's own
:class:`~producers.scenarios.ScenarioStream`). Each listing is encoded as the producer sends it,
checked with the contract's decoder (a listing it refuses would be dead-lettered and never
reach a window), decoded column by column as the scorer does, and priced once by the model, so
a window resampled from the pool needs no prediction of its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from sklearn.base import clone
from sklearn.model_selection import KFold
from threadpoolctl import threadpool_limits

from consumers.decode import decode_batch
from producers.publish import encode
from producers.scenarios import SCENARIO_TYPES, Scenario, ScenarioStream, parse_scenario
from producers.sources import Draft
from stream.contract.decoding import decode_listing
from stream.contract.features import CATEGORICAL_FEATURES, FEATURES, NUMERIC_FEATURES, TARGET
from stream.contract.reasons import InvalidEvent
from stream.errors import DataError
from stream.model import dataset
from stream.model.pipeline import FOLDS, SPLIT_SEED, build_pipeline, feature_frame
from stream.model.predict import LoadedModel
from stream.model.profile import numeric_reference

FloatArray = npt.NDArray[np.float64]
ObjectArray = npt.NDArray[np.object_]
#: The magnitudes every scenario is tried at: its default and half of it.
MAGNITUDES: Final = (("default", 1.0), ("half", 0.5))


@dataclass(frozen=True)
class Pool:
    """Listings as columns (numeric: float64 with NaN for missing; categorical: ``str | None``
    objects) and the model's price of each (US dollars, to the cent)."""

    numeric: dict[str, FloatArray]
    categorical: dict[str, ObjectArray]
    prices: FloatArray

    @property
    def rows(self) -> int:
        """Listings in the pool."""
        return len(self.prices)

    def then(self, other: Pool) -> Pool:
        """This pool's rows followed by ``other``'s (a run's stable and drifted listings)."""
        return Pool(
            {n: np.concatenate([self.numeric[n], other.numeric[n]]) for n in NUMERIC_FEATURES},
            {
                n: np.concatenate([self.categorical[n], other.categorical[n]])
                for n in CATEGORICAL_FEATURES
            },
            np.concatenate([self.prices, other.prices]),
        )


def pool_of(drafts: Sequence[Draft], model: LoadedModel) -> tuple[Pool, Counter[str]]:
    """The pool of the ``drafts`` the contract accepts, and the dead-letter reasons of the rest.

    Encoded as ``appraise produce`` sends them (their own event times), judged by the contract's
    decoder, decoded by the scorer's column decoder, priced by ``model`` (rounded to cents, as the
    scorer publishes them).
    """
    now = datetime.now(UTC)
    values = [encode(d, event_time="history", now=now) for d in drafts]
    reasons: Counter[str] = Counter()
    for value in values:
        try:
            decode_listing(value, max_bytes=1_000_000)
        except InvalidEvent as exc:
            reasons[exc.reason] += 1
    decoded = decode_batch(values, max_bytes=1_000_000)
    columns: dict[str, Any] = {**decoded.numeric, **decoded.categorical}
    prices: FloatArray = np.empty(0, dtype=np.float64)
    if len(decoded):
        priced = np.asarray(model.predict_columns(columns), dtype=np.float64)
        prices = np.round(priced, 2).astype(np.float64)
    pool = Pool(
        {name: np.asarray(decoded.numeric[name], dtype=np.float64) for name in NUMERIC_FEATURES},
        {
            name: np.asarray(decoded.categorical[name], dtype=object)
            for name in CATEGORICAL_FEATURES
        },
        prices,
    )
    return pool, reasons


@dataclass(frozen=True)
class Case:
    """One scenario on one feature at one magnitude; ``excluded`` says why it is not run."""

    scenario: str
    feature: str | None
    magnitude: str
    """``default`` or ``half``."""
    spec: Scenario | None
    excluded: str | None = None

    @property
    def label(self) -> str:
        """``scale:feature=rooms,factor=1.25``-like text of the scenario as run."""
        if self.spec is None:
            return self.scenario
        fields = self.spec.model_dump(exclude={"name", "after", "after_s", "until", "until_s"})
        shown = ",".join(f"{k}={_text(v)}" for k, v in fields.items() if v not in ((), None))
        return f"{self.scenario}:{shown}"


def _text(value: object) -> str:
    if isinstance(value, tuple):
        return "|".join(str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def catalogue(
    holdout: Sequence[Draft], only: Sequence[str] = ()
) -> list[tuple[str, str | None, Scenario | None, str]]:
    """Every scenario of ``producers.scenarios`` on each feature it applies to, at its default
    magnitude: (name, feature, scenario, why not applicable or "").

    ``scale`` applies to the numeric features, ``unseen`` and ``segment`` (the upper half of the
    categories by median sale price, at least one) to the categorical ones, ``missing`` to every
    feature, ``inflate`` to none in particular; ``malformed`` records are dead-lettered before any
    window (``AppraiseHighErrorRatio``'s business), so it is listed as not applicable. ``only``:
    these scenarios, all when empty (DataError for an unknown name).
    """
    entries: list[tuple[str, str | None, Scenario | None, str]] = []
    names = [t.model_fields["name"].default for t in SCENARIO_TYPES]
    unknown = sorted(set(only) - set(names))
    if unknown:
        raise DataError(f"unknown scenarios {unknown}: expected some of {', '.join(names)}")
    names = [n for n in names if not only or n in only]
    for name in names:
        if name == "scale":
            entries += [
                (name, f, parse_scenario(f"scale:feature={f}"), "") for f in NUMERIC_FEATURES
            ]
        elif name == "unseen":
            entries += [
                (name, f, parse_scenario(f"unseen:feature={f}"), "") for f in CATEGORICAL_FEATURES
            ]
        elif name == "segment":
            for f in CATEGORICAL_FEATURES:
                top = max(1, len(_categories(holdout, f)) // 2)
                entries.append((name, f, parse_scenario(f"segment:feature={f},top={top}"), ""))
        elif name == "missing":
            entries += [(name, f, parse_scenario(f"missing:feature={f}"), "") for f in FEATURES]
        elif name == "inflate":
            entries.append((name, None, parse_scenario("inflate"), ""))
        else:
            why = "its records are dead-lettered before any window (AppraiseHighErrorRatio)"
            entries.append((name, None, None, why))
    return entries


def _categories(drafts: Sequence[Draft], feature: str) -> set[str]:
    return {
        d.listing[feature]
        for d in drafts
        if d.listing is not None and isinstance(d.listing.get(feature), str)
    }


def scenario_pool(
    spec: Scenario, holdout: Sequence[Draft], model: LoadedModel, seed: int
) -> tuple[Pool, Counter[str]]:
    """The hold-out stream after ``spec`` (the producer's ScenarioStream, seeded), as a pool."""
    stream = ScenarioStream([spec], seed=seed, pool=holdout)
    return pool_of(list(stream.apply(holdout)), model)


def cases(
    holdout: Sequence[Draft], model: LoadedModel, seed: int, only: Sequence[str] = ()
) -> list[tuple[Case, Pool | None]]:
    """Every catalogue entry at each of :data:`MAGNITUDES`, with its pool; a case whose
    listings the contract refuses in part is excluded (its pool would not be what the stream app
    sees), with the reasons."""
    out: list[tuple[Case, Pool | None]] = []
    for name, feature, spec, why in catalogue(holdout, only):
        for label, fraction in MAGNITUDES:
            if spec is None:
                out.append((Case(name, feature, label, None, why), None))
                continue
            scaled = spec.at(fraction)
            pool, reasons = scenario_pool(scaled, holdout, model, seed)
            if reasons:
                shown = ", ".join(f"{n:,} {r}" for r, n in reasons.most_common())
                note = f"the contract dead-letters {sum(reasons.values()):,} listings ({shown})"
                out.append((Case(name, feature, label, scaled, note), None))
            else:
                out.append((Case(name, feature, label, scaled), pool))
    return out


@dataclass(frozen=True)
class Reference:
    """The raw reference the batch-report baselines test against: the training sales' feature
    values and the model's out-of-fold predictions on them (what the profile sketched)."""

    numeric: dict[str, FloatArray]
    categorical: dict[str, ObjectArray]
    prediction: FloatArray


def training_reference(model: LoadedModel) -> Reference:
    """The training sales of the bundled data and their out-of-fold predictions, refit as
    training does (same folds, seed and one OpenMP thread: the same prices). Raises DataError if
    they do not match the model's profile (a model trained on other years)."""
    rows = dataset.training_rows(dataset.load_ames())
    features = feature_frame(rows)
    target = np.log(rows[TARGET].to_numpy(dtype=np.float64))
    predicted = np.empty(len(rows), dtype=np.float64)
    with threadpool_limits(limits=1, user_api="openmp"):
        for train_rows, valid_rows in KFold(FOLDS, shuffle=True, random_state=SPLIT_SEED).split(
            features
        ):
            fitted = clone(build_pipeline()).fit(features.iloc[train_rows], target[train_rows])
            predicted[valid_rows] = fitted.predict(features.iloc[valid_rows])
    prediction = np.exp(predicted)
    expected = model.profile.prediction
    got = numeric_reference(prediction, model.profile.sketch_k)
    if got.bin_edges != expected.bin_edges or not np.allclose(got.fractions, expected.fractions):
        raise DataError(
            "the out-of-fold predictions refit here differ from the model's reference profile: "
            "train the model with the default years (appraise train) for this bench"
        )
    return Reference(
        {n: rows[n].to_numpy(dtype=np.float64) for n in NUMERIC_FEATURES},
        {n: rows[n].to_numpy(dtype=object) for n in CATEGORICAL_FEATURES},
        prediction,
    )
