"""The history sink against a real broker and a real PostgreSQL: every window record one row
with its values, idempotent, malformed records skipped and counted, the database killed and
restarted mid-stream without a window lost or doubled, refused credentials a clear error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from consumers.history.read import read_history
from consumers.history.schema import SCHEMA_VERSION
from consumers.history.service import HistoryService
from stream.contract.windows import DriftRecord, ErrorRecord
from stream.ops.postgres import LocalPostgres
from stream.service.runtime import CONFIG_EXIT, run_service
from stream.settings import KafkaSettings
from tests.consumers.history.conftest import (
    FEATURES,
    drift_record,
    error_record,
    history_settings,
    rows,
    running_sink,
)
from tests.needs import until
from tests.postgres import Database
from tests.stream.aggregate.helpers import publish

pytestmark = pytest.mark.integration


def _keyed(*records: DriftRecord | ErrorRecord) -> list[tuple[bytes, bytes]]:
    return [(r.key, r.to_bytes()) for r in records]


async def test_every_window_record_is_one_row_with_its_values(
    kafka_settings: KafkaSettings, postgres_db: Database
) -> None:
    settings = await history_settings(kafka_settings, postgres_db.dsn, postgres_db.password_file)
    drift = [drift_record(m, events=300 + m, scale=1 + m / 2) for m in range(5)]
    errors = [error_record(m, sales=10 + m) for m in range(3)]
    await publish(kafka_settings, settings.topics.windows, _keyed(*drift, *errors))
    conninfo = settings.history.conninfo()
    async with running_sink(settings) as running:
        await until(lambda: sum(running.sink.written.records.values()) == 8, 30, "8 written")
        assert running.sample("appraise_history_schema_version") == SCHEMA_VERSION
        assert running.sample("appraise_history_database_up") == 1
        await until(
            lambda: running.sample("appraise_history_last_write_timestamp_seconds") > 0,
            5,
            "a write time",
        )
    got = await rows(
        conninfo,
        "SELECT window_start, events, p50, prediction_score, sales, mae_dollars FROM windows "
        "ORDER BY window_start",
    )
    assert [(r[0], r[1], r[2], r[3]) for r in got] == [
        (d.start, d.events, d.quantiles["0.5"], d.prediction.score)  # type: ignore[index, union-attr]
        for d in drift
    ]
    assert [(r[4], r[5]) for r in got] == [(e.sales, e.mae_dollars) for e in errors] + [
        (None, None)
    ] * 2
    features = await rows(
        conninfo,
        "SELECT window_start, feature, psi, ks, score, drifting, unseen_rate FROM "
        "feature_windows ORDER BY window_start, feature",
    )
    expected = sorted(
        (d.start, name, f.psi, f.ks, f.score, f.drifting, f.unseen_rate)
        for d in drift
        for name, f in (d.features or {}).items()
    )
    assert features == expected
    # The records as received come back whole, for the report.
    back, skipped = await read_history(conninfo, window="1m", since_s=86_400)
    assert skipped == 0
    assert sorted(back, key=lambda r: (r.kind, r.start)) == sorted(
        [*drift, *errors], key=lambda r: (r.kind, r.start)
    )


async def test_a_record_written_again_is_one_row_and_a_newer_one_replaces_it(
    kafka_settings: KafkaSettings, postgres_db: Database
) -> None:
    settings = await history_settings(kafka_settings, postgres_db.dsn, postgres_db.password_file)
    first, newer = drift_record(0, events=300), drift_record(0, events=900, scale=3)
    topic = settings.topics.windows
    conninfo = settings.history.conninfo()
    async with running_sink(settings) as running:
        written = running.sink.written.records
        # In one batch, and again in later ones: the topic is at-least-once.
        await publish(kafka_settings, topic, _keyed(first, first, error_record(0)))
        await until(lambda: written["drift"] == 1 and written["realised_error"] == 1, 30, "one")
        await publish(kafka_settings, topic, _keyed(first))
        await until(lambda: written["drift"] == 2, 30, "the same again")
        assert await rows(conninfo, "SELECT count(*), max(events) FROM windows") == [(1, 300)]
        await publish(kafka_settings, topic, _keyed(newer))
        await until(lambda: written["drift"] == 3, 30, "a newer record of the window")
    assert await rows(conninfo, "SELECT count(*), max(events), max(sales) FROM windows") == [
        (1, 900, 40)
    ]
    scores = await rows(conninfo, "SELECT feature, score FROM feature_windows ORDER BY feature")
    assert scores == sorted((n, f.score) for n, f in (newer.features or {}).items())
    assert len(scores) == len(FEATURES)


async def test_a_malformed_record_is_skipped_counted_and_committed(
    kafka_settings: KafkaSettings, postgres_db: Database
) -> None:
    settings = await history_settings(kafka_settings, postgres_db.dsn, postgres_db.password_file)
    valid = drift_record(0)
    nul = drift_record(1).to_bytes().replace(b'"v-test"', b'"v\\u0000"', 1)
    bad = [
        (b"k1", b""),
        (b"k2", b"{not json"),
        (b"k3", b"[1, 2]"),
        (b"k4", b'{"format": "someone.else/2"}'),
        (b"k5", b'{"format": "appraise.window/1", "kind": "drift", "window": "1m"}'),
        (b"k6", nul),  # valid JSON, but PostgreSQL's jsonb refuses a NUL character
    ]
    await publish(kafka_settings, settings.topics.windows, [*bad, *_keyed(valid)])
    async with running_sink(settings) as running:
        await until(lambda: running.sink.skipped == len(bad), 30, "every bad record skipped")
        await until(lambda: running.sink.written.records["drift"] == 1, 30, "the valid one")
        for reason in ("empty", "invalid_json", "not_an_object", "other_format", "invalid_record"):
            labels = {"reason": reason}
            assert running.sample("appraise_history_records_skipped_total", labels) == 1, reason
        refused = {"reason": "refused_by_database"}
        assert running.sample("appraise_history_records_skipped_total", refused) == 1
        # Skipped records are committed with the rest: nothing is left behind.
        assert await running.sink.refresh_lag() == 0
    assert await rows(settings.history.conninfo(), "SELECT count(*) FROM windows") == [(1,)]


async def test_the_database_killed_and_restarted_mid_stream_loses_nothing(
    kafka_settings: KafkaSettings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    server = LocalPostgres(tmp_path_factory.mktemp("crash"))
    await server.start()
    try:
        settings = await history_settings(kafka_settings, server.dsn, server.password_file)
        topic = settings.topics.windows
        conninfo = settings.history.conninfo()
        async with running_sink(settings) as running:
            written = running.sink.written.records
            await publish(kafka_settings, topic, _keyed(*(drift_record(m) for m in range(20))))
            await until(lambda: written["drift"] == 20, 30, "the first 20 written")
            await server.crash()
            await publish(kafka_settings, topic, _keyed(*(drift_record(m) for m in range(20, 50))))
            await until(
                lambda: running.sample("appraise_history_database_up") == 0, 30, "the outage seen"
            )
            await until(lambda: running.sample("appraise_history_behind_seconds") > 0, 30, "behind")
            assert not running.sink.ready["database_connected"]
            await server.start()
            await until(lambda: written["drift"] == 50, 60, "all 50 written after the restart")
            assert running.sample("appraise_history_database_up") == 1
            assert running.sample("appraise_history_database_retries_total") > 0
            await until(
                lambda: running.sample("appraise_history_behind_seconds") == 0, 30, "caught up"
            )
        got = await rows(conninfo, "SELECT count(*), count(DISTINCT window_start) FROM windows")
        assert got == [(50, 50)]
        assert await rows(conninfo, "SELECT count(*) FROM feature_windows") == [
            (50 * len(FEATURES),)
        ]
    finally:
        await server.remove()


async def test_windows_past_the_retention_are_deleted(
    kafka_settings: KafkaSettings, postgres_db: Database
) -> None:
    settings = await history_settings(
        kafka_settings, postgres_db.dsn, postgres_db.password_file, retention_days=30
    )
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    kept, expired = (
        drift_record(0, t0=now - timedelta(days=29)),
        drift_record(0, t0=now - timedelta(days=31)),
    )
    # One partition, the expired one first: the deletion after its write removes it.
    await publish(kafka_settings, settings.topics.windows, _keyed(expired, kept), partition=0)
    conninfo = settings.history.conninfo()
    async with running_sink(settings) as running:
        await until(lambda: running.sink.written.records["drift"] == 2, 30, "both written")
    starts = await rows(conninfo, "SELECT window_start FROM windows")
    assert starts == [(kept.start,)]
    features = await rows(conninfo, "SELECT DISTINCT window_start FROM feature_windows")
    assert features == [(kept.start,)]


async def test_credentials_the_database_refuses_stop_the_start_with_exit_2(
    kafka_settings: KafkaSettings, postgres_db: Database, tmp_path: Path
) -> None:
    wrong = tmp_path / "password"
    wrong.write_text("not-the-password\n")
    settings = await history_settings(kafka_settings, postgres_db.dsn, wrong)
    code = await run_service(HistoryService(settings), settings, handle_signals=False)
    assert code == CONFIG_EXIT
