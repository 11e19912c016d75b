"""The report as data: window records (made with the real ``summarise``) in, the newest windows
of one kind and model version, the feature table, the summary line and the JSON out."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest
import yaml

from stream.contract.features import FEATURES, NUMERIC_FEATURES
from stream.contract.times import rfc3339
from stream.errors import DataError
from stream.report.build import DATASET_DRIFT_SHARE
from stream.report.write import write_report
from tests.stream.aggregate.conftest import VERSION
from tests.stream.report.conftest import (
    T0,
    WindowMaker,
    drift_of,
    errors_of,
    records_of,
    report_of,
)


def test_the_report_holds_the_newest_windows_of_one_kind_and_model(
    make_windows: WindowMaker,
) -> None:
    older = records_of(make_windows(3, version="old0000000ab", start=T0 - 3_600))
    minutes = records_of(make_windows(12))
    fives = records_of(make_windows(4, name="5m", size=300.0))
    report = report_of([*fives, *minutes, *older])

    newest = drift_of(minutes)[-8:]  # windows 4..11: two like, one counts only, five drifted
    assert list(report.windows) == newest
    assert report.model_version == VERSION
    assert report.other_versions == ("old0000000ab",)
    assert report.counts_only == 1
    assert report.focus == newest[-1]
    assert [r.end for r in report.errors] == [r.end for r in newest]
    assert all(r.kind == "realised_error" for r in report.errors)

    focus = newest[-1].features
    assert focus is not None
    assert {row.feature for row in report.features} == set(FEATURES)
    for row in report.features:
        assert row.psi == focus[row.feature].psi
        assert row.ks == focus[row.feature].ks
        assert row.kind == ("numeric" if row.feature in NUMERIC_FEATURES else "categorical")
        assert row.drifting == (row.feature in (newest[-1].drifting_features or ()))
    psis = [row.psi for row in report.features]
    assert psis == sorted(psis, key=lambda v: -(v or 0.0))  # worst first
    assert report.worst is not None
    assert report.worst.feature == max(focus, key=lambda name: focus[name].psi or 0.0)

    living = next(row for row in report.features if row.feature == "living_area_sqft")
    series = [w.features["living_area_sqft"].psi for w in newest if w.features]
    assert living.windows_drifting == 5  # the five drifted windows, not the two like it
    assert living.max_psi == max(v for v in series if v is not None)

    line = report.summary_line()
    assert line.startswith(f"8 1m windows of model {VERSION} (1 with counts only)")
    assert f"worst feature {report.worst.feature} PSI {report.worst.psi:.3f}" in line


def test_a_window_written_again_counts_once_with_its_last_record(
    make_windows: WindowMaker,
) -> None:
    records = records_of(make_windows(4))
    again = drift_of(records)[1].model_copy(update={"events": 12_345})
    report = report_of([*records, again], last=10)
    assert len(report.windows) == 4
    assert report.windows[1].events == 12_345


def test_a_window_kind_that_is_not_there_is_one_clear_error(make_windows: WindowMaker) -> None:
    records = records_of(make_windows(2)) + records_of(make_windows(2, name="5m", size=300.0))
    with pytest.raises(DataError, match=r"no drift windows named '40s'.*windows there: 1m, 5m"):
        report_of(records, window="40s")


def test_the_json_carries_the_records_and_their_psi(
    make_windows: WindowMaker, tmp_path: Path
) -> None:
    pairs = make_windows(6)
    records = records_of(pairs)
    report = report_of(records, source="prediction-windows", generated="2024-01-01T00:00:00Z")
    paths = write_report(report, tmp_path / "out", html_page=False)
    assert paths == [tmp_path / "out" / "report.json"]
    document = orjson.loads(paths[0].read_bytes())
    assert document["format"] == "appraise.report/1"
    assert document["windows"] == [r.model_dump(mode="json") for r in drift_of(records)]
    assert document["realised_error"] == [r.model_dump(mode="json") for r in errors_of(records)]
    # The records embedded as they are on the topic (times as RFC 3339 with Z).
    assert document["windows"][0] == orjson.loads(pairs[0][1])
    assert document["drift_share_threshold"] == DATASET_DRIFT_SHARE
    focus = drift_of(records)[-1]
    assert document["focus"]["end"] == rfc3339(focus.end)
    assert document["focus"]["end"].endswith("Z")
    assert focus.features is not None
    assert {row["feature"]: row["psi"] for row in document["features"]} == {
        name: values.psi for name, values in focus.features.items()
    }
    assert document["summary"] == report.summary_line()


def test_the_dataset_drift_share_is_the_alerts() -> None:
    rules = yaml.safe_load(Path("prometheus/rules/appraise-alerts.yml").read_text())
    alerts = {rule.get("alert"): rule for group in rules["groups"] for rule in group["rules"]}
    expression = alerts["AppraiseDatasetDrift"]["expr"]
    threshold = re.fullmatch(r".*>=\s*([0-9.]+)\s*", expression)
    assert threshold is not None, expression
    assert float(threshold.group(1)) == DATASET_DRIFT_SHARE
