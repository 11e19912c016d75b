"""The window records: what the stream app writes is what the typed reader gives back, and
anything else on the topic is told apart rather than misread."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from stream.contract.windows import (
    RECORD_FORMAT,
    DriftRecord,
    ErrorRecord,
    FeatureStats,
    PredictionStats,
    read_window_record,
)

START = datetime(2008, 5, 1, 12, 0, tzinfo=UTC)
END = datetime(2008, 5, 1, 12, 1, tzinfo=UTC)


def _counts_only() -> DriftRecord:
    return DriftRecord(
        window="1m",
        start=START,
        end=END,
        model_version="v1",
        reference_model_version="v1",
        events=12,
        panes=6,
        min_events=200,
        quantiles=None,
        reference_quantiles={"0.5": 160_000.0},
        prediction=None,
        features=None,
        drifting_features=None,
        drifting_share=None,
        distributions=None,
    )


def test_a_drift_record_round_trips_with_its_key() -> None:
    record = _counts_only().model_copy(
        update={
            "quantiles": {"0.5": 170_000.0},
            "prediction": PredictionStats(psi=0.01, ks=0.02),
            "features": {
                "zoning": FeatureStats(psi=0.3, ks=None, missing_rate=0.0, unseen_rate=0.1)
            },
            "drifting_features": ["zoning"],
            "drifting_share": 0.05,
        }
    )
    raw = record.to_bytes()
    data = orjson.loads(raw)
    assert (data["format"], data["kind"]) == (RECORD_FORMAT, "drift")
    assert (data["start"], data["end"]) == ("2008-05-01T12:00:00Z", "2008-05-01T12:01:00Z")
    assert data["features"]["zoning"]["ks"] is None  # a statistic that does not apply
    again = read_window_record(raw)
    assert again == record
    assert isinstance(again, DriftRecord)
    assert again.has_drift
    assert again.key == b"drift/1m/2008-05-01T12:00:00Z/v1"
    assert not _counts_only().has_drift


def test_a_realised_error_record_is_read_as_one() -> None:
    record = ErrorRecord(
        window="1m", start=START, end=END, model_version="v1", sales=3, mae_dollars=None, mape=None
    )
    again = read_window_record(record.to_bytes())
    assert isinstance(again, ErrorRecord)
    assert again.sales == 3
    assert again.key == b"realised_error/1m/2008-05-01T12:00:00Z/v1"


def test_fields_a_newer_writer_adds_are_ignored() -> None:
    data = orjson.loads(_counts_only().to_bytes())
    data["score"] = {"zoning": 1.5}
    assert read_window_record(orjson.dumps(data)) == _counts_only()


def test_anything_else_is_not_a_window_record() -> None:
    data = orjson.loads(_counts_only().to_bytes())
    for value in (
        None,
        b"",
        b"not json",
        b"[1, 2]",
        orjson.dumps({**data, "format": "appraise.window/0"}),
        orjson.dumps({**data, "kind": "other"}),
        orjson.dumps({k: v for k, v in data.items() if k != "events"}),
        orjson.dumps({**data, "start": "2008-05-01T12:00:00"}),  # no time zone
    ):
        assert read_window_record(value) is None, value
