"""Stored pane state and realised-error panes: round trips and state keys."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stream.aggregate.join import StoredPrediction
from stream.aggregate.state import ErrorPane, PaneState, pane_state_key, partial_digest
from stream.contract.panes import FORMAT, decode_pane
from stream.errors import DataError
from tests.stream.aggregate.conftest import PaneMaker


def test_pane_state_round_trips_and_refuses_other_sketch_sizes(
    holdout: pd.DataFrame, make_panes: PaneMaker
) -> None:
    raw = make_panes(holdout.iloc[:20], np.zeros(20))[0]
    state = PaneState(decode_pane(raw), [partial_digest(raw)])
    text = state.to_text()
    assert text.startswith(pane_state_key(200) + "\n")
    again = PaneState.from_text(text, 200)
    assert again.digests == state.digests
    assert again.pane.events == 20
    assert again.pane.sketches.prediction.n == 20
    with pytest.raises(DataError, match=r"expected 'appraise\.pane-state/2;kll_doubles:k=100'"):
        PaneState.from_text(text, 100)


def test_stored_panes_have_a_format_of_their_own(
    holdout: pd.DataFrame, make_panes: PaneMaker
) -> None:
    raw = make_panes(holdout.iloc[:20], np.zeros(20))[0]
    text = PaneState(decode_pane(raw), [partial_digest(raw)]).to_text()
    assert FORMAT not in text  # the wire's pane record may change without a state migration
    assert PaneState.from_text(text, 200).pane.sketches.missing == decode_pane(raw).sketches.missing


def test_state_stored_by_the_first_version_is_still_read(
    holdout: pd.DataFrame, make_panes: PaneMaker
) -> None:
    raw = make_panes(holdout.iloc[:20], np.zeros(20))[0]
    # The first stored form: state key, digests, then the pane record, one a line.
    text = f"appraise.pane-state/1;kll_doubles:k=200\nabc,def\n{raw.decode()}"
    state = PaneState.from_text(text, 200)
    assert state.digests == ["abc", "def"]
    assert state.pane.events == 20
    assert state.pane.key == decode_pane(raw).key


def _sums(pane: ErrorPane) -> tuple[int, float, float, int, list[float]]:
    quantiles = pane.prices.quantiles([0.0, 0.5, 1.0]).tolist()
    return pane.sales, pane.abs_error_dollars, pane.abs_pct_error, pane.prices.n, quantiles


def test_error_pane_sums_and_sale_prices_merge() -> None:
    a, b = ErrorPane.of(200), ErrorPane.of(200)
    a.add(predicted=120.0, actual=100.0)
    b.add(predicted=150.0, actual=200.0)
    a.merge(b)
    assert (a.sales, a.mae_dollars) == (2, 35.0)
    assert a.mape == pytest.approx(0.225)
    assert a.prices.quantiles([0.0, 1.0]).tolist() == [100.0, 200.0]
    assert _sums(ErrorPane.from_text(a.to_text(), 200)) == _sums(a)
    with pytest.raises(DataError):
        ErrorPane.from_text('{"format": "x"}')
    with pytest.raises(DataError, match="sketch"):  # written with another sketch size
        ErrorPane.from_text(a.to_text(), 100)
    assert np.isnan(ErrorPane().mape)


def test_an_error_pane_stored_by_the_first_version_is_read_without_prices() -> None:
    first = '{"format": "appraise.error-pane/1", "sales": 2, "abs": 70.0, "pct": 0.45}'
    pane = ErrorPane.from_text(first, 200)
    assert (pane.sales, pane.mae_dollars, pane.prices.n) == (2, 35.0, 0)


def test_stored_prediction_round_trips() -> None:
    stored = StoredPrediction(250_000.0, "v1", 1_200_000_000.0, 3)
    assert StoredPrediction.from_list(stored.to_list()) == stored
    with pytest.raises(DataError):
        StoredPrediction.from_list({"price": 1})
