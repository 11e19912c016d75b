"""Fixtures of the scorer's tests: one real model, trained once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.model import LoadedModel, load_model, train


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained on the bundled data into a temporary directory (about 7 s, once)."""
    out = tmp_path_factory.mktemp("model")
    train(out)
    return out


@pytest.fixture(scope="session")
def model(model_dir: Path) -> LoadedModel:
    """The loaded model of ``model_dir``."""
    return load_model(model_dir)
