"""The report as data: window records (made with the real ``summarise``) in, the newest windows
of one kind and model version, the feature table, the summary line and the JSON out."""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path

import orjson
import pytest
import yaml

from stream.contract.features import FEATURES, NUMERIC_FEATURES
from stream.contract.times import rfc3339
from stream.contract.windows import DriftRecord, read_window_record
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
    written_before_scores,
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
        stats = focus[row.feature]
        assert (row.score, row.psi, row.psi_critical) == (
            stats.score,
            stats.psi,
            stats.psi_critical,
        )
        assert (row.ks, row.ks_critical) == (stats.ks, stats.ks_critical)
        assert row.kind == ("numeric" if row.feature in NUMERIC_FEATURES else "categorical")
        assert row.drifting == stats.drifting
        assert row.out_of_range_rate == stats.out_of_range_rate
    scores = [row.score for row in report.features]
    assert scores == sorted(scores, key=lambda v: -(v or 0.0))  # worst first, by score
    assert report.worst is not None
    assert report.worst.feature == max(focus, key=lambda name: focus[name].score or 0.0)

    living = next(row for row in report.features if row.feature == "living_area_sqft")
    series = [w.features["living_area_sqft"].score for w in newest if w.features]
    assert living.windows_drifting == 5  # the five drifted windows, not the two like it
    assert living.max_score == max(v for v in series if v is not None)

    # The likely causes are the record's, with their importance in the table.
    causes = newest[-1].likely_causes
    assert causes
    assert report.causes == tuple(causes)
    ranked = {row.feature: (row.cause_rank, row.importance) for row in report.features}
    for rank, cause in enumerate(causes, start=1):
        assert ranked[cause.feature] == (rank, cause.importance)
    assert sum(1 for rank, _ in ranked.values() if rank is not None) == len(causes)

    worst = report.worst
    line = report.summary_line()
    assert line.startswith(f"8 1m windows of model {VERSION} (1 with counts only)")
    assert worst.score is not None
    assert worst.psi is not None
    assert worst.psi_critical is not None
    assert (
        f"worst feature {worst.feature} score {worst.score:.2f} "
        f"(PSI {worst.psi:.3f}, critical {worst.psi_critical:.3f})"
    ) in line
    assert line.endswith(
        "likely causes " + ", ".join(f"{c.feature} (score {c.score:.2f})" for c in causes)
    )

    # Target drift: the newest realised-error record's.
    assert report.target == report.errors[-1]
    assert report.target.target is not None
    assert report.target.target.drifting


def test_a_feature_drifts_when_its_record_says_so_not_when_its_psi_passes_a_threshold(
    make_windows: WindowMaker,
) -> None:
    records = records_of(make_windows(6))
    focus = drift_of(records)[-1]
    assert focus.features is not None
    # A small window: lot areas' PSI (0.5) is material, but no more than noise reaches there
    # (critical 0.8), so the stream app decided "not drifting" (score 0.625); zoning's lower
    # PSI is beyond both and drifts.
    quiet = focus.features["lot_area_sqft"].model_copy(
        update={"psi": 0.5, "psi_critical": 0.8, "score": 0.625, "drifting": False}
    )
    zoning = focus.features["zoning"]
    assert zoning.drifting
    assert zoning.psi is not None
    assert zoning.psi < 0.5
    features = {**focus.features, "lot_area_sqft": quiet}
    records[records.index(focus)] = focus.model_copy(update={"features": features})

    report = report_of(records)
    rows = {row.feature: row for row in report.features}
    assert not rows["lot_area_sqft"].drifting
    assert rows["lot_area_sqft"].windows_drifting == 0  # never drifted in any window
    assert rows["zoning"].drifting
    order = [row.feature for row in report.features]
    assert order.index("zoning") < order.index("lot_area_sqft")  # by score, not by PSI


def test_records_written_before_the_scores_still_make_a_report(make_windows: WindowMaker) -> None:
    pairs = make_windows(6)
    report = report_of(written_before_scores(pairs))
    focus = drift_of(records_of(pairs))[-1]
    assert focus.features is not None
    assert report.causes is None
    assert report.target is None
    assert report.psi_threshold is None
    assert all(row.score is None for row in report.features)
    # Drifting as the record's drifting_features say; worst first by PSI.
    assert {row.feature for row in report.features if row.drifting} == set(
        focus.drifting_features or ()
    )
    psis = [row.psi for row in report.features]
    assert psis == sorted(psis, key=lambda v: -(v or 0.0))
    assert report.worst is not None
    assert f"worst feature {report.worst.feature} PSI {report.worst.psi:.3f} in" in (
        report.summary_line()
    )
    assert "likely causes" not in report.summary_line()


def test_the_out_of_range_rate_is_shown_and_older_records_have_none(
    make_windows: WindowMaker,
) -> None:
    records = records_of(make_windows(4))
    focus = drift_of(records)[-1]
    assert focus.features is not None
    features = {
        name: stats.model_copy(
            update={"out_of_range_rate": 0.125 if name in NUMERIC_FEATURES else None}
        )
        for name, stats in focus.features.items()
    }
    moved = focus.model_copy(update={"features": features})
    read = read_window_record(moved.to_bytes())  # as the report reads it off the topic
    assert isinstance(read, DriftRecord)
    records[records.index(focus)] = read
    rates = {row.feature: row.out_of_range_rate for row in report_of(records).features}
    assert rates == {name: 0.125 if name in NUMERIC_FEATURES else None for name in FEATURES}
    # A record written before the field existed has none: the column says n/a.
    data = orjson.loads(focus.to_bytes())
    for stats in data["features"].values():
        del stats["out_of_range_rate"]
    older = read_window_record(orjson.dumps(data))
    assert isinstance(older, DriftRecord)
    assert {row.out_of_range_rate for row in report_of([older]).features} == {None}


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


def test_the_json_carries_the_records_their_scores_and_causes(
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
    assert {row["feature"]: (row["score"], row["psi"]) for row in document["features"]} == {
        name: (values.score, values.psi) for name, values in focus.features.items()
    }
    first = document["features"][0]
    assert first == asdict(report.features[0])
    assert {"psi_critical", "ks_critical", "drifting", "out_of_range_rate"} <= set(first)
    assert document["likely_causes"] == [c.model_dump() for c in focus.likely_causes or ()]
    assert document["psi_threshold"] == focus.psi_threshold == 0.2
    assert document["false_alarm_level"] == focus.false_alarm_level
    target = errors_of(records)[-1]
    assert target.target is not None
    assert document["target"] == {
        "start": rfc3339(target.start),
        "end": rfc3339(target.end),
        "sales": target.sales,
        **target.target.model_dump(),
    }
    assert document["summary"] == report.summary_line()


def test_the_dataset_drift_share_is_the_alerts() -> None:
    rules = yaml.safe_load(Path("prometheus/rules/appraise-alerts.yml").read_text())
    alerts = {rule.get("alert"): rule for group in rules["groups"] for rule in group["rules"]}
    expression = alerts["AppraiseDatasetDrift"]["expr"]
    threshold = re.fullmatch(r".*>=\s*([0-9.]+)\s*", expression)
    assert threshold is not None, expression
    assert float(threshold.group(1)) == DATASET_DRIFT_SHARE
