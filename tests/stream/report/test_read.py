"""The report's reader: only window records are typed, and on the embedded broker only the end
of each partition is read for the newest windows."""

from __future__ import annotations

import orjson

from stream.contract.windows import read_window_record
from stream.report.read import read_windows
from stream.settings import KafkaSettings
from tests.conftest import TopicFactory
from tests.stream.aggregate.helpers import publish
from tests.stream.report.conftest import WindowMaker, drift_of, records_of, report_of


def test_only_window_records_are_read() -> None:
    assert read_window_record(b"not json") is None
    assert read_window_record(None) is None
    assert read_window_record(b'{"format": "appraise.window/2", "kind": "drift"}') is None
    fields = b'"window": "1m", "start": "1970-01-01T00:00:00Z", "model_version": "v"'
    head = b'{"format": "appraise.window/1", "kind": "realised_error", ' + fields
    counts = b', "sales": 1, "mae_dollars": 1000.0, "mape": 0.1'
    assert read_window_record(head + counts + b', "end": "yesterday"}') is None
    assert read_window_record(head + counts + b', "end": "1970-01-01T00:01:00"}') is None  # zone
    assert read_window_record(head + b', "end": "1970-01-01T00:01:00Z"}') is None  # no counts
    assert read_window_record(head + counts + b', "end": "1970-01-01T00:01:00Z"}') is not None


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
    report = report_of(read.records, last=5)
    assert list(report.windows) == drift_of(records_of(minutes))[-5:]

    whole = await read_windows(kafka_settings, topic, window="1m", last=100)
    assert whole.read == total
    assert whole.skipped == 1
    assert len(report_of(whole.records, last=100).windows) == 40
