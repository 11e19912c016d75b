"""Fixtures of the report's tests: window records made with the real ``summarise`` from panes
the scorer's own ``PaneBook`` folds, so the tests read the real window contract; and the
helpers that pick and build from them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from consumers.panes import PaneBook
from stream.aggregate.drift import Statistics
from stream.aggregate.policy import DriftPolicy
from stream.aggregate.state import ErrorPane
from stream.aggregate.summary import ErrorSummary, WindowAggregate, summarise
from stream.aggregate.windows import Window
from stream.contract.features import FEATURES
from stream.contract.windows import DriftRecord, ErrorRecord, read_window_record
from stream.model.profile import ReferenceProfile
from stream.report.build import Report, build_report
from stream.settings import AggregateSettings
from stream.stats.decision import Verdict
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
    The first half is like the reference, the next has counts only, the rest drift; so do the
    sale prices of their realised error (target drift), which the first window has none of."""

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
            error = ErrorSummary(window, errors, None if i == 0 else _target(i > count // 2))
            out += [(summary.key, summary.to_record()), (error.key, error.to_record())]
        return out

    return make


def _target(drifted: bool) -> Statistics:
    """The drift of the sale prices: PSI 0.5 against a critical value of 0.25 (score 2) when
    ``drifted``, else PSI 0.05 (score 0.2)."""
    psi = Verdict(0.5 if drifted else 0.05, critical=0.25, threshold=PSI_THRESHOLD)
    return Statistics(psi, ks=0.1, ks_critical=0.2, missing_rate=0.0, unseen_rate=float("nan"))


def records_of(pairs: list[tuple[bytes, bytes]]) -> list[Record]:
    """The typed records of (key, value) pairs, read as the report reads them."""
    read = [read_window_record(value) for _, value in pairs]
    assert None not in read
    return [r for r in read if r is not None]


def report_of(records: list[Record], **kwargs: Any) -> Report:
    """``build_report`` with the tests' defaults: the 8 newest ``1m`` windows."""
    options: dict[str, Any] = {"window": "1m", "last": 8}
    return build_report(records, **{**options, **kwargs})


def drift_of(records: list[Record], window: str = "1m") -> list[DriftRecord]:
    """The drift records of ``window``, in the order given."""
    return [r for r in records if isinstance(r, DriftRecord) and r.window == window]


def errors_of(records: list[Record]) -> list[ErrorRecord]:
    """The realised-error records, in the order given."""
    return [r for r in records if isinstance(r, ErrorRecord)]


#: What the window records gained with the sample-size-aware decision; older ones lack them.
_NEW_STATS_FIELDS = ("psi_critical", "ks_critical", "score", "drifting")
_NEW_RECORD_FIELDS = ("likely_causes", "psi_threshold", "false_alarm_level", "target")


def written_before_scores(pairs: list[tuple[bytes, bytes]]) -> list[Record]:
    """The records of ``pairs`` as a stream app wrote them before the drift scores: without the
    critical values, scores, decisions, likely causes, target drift and missing shares."""
    records = []
    for _, value in pairs:
        data = orjson.loads(value)
        for name in _NEW_RECORD_FIELDS:
            data.pop(name, None)
        stats = [data.get("prediction"), *(data.get("features") or {}).values()]
        for values in (s for s in stats if s is not None):
            for name in _NEW_STATS_FIELDS:
                del values[name]
        distributions = data.get("distributions")
        if distributions is not None:
            for shares in [distributions["prediction"], *distributions["features"].values()]:
                del shares["reference_missing"], shares["current_missing"]
        records.append(read_window_record(orjson.dumps(data)))
    assert None not in records
    return [r for r in records if r is not None]
