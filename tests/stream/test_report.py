"""``appraise report``: window records (made with the real ``summarise``) in, a feature table,
JSON and an HTML page of inline SVG plots out; and the reader on the embedded broker."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
import yaml

from consumers.panes import PaneBook
from stream.aggregate.state import ErrorPane
from stream.aggregate.summary import ErrorSummary, WindowAggregate, summarise
from stream.aggregate.windows import Window
from stream.errors import DataError
from stream.features import FEATURES, NUMERIC_FEATURES
from stream.profile import ReferenceProfile
from stream.report import (
    DATASET_DRIFT_SHARE,
    Record,
    Report,
    build_report,
    parse_record,
    read_windows,
    render_html,
    write_report,
)
from stream.settings import KafkaSettings
from tests.conftest import TopicFactory
from tests.stream.aggregate.conftest import (  # noqa: F401 - fixtures shared with the app's tests
    VERSION,
    fold_rows,
    holdout,
    profile,
    training,
)
from tests.stream.aggregate.helpers import publish

T0 = 1_699_999_980.0  # a whole minute (2023-11-14T22:13:00Z)
PSI_THRESHOLD = 0.2
MIN_EVENTS = 200
#: Plots on a page with drift values and realised error: PSI heat map, drift share, quantiles,
#: realised error, then reference vs current bars of the prediction and of every feature.
FULL_PAGE_PLOTS = 4 + 1 + len(FEATURES)


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
    dear = holdout[holdout["sale_price"] > holdout["sale_price"].quantile(0.6)]
    return Aggregates(
        like=_aggregate(holdout.iloc[:400]),
        drifted=_aggregate(dear),
        small=_aggregate(holdout.iloc[: MIN_EVENTS - 1]),
    )


WindowMaker = Callable[..., list[tuple[bytes, bytes]]]


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
            summary = summarise(
                window, contents, profile, min_events=MIN_EVENTS, psi_threshold=PSI_THRESHOLD
            )
            errors = ErrorPane()
            for price in (100_000.0, 200_000.0, 300_000.0)[: 1 + i % 3]:
                errors.add(price * 1.1, price)  # 10 % over: MAPE 0.1
            error = ErrorSummary(window, errors)
            out += [(summary.key, summary.to_record()), (error.key, error.to_record())]
        return out

    return make


def _records(pairs: list[tuple[bytes, bytes]]) -> list[Record]:
    parsed = [parse_record(value) for _, value in pairs]
    assert None not in parsed
    return [r for r in parsed if r is not None]


def _report(records: list[Record], **kwargs: Any) -> Report:
    options: dict[str, Any] = {"window": "1m", "last": 8, "psi_threshold": PSI_THRESHOLD}
    return build_report(records, **{**options, **kwargs})


def _drift(records: list[Record], window: str = "1m") -> list[Record]:
    return [r for r in records if r["kind"] == "drift" and r["window"] == window]


def test_the_report_holds_the_newest_windows_of_one_kind_and_model(
    make_windows: WindowMaker,
) -> None:
    older = _records(make_windows(3, version="old0000000ab", start=T0 - 3_600))
    minutes = _records(make_windows(12))
    fives = _records(make_windows(4, name="5m", size=300.0))
    report = _report([*fives, *minutes, *older])

    newest = _drift(minutes)[-8:]  # windows 4..11: two like, one counts only, five drifted
    assert list(report.windows) == newest
    assert report.model_version == VERSION
    assert report.other_versions == ("old0000000ab",)
    assert report.counts_only == 1
    assert report.focus == newest[-1]
    assert [r["end"] for r in report.errors] == [r["end"] for r in newest]
    assert all(r["kind"] == "realised_error" for r in report.errors)

    focus = newest[-1]["features"]
    assert {row.feature for row in report.features} == set(FEATURES)
    for row in report.features:
        assert row.psi == focus[row.feature]["psi"]
        assert row.ks == focus[row.feature]["ks"]
        assert row.kind == ("numeric" if row.feature in NUMERIC_FEATURES else "categorical")
        assert row.drifting == (row.feature in newest[-1]["drifting_features"])
    psis = [row.psi for row in report.features]
    assert psis == sorted(psis, key=lambda v: -(v or 0.0))  # worst first
    assert report.worst is not None
    assert report.worst.feature == max(focus, key=lambda name: focus[name]["psi"] or 0.0)

    living = next(row for row in report.features if row.feature == "living_area_sqft")
    series = [w["features"]["living_area_sqft"]["psi"] for w in newest if w["features"]]
    assert living.windows_drifting == 5  # the five drifted windows, not the two like it
    assert living.max_psi == max(series)

    line = report.summary_line()
    assert line.startswith(f"8 1m windows of model {VERSION} (1 with counts only)")
    assert f"worst feature {report.worst.feature} PSI {report.worst.psi:.3f}" in line


def test_a_window_written_again_counts_once_with_its_last_record(
    make_windows: WindowMaker,
) -> None:
    records = _records(make_windows(4))
    again = {**_drift(records)[1], "events": 12_345}
    report = _report([*records, again], last=10)
    assert len(report.windows) == 4
    assert report.windows[1]["events"] == 12_345


def test_a_window_kind_that_is_not_there_is_one_clear_error(make_windows: WindowMaker) -> None:
    records = _records(make_windows(2)) + _records(make_windows(2, name="5m", size=300.0))
    with pytest.raises(DataError, match=r"no drift windows named '40s'.*windows there: 1m, 5m"):
        _report(records, window="40s")


def test_only_window_records_are_parsed() -> None:
    assert parse_record(b"not json") is None
    assert parse_record(None) is None
    assert parse_record(b'{"format": "appraise.window/2", "kind": "drift"}') is None
    fields = b'"window": "1m", "start": "1970-01-01T00:00:00Z", "model_version": "v"'
    head = b'{"format": "appraise.window/1", "kind": "drift", ' + fields
    assert parse_record(head + b', "end": "yesterday"}') is None
    assert parse_record(head + b', "end": "1970-01-01T00:01:00Z"}') is not None


def test_the_json_carries_the_records_and_their_psi(
    make_windows: WindowMaker, tmp_path: Path
) -> None:
    records = _records(make_windows(6))
    report = _report(records, source="prediction-windows", generated="2024-01-01T00:00:00Z")
    paths = write_report(report, tmp_path / "out", html_page=False)
    assert paths == [tmp_path / "out" / "report.json"]
    document = orjson.loads(paths[0].read_bytes())
    assert document["format"] == "appraise.report/1"
    assert document["windows"] == _drift(records)
    assert document["realised_error"] == [r for r in records if r["kind"] == "realised_error"]
    assert document["drift_share_threshold"] == DATASET_DRIFT_SHARE
    assert document["focus"]["end"] == records[-2]["end"]
    focus = records[-2]["features"]
    assert {row["feature"]: row["psi"] for row in document["features"]} == {
        name: values["psi"] for name, values in focus.items()
    }
    assert document["summary"] == report.summary_line()


def test_the_page_has_every_plot_inline_and_fetches_nothing(make_windows: WindowMaker) -> None:
    page = render_html(_report(_records(make_windows(10))))
    assert page.count("<svg") == FULL_PAGE_PLOTS
    for slug in ("psi-heatmap", "drift-share", "quantiles", "realised-error"):
        assert re.search(f'<figure id="plot-{slug}"><svg', page), slug
    assert all(f'id="plot-bars-{i}"' in page for i in range(1 + len(FEATURES)))
    for fetching in ("<script", "<link", "src=", "@import", "<?xml", "<!DOCTYPE svg"):
        assert fetching not in page, fetching
    assert "counts only (min 200)" in page  # the window under min_events, in the table


def test_text_from_records_is_escaped(make_windows: WindowMaker) -> None:
    version = "<img src=x onerror=alert(1)>"
    records = _records(make_windows(4, version=version))
    categories = records[-2]["distributions"]["features"]["zoning"]["categories"]
    categories[0] = "<script>$x$"  # short: bar labels are cut at 18 characters
    page = render_html(_report(records))
    assert "<img" not in page
    assert "<script" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&lt;script&gt;$x$" in page  # written into the SVG as text, not read as mathtext


def test_records_without_distributions_still_make_a_page(make_windows: WindowMaker) -> None:
    records = _records(make_windows(6))
    for record in records:
        record.pop("distributions", None)  # as written before records carried them
    page = render_html(_report(records))
    assert page.count("<svg") == 4
    assert "carry no distributions" in page


def test_windows_with_counts_only_make_a_page_without_drift(
    profile: ReferenceProfile,  # noqa: F811 - the shared fixture
    aggregates: Aggregates,
) -> None:
    windows = [Window(T0 + 60 * (i + 1), "1m", T0 + 60 * i, VERSION) for i in range(3)]
    records = [
        orjson.loads(
            summarise(
                w, aggregates.small, profile, min_events=MIN_EVENTS, psi_threshold=0.2
            ).to_record()
        )
        for w in windows
    ]
    report = _report(records)
    assert report.focus is None
    assert report.features == ()
    assert report.counts_only == 3
    assert "no window has enough events for drift values" in report.summary_line()
    page = render_html(report)
    assert page.count("<svg") == 2  # drift share (all gaps) and quantiles (reference only)
    assert "plot-psi-heatmap" not in page


def test_the_dataset_drift_share_is_the_alerts() -> None:
    rules = yaml.safe_load(Path("prometheus/rules/appraise-alerts.yml").read_text())
    alerts = {rule.get("alert"): rule for group in rules["groups"] for rule in group["rules"]}
    expression = alerts["AppraiseDatasetDrift"]["expr"]
    threshold = re.fullmatch(r".*>=\s*([0-9.]+)\s*", expression)
    assert threshold is not None, expression
    assert float(threshold.group(1)) == DATASET_DRIFT_SHARE


# --- on the embedded broker ----------------------------------------------------------------------


async def test_the_reader_reads_the_newest_windows_from_the_end_of_the_topic(
    kafka_settings: KafkaSettings, new_topic: TopicFactory, make_windows: WindowMaker
) -> None:
    topic = await new_topic()
    minutes = make_windows(40)
    fives = make_windows(40, name="5m", size=300.0, hop=60.0)  # hopping: closes every minute
    pairs = sorted([*minutes, *fives], key=lambda kv: orjson.loads(kv[1])["end"])
    await publish(kafka_settings, topic, [*pairs, (b"junk", b"not a window record")])
    total = len(pairs) + 1

    read = await read_windows(kafka_settings, topic, window="1m", last=5)
    assert read.read < total / 2  # only the end of each partition
    report = _report(read.records, last=5)
    assert list(report.windows) == _drift(_records(minutes))[-5:]

    whole = await read_windows(kafka_settings, topic, window="1m", last=100)
    assert whole.read == total
    assert whole.skipped == 1
    assert len(_report(whole.records, last=100).windows) == 40


async def test_report_command_writes_the_page_and_the_json(
    kafka_settings: KafkaSettings,
    new_topic: TopicFactory,
    make_windows: WindowMaker,
    tmp_path: Path,
) -> None:
    topic = await new_topic()
    minutes = make_windows(12)
    await publish(kafka_settings, topic, minutes)
    env = {
        "APPRAISE_KAFKA__BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "APPRAISE_TOPICS__WINDOWS": topic,
    }
    result = await _appraise("report", "--windows", "6", "--out", str(tmp_path), env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == [str(tmp_path / "report.json"), str(tmp_path / "report.html")]

    newest = _drift(_records(minutes))[-1]
    worst = max(newest["features"], key=lambda name: newest["features"][name]["psi"] or 0.0)
    assert lines[2].startswith("6 1m windows")  # 1m: the tumbling window of the defaults
    assert f"worst feature {worst} PSI {newest['features'][worst]['psi']:.3f}" in lines[2]
    page = (tmp_path / "report.html").read_text()
    assert page.count("<svg") == FULL_PAGE_PLOTS
    document = orjson.loads((tmp_path / "report.json").read_bytes())
    assert document["windows"] == _drift(_records(minutes))[-6:]
    assert {row["feature"]: row["psi"] for row in document["features"]} == {
        name: values["psi"] for name, values in newest["features"].items()
    }

    missing = await _appraise("report", "--window", "5m", "--out", str(tmp_path), env=env)
    assert missing.returncode == 2
    assert "no drift windows named '5m'" in missing.stderr
    assert "windows there: 1m" in missing.stderr


async def test_report_on_a_topic_without_windows_says_so(
    kafka_settings: KafkaSettings, new_topic: TopicFactory, tmp_path: Path
) -> None:
    topic = await new_topic()
    env = {
        "APPRAISE_KAFKA__BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "APPRAISE_TOPICS__WINDOWS": topic,
    }
    result = await _appraise("report", "--out", str(tmp_path / "never"), env=env)
    assert result.returncode == 2
    assert f"no window records on '{topic}'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "never").exists()


async def _appraise(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("APPRAISE_")}
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "stream", *args],
        capture_output=True,
        text=True,
        timeout=90,
        env={**clean, **env},
        check=False,
    )
