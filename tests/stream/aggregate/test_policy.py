"""The drift policy: one false-alarm budget split over every test the configured windows make
in a day."""

from __future__ import annotations

import pytest

from stream.aggregate.policy import DriftPolicy
from stream.contract.features import FEATURES
from stream.settings import AggregateSettings


def test_the_default_budget_over_the_default_windows() -> None:
    policy = DriftPolicy.of(AggregateSettings())
    # 1 m tumbling and 5 m hopping every minute: 2 x 1,440 windows a day, each with a test per
    # feature and the predictions, and as many windows of sales with one test (target drift).
    windows = 2 * 1_440
    assert policy.tests_per_day == windows * (len(FEATURES) + 1) + windows
    assert policy.alpha == pytest.approx(1 / (30 * policy.tests_per_day))
    assert "Bonferroni" in policy.describe()


def test_smaller_windows_and_a_longer_budget_make_a_stricter_level() -> None:
    default = DriftPolicy.of(AggregateSettings())
    demo = DriftPolicy.of(
        AggregateSettings(tumbling_seconds=10, hopping_seconds=30, hop_seconds=10)
    )
    patient = DriftPolicy.of(AggregateSettings(false_alarm_days=365))
    assert demo.tests_per_day == pytest.approx(6 * default.tests_per_day)
    assert demo.alpha == pytest.approx(default.alpha / 6)
    assert patient.alpha == pytest.approx(default.alpha * 30 / 365)
