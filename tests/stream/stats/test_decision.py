"""Sample-size-aware drift decisions: the critical values hold their false-alarm level on
windows drawn from the reference itself, at small and large sizes; verdicts combine the material
threshold and the critical value; the level splits the budget."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stream.contract.sketch import QuantileSketch
from stream.stats.decision import (
    Verdict,
    chi2_quantile,
    ks_critical,
    pearson_statistic,
    per_test_level,
    psi_critical,
    sketch_equivalent_sample,
)
from stream.stats.drift import ks_from_sketches, psi

#: Bin shares of a reference: unequal, with a small bin, as discrete features have.
SHARES = np.array([0.02, 0.08, 0.15, 0.25, 0.3, 0.2])
REFERENCE_ROWS = 1_319


def _false_alarm_rate(events: int, alpha: float, trials: int, seed: int) -> float:
    """Share of windows drawn from the reference's own distribution whose PSI passes the
    critical value: sampling noise alone, on both sides."""
    rng = np.random.default_rng(seed)
    critical = psi_critical(
        df=len(SHARES) - 1, alpha=alpha, events=events, reference_rows=REFERENCE_ROWS
    )
    alarms = 0
    for _ in range(trials):
        reference = rng.multinomial(REFERENCE_ROWS, SHARES) / REFERENCE_ROWS
        window = rng.multinomial(events, SHARES) / events
        value = psi(reference, window, reference_rows=REFERENCE_ROWS, events=events)
        alarms += value > critical
    return alarms / trials


@pytest.mark.parametrize("events", [100, 400, 5_000])
def test_psi_critical_value_holds_its_level_under_no_drift(events: int) -> None:
    # At alpha = 0.01 the rate stays at most about alpha, small windows included (the
    # half-count floor keeps an empty bin within the chi-square bound).
    rate = _false_alarm_rate(events, alpha=0.01, trials=4_000, seed=events)
    assert rate <= 0.02, rate


def test_pearson_s_statistic_holds_the_level_in_the_far_tail_where_psi_does_not() -> None:
    # At a small window and a strict level an empty bin weighs three times more in PSI than in
    # Pearson's statistic: PSI over its critical value passes several times the level, Pearson's
    # statistic over its chi-square quantile about the level (what the decision uses).
    rng = np.random.default_rng(17)
    events, alpha, trials = 100, 0.002, 20_000
    uniform = np.full(10, 0.1)
    quantile = chi2_quantile(9, alpha)
    critical = psi_critical(df=9, alpha=alpha, events=events, reference_rows=REFERENCE_ROWS)
    sizes = {"events": events, "reference_rows": REFERENCE_ROWS}
    pearson = psi_passes = 0
    for _ in range(trials):
        reference = rng.multinomial(REFERENCE_ROWS, uniform) / REFERENCE_ROWS
        window = rng.multinomial(events, uniform) / events
        pearson += pearson_statistic(reference, window, **sizes)[0] > quantile
        psi_passes += psi(reference, window, **sizes) > critical
    assert pearson / trials <= 1.5 * alpha, pearson
    assert psi_passes > 2 * pearson, (psi_passes, pearson)


def test_sparse_bins_are_merged_before_pearson_s_statistic_is_read() -> None:
    # A reference with many rare categories (as a neighbourhood or a condition has): windows of
    # 100 events drawn from it see a rare one now and then, which alone would make Pearson's
    # statistic large; merged into groups of 5 expected events, the level holds.
    rng = np.random.default_rng(23)
    shares = np.array([0.4, 0.3, 0.2] + [0.1 / 40] * 40)
    events, alpha, trials = 100, 0.002, 10_000
    sizes = {"events": events, "reference_rows": REFERENCE_ROWS}
    passes = 0
    for _ in range(trials):
        reference = rng.multinomial(REFERENCE_ROWS, shares) / REFERENCE_ROWS
        window = rng.multinomial(events, shares) / events
        statistic, df = pearson_statistic(reference, window, **sizes)
        assert df < 10  # 43 bins merged into a few groups
        passes += statistic > chi2_quantile(df, alpha)
    assert passes / trials <= 2 * alpha, passes
    # Something real still shows: a fifth of the events in a bin training never filled.
    moved = np.append(0.8 * shares, 0.2)
    statistic, df = pearson_statistic(np.append(shares, 0.0), moved, **sizes)
    assert statistic > chi2_quantile(df, 1e-6)


def test_psi_critical_value_is_not_vacuous() -> None:
    # At alpha = 0.2 noise does pass it: the bound is near the noise, not far above it.
    rate = _false_alarm_rate(400, alpha=0.2, trials=4_000, seed=7)
    assert 0.05 <= rate <= 0.3, rate


def test_critical_values_shrink_with_the_window_and_grow_with_a_stricter_level() -> None:
    small = psi_critical(df=9, alpha=1e-6, events=100, reference_rows=REFERENCE_ROWS)
    large = psi_critical(df=9, alpha=1e-6, events=10_000, reference_rows=REFERENCE_ROWS)
    looser = psi_critical(df=9, alpha=1e-3, events=100, reference_rows=REFERENCE_ROWS)
    assert small > looser > 0
    assert small > 5 * large
    # A sketched window is worth at most its rank error's equivalent sample, about 15,000.
    sketched = psi_critical(
        df=9, alpha=1e-6, events=10_000, reference_rows=REFERENCE_ROWS, rank_error=0.0133
    )
    assert sketched > large
    assert sketch_equivalent_sample(0.0133) == pytest.approx(14_975, rel=0.01)
    assert sketch_equivalent_sample(0.0) == math.inf
    assert chi2_quantile(1, 0.05) == pytest.approx(3.841, abs=1e-3)
    with pytest.raises(ValueError, match="degrees of freedom"):
        chi2_quantile(0, 0.05)


def test_ks_critical_value_holds_its_level_on_sketches() -> None:
    rng = np.random.default_rng(11)
    reference = QuantileSketch.of(rng.lognormal(12, 0.4, size=REFERENCE_ROWS))
    alarms = 0
    trials = 300
    for _ in range(trials):
        window = QuantileSketch.of(rng.lognormal(12, 0.4, size=2_000))
        critical = ks_critical(
            alpha=0.01,
            values=window.n,
            reference_values=reference.n,
            rank_errors=window.error + reference.error,
        )
        alarms += ks_from_sketches(reference, window) > critical
    assert alarms / trials <= 0.02
    # A real shift passes it.
    shifted = QuantileSketch.of(rng.lognormal(12.2, 0.4, size=2_000))
    critical = ks_critical(alpha=1e-6, values=2_000, reference_values=reference.n)
    assert ks_from_sketches(reference, shifted) > critical


def test_a_verdict_needs_both_thresholds() -> None:
    material_not_noise = Verdict(statistic=0.3, critical=0.1, threshold=0.2)
    assert material_not_noise.bar == 0.2
    assert material_not_noise.score == pytest.approx(1.5)
    assert material_not_noise.drifting
    noise = Verdict(statistic=0.3, critical=0.45, threshold=0.2)  # a small window
    assert noise.score == pytest.approx(0.3 / 0.45)
    assert not noise.drifting
    immaterial = Verdict(statistic=0.15, critical=0.01, threshold=0.2)  # a busy window
    assert not immaterial.drifting
    nothing = Verdict(statistic=math.nan, critical=0.1, threshold=0.2)
    assert math.isnan(nothing.score)
    assert not nothing.drifting
    at_the_bar = Verdict(statistic=0.2, critical=0.1, threshold=0.2)
    assert at_the_bar.score == 1.0
    assert not at_the_bar.drifting
    # With Pearson's measure of noise: material (0.3 > 0.2) but within noise (0.8 < 1).
    quiet = Verdict(statistic=0.3, critical=0.1, threshold=0.2, noise=0.8)
    assert quiet.score == pytest.approx(0.8)
    assert quiet.bar == pytest.approx(0.3 / 0.8)  # the PSI this window's shape needs
    assert not quiet.drifting
    same = Verdict(statistic=0.0, critical=0.1, threshold=0.2, noise=0.0)  # identical shares
    assert (same.score, same.bar, same.drifting) == (0.0, math.inf, False)
    loud = Verdict(statistic=0.3, critical=0.1, threshold=0.2, noise=4.0)
    assert loud.score == pytest.approx(1.5)  # then the material threshold decides
    assert loud.drifting


def test_the_level_splits_the_budget_over_the_tests() -> None:
    assert per_test_level(30, 1_000) == pytest.approx(1 / 30_000)
    with pytest.raises(ValueError, match="positive"):
        per_test_level(0, 10)
