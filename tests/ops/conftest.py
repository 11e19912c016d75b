"""Fixtures of the ops tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.model import train


@pytest.fixture(scope="session")
def ops_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained on the bundled data (a few seconds, once per session)."""
    out = tmp_path_factory.mktemp("ops-model")
    train(out)
    return out
