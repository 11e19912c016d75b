"""The drift policy: when a window's statistic counts as drift, from the settings.

One false-alarm budget, "expected days between false drift alerts" (setting
``false_alarm_days``, 30 by default), is split evenly over every test the stream app makes:
each feature, the predictions and the sale prices, in every window of every kind that closes in a
day (Bonferroni). Bonferroni because the tests are far from independent: a 5 min window hopping
every minute shares four fifths of its events with the next one, and features move together.
Its bound (expected false alarms <= the sum of the levels) holds under any dependence, where
Sidak's would need independence, and what it gives away costs little: the critical values grow
with ``log(1 / alpha)``, so a level ten times stricter moves PSI's critical value by 8-18 % of
its size. It also counts every window as a possible alert; the rules' ``for:`` durations then
ask several windows in a row, so alerts are rarer still.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from stream.aggregate.windows import WindowSpec, window_specs
from stream.contract.features import FEATURES
from stream.settings import AggregateSettings
from stream.stats.decision import per_test_level

#: Tests in one closed window of listings: every feature and the predictions.
TESTS_PER_WINDOW: Final = len(FEATURES) + 1
#: Tests in one closed window of sales: the sale prices (target drift).
TESTS_PER_SALES_WINDOW: Final = 1
_DAY_S: Final = 86_400.0


@dataclass(frozen=True, slots=True)
class DriftPolicy:
    """What makes a statistic drift: material (``psi_threshold``) and beyond sampling noise at
    the level ``alpha`` per test; windows under ``min_events`` export no drift at all."""

    psi_threshold: float
    alpha: float
    min_events: int
    false_alarm_days: float
    tests_per_day: float

    @classmethod
    def of(cls, settings: AggregateSettings) -> DriftPolicy:
        """The policy of the settings, the level split over the windows they close a day."""
        tests = tests_per_day(window_specs(settings))
        return cls(
            psi_threshold=settings.psi_threshold,
            alpha=per_test_level(settings.false_alarm_days, tests),
            min_events=settings.min_events,
            false_alarm_days=settings.false_alarm_days,
            tests_per_day=tests,
        )

    def describe(self) -> str:
        """One line for ``appraise settings`` and the logs."""
        return (
            f"drift: a statistic drifts above max(PSI {self.psi_threshold:g}, its critical "
            f"value at level {self.alpha:.3g} per test); {self.tests_per_day:,.0f} tests a "
            f"day over a budget of one false alarm per {self.false_alarm_days:g} days "
            f"(Bonferroni); windows under {self.min_events} events export no drift"
        )


def tests_per_day(specs: tuple[WindowSpec, ...]) -> float:
    """Tests made per day: per window kind, windows closed a day (one per hop) times the tests
    of a listings window, and as many windows of sales."""
    windows = sum(_DAY_S / spec.hop for spec in specs)
    return windows * (TESTS_PER_WINDOW + TESTS_PER_SALES_WINDOW)
