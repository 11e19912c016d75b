"""Scorer settings: defaults, bad values refused, read from APPRAISE_SCORER__* variables."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from stream.errors import ConfigError
from stream.settings import ScorerSettings, load_settings


def test_defaults_carry_the_price_bands() -> None:
    settings = ScorerSettings()
    assert {10_000_000.0, 20_000_000.0} <= set(settings.prediction_buckets_dollars)
    assert settings.batch_size >= 500  # a predict call has a fixed cost: batches must be large


@pytest.mark.parametrize(
    "bad",
    [
        {"batch_size": 0},
        {"prediction_buckets_dollars": (2.0, 1.0)},
        {"pane_seconds": 0},
        {"unknown": 1},
    ],
)
def test_bad_values_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ScorerSettings.model_validate(bad)


def test_the_entry_point_reads_scorer_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPRAISE_SCORER__BATCH_SIZE", "1234")
    monkeypatch.setenv("APPRAISE_SCORER__PREDICTION_BUCKETS_DOLLARS", "[1e5, 1e7, 2e7]")
    monkeypatch.setenv("APPRAISE_TOPICS__LISTINGS", "elsewhere")
    settings = load_settings()
    scorer = settings.scorer
    assert scorer.batch_size == 1234
    assert scorer.prediction_buckets_dollars == (1e5, 1e7, 2e7)
    assert settings.topics.listings == "elsewhere"


def test_a_bad_scorer_variable_names_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPRAISE_SCORER__BATCH_SIZE", "0")
    with pytest.raises(ConfigError, match="APPRAISE_SCORER__BATCH_SIZE='0'"):
        load_settings()
