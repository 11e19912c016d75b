"""The model's trees compiled to native code: the same prices as scikit-learn, or not used.

These run the real compiler (gcc, or $CC); `make test` installs it. A machine without one fails
here rather than skipping: its scorer would fall back to scikit-learn, three times slower.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.ensemble import HistGradientBoostingRegressor

from consumers.service import compile_model
from stream.contract.features import FEATURES
from stream.model.card import MODEL_FILE
from stream.model.compiled import COMPILER_ENV, CompileError, compile_trees
from stream.model.load import load_model
from stream.model.pipeline import TRUSTED_TYPES
from stream.model.train import train
from tests.stream.model.columns import sales_with_gaps


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("model")
    train(directory)
    return directory


def test_compiled_trees_price_as_scikit_learn(model_dir: Path) -> None:
    compiled = load_model(model_dir)
    compiled.compile_trees()
    assert compiled.compiled
    columns = sales_with_gaps()
    prices = compiled.predict_columns(columns)
    by_pipeline = load_model(model_dir).predict(pd.DataFrame(columns))
    # The same trees summed in another order: equal to the last bits, and to the cent.
    np.testing.assert_allclose(prices, by_pipeline, rtol=1e-12)
    assert (np.round(prices, 2) == np.round(by_pipeline, 2)).mean() > 0.999
    assert compiled.predict_columns({name: [] for name in FEATURES}).shape == (0,)


def test_no_compiler_keeps_scikit_learn(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(COMPILER_ENV, "no-such-cc")
    model = load_model(model_dir)
    with pytest.raises(CompileError, match=r"no C compiler 'no-such-cc' on PATH \(set \$CC"):
        model.compile_trees()
    assert not model.compiled
    # The scorer's start-up says so and goes on with scikit-learn's prices.
    with caplog.at_level(logging.WARNING, logger="consumers.service"):
        compile_model(model)
    assert "no-such-cc" in caplog.text
    assert "scoring with scikit-learn's predict" in caplog.text
    columns = sales_with_gaps()
    np.testing.assert_array_equal(
        model.predict_columns(columns), load_model(model_dir).predict_columns(columns)
    )


def test_a_compiler_that_fails_is_named(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    broken = tmp_path / "broken-cc"
    broken.write_text("#!/bin/sh\necho 'broken-cc: cannot compile' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv(COMPILER_ENV, str(broken))
    model = load_model(model_dir)
    with pytest.raises(CompileError, match=r"compiling the trees with .*broken-cc failed"):
        model.compile_trees()
    assert not model.compiled


class _Retrained(HistGradientBoostingRegressor):  # type: ignore[misc]  # sklearn is untyped
    """Trees that no longer give the regressor's own predictions (say, a predict that was
    changed after fitting): compiling its trees would change the prices."""

    def predict(self, X: Any) -> Any:
        return super().predict(X) + 0.01


def test_compiled_trees_that_disagree_are_refused(model_dir: Path) -> None:
    pipeline = skops.io.load(model_dir / MODEL_FILE, trusted=list(TRUSTED_TYPES))
    fitted = pipeline.named_steps["regressor"]
    changed = _Retrained(**fitted.get_params())
    changed.__dict__.update(fitted.__dict__)
    probe = np.zeros((5, len(FEATURES)))
    with pytest.raises(CompileError, match="predict differently from scikit-learn"):
        compile_trees(changed, probe)
