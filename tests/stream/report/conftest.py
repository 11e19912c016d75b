"""Fixtures of the report's tests: window records made with the real ``summarise`` from panes
the scorer's own ``PaneBook`` folds, so the tests read the real window contract; and the
helpers that pick and build from them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest

from consumers.panes import PaneBook
from stream.aggregate.policy import DriftPolicy
from stream.aggregate.state import ErrorPane
from stream.aggregate.summary import ErrorSummary, WindowAggregate, summarise
from stream.aggregate.windows import Window
from stream.contract.features import FEATURES
from stream.contract.windows import DriftRecord, ErrorRecord, read_window_record
from stream.model.profile import ReferenceProfile
from stream.report.build import Report, build_report
from stream.settings import AggregateSettings
from tests.stream.aggregate.conftest import (  # noqa: F401 - fixtures shared with the app's tests
    VERSION,
    fold_rows,
    holdout,
    profile,
    training,
)

T0 = 1_699_999_980.0  # a whole minute (2023-11-14T22:13:00Z)
PSI_THRESHOLD = 0.2
MIN_EVENTS = 200
POLICY = DriftPolicy.of(AggregateSettings(min_events=MIN_EVENTS, psi_threshold=PSI_THRESHOLD))
#: Plots on a page with drift values and realised error: PSI heat map, drift share, quantiles,
#: realised error, then reference vs current bars of the prediction and of every feature.
FULL_PAGE_PLOTS = 4 + 1 + len(FEATURES)

Record = DriftRecord | ErrorRecord
#: ``make_windows(count, name="1m", size=60, hop=size, version=VERSION, start=T0)``.
WindowMaker = Callable[..., list[tuple[bytes, bytes]]]


@dataclass(frozen=True)
class Aggregates:
    """Window contents: like the reference, drifted (the dearest houses), and too few events."""

    like: WindowAggregate
    drifted: WindowAggregate
    small: WindowAggregate


def _aggregate(rows: pd.DataFrame) -> WindowAggregate:
    book = PaneBook(60.0, VERSION)
    fold_rows(book, rows, np.zeros(len(rows)))
    return WindowAggregate.of(book.drain(), k=200)


@pytest.fixture(scope="module")
def aggregates(holdout: pd.DataFrame) -> Aggregates:  # noqa: F811 - the shared fixture
    """The three window contents, folded once per module."""
    dear = holdout[holdout["sale_price"] > holdout["sale_price"].quantile(0.6)]
    return Aggregates(
        like=_aggregate(holdout.iloc[:400]),
        drifted=_aggregate(dear),
        small=_aggregate(holdout.iloc[: MIN_EVENTS - 1]),
    )


@pytest.fixture
def make_windows(
    profile: ReferenceProfile,  # noqa: F811 - the shared fixture
    aggregates: Aggregates,
) -> WindowMaker:
    """``make_windows(count, name="1m", size=60, hop=size, version=VERSION, start=T0)``:
    (key, record) of ``count`` windows ``hop`` apart and their realised error, in closing order.
    The first half is like the reference, the next has counts only, the rest drift."""

    def make(
        count: int,
        name: str = "1m",
        size: float = 60.0,
        hop: float | None = None,
        version: str = VERSION,
        start: float = T0,
    ) -> list[tuple[bytes, bytes]]:
        out = []
        for i in range(count):
            begin = start + (hop or size) * i
            window = Window(begin + size, name, begin, version)
            if i < count // 2:
                contents = aggregates.like
            elif i == count // 2:
                contents = aggregates.small
            else:
                contents = aggregates.drifted
            summary = summarise(window, contents, profile, POLICY)
            errors = ErrorPane()
            for price in (100_000.0, 200_000.0, 300_000.0)[: 1 + i % 3]:
                errors.add(price * 1.1, price)  # 10 % over: MAPE 0.1
            error = ErrorSummary(window, errors)
            out += [(summary.key, summary.to_record()), (error.key, error.to_record())]
        return out

    return make


def records_of(pairs: list[tuple[bytes, bytes]]) -> list[Record]:
    """The typed records of (key, value) pairs, read as the report reads them."""
    read = [read_window_record(value) for _, value in pairs]
    assert None not in read
    return [r for r in read if r is not None]


def report_of(records: list[Record], **kwargs: Any) -> Report:
    """``build_report`` with the tests' defaults: the 8 newest ``1m`` windows."""
    options: dict[str, Any] = {"window": "1m", "last": 8, "psi_threshold": PSI_THRESHOLD}
    return build_report(records, **{**options, **kwargs})


def drift_of(records: list[Record], window: str = "1m") -> list[DriftRecord]:
    """The drift records of ``window``, in the order given."""
    return [r for r in records if isinstance(r, DriftRecord) and r.window == window]


def errors_of(records: list[Record]) -> list[ErrorRecord]:
    """The realised-error records, in the order given."""
    return [r for r in records if isinstance(r, ErrorRecord)]
