"""``appraise report --since`` reads the history database when a DSN is set, and the topic
otherwise, with the same windows either way."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from stream.settings import KafkaSettings
from tests.consumers.history.conftest import history_settings, running_sink
from tests.needs import until
from tests.postgres import Database
from tests.stream.aggregate.helpers import publish
from tests.stream.report.conftest import WindowMaker, drift_of, records_of
from tests.stream.report.test_command import _appraise

pytestmark = pytest.mark.integration


async def test_since_reads_the_same_windows_from_the_database_and_from_the_topic(
    kafka_settings: KafkaSettings,
    postgres_db: Database,
    make_windows: WindowMaker,
    tmp_path: Path,
) -> None:
    settings = await history_settings(kafka_settings, postgres_db.dsn, postgres_db.password_file)
    minutes = make_windows(12)
    await publish(kafka_settings, settings.topics.windows, minutes)
    async with running_sink(settings) as running:
        written = running.sink.written.records
        await until(lambda: sum(written.values()) == len(minutes), 30, "every record written")
    topic_env = {
        "APPRAISE_KAFKA__BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "APPRAISE_TOPICS__WINDOWS": settings.topics.windows,
    }
    database_env = {
        **topic_env,
        "APPRAISE_HISTORY__DSN": postgres_db.dsn,
        "APPRAISE_HISTORY__PASSWORD_FILE": str(postgres_db.password_file),
    }
    drift = drift_of(records_of(minutes))
    for since, count in (("1h", 12), ("5m", 6)):
        documents = []
        for name, env in (("database", database_env), ("topic", topic_env)):
            out = tmp_path / f"{name}-{since}"
            result = await _appraise(
                "report", "--since", since, "--json-only", "--out", str(out), env=env
            )
            assert result.returncode == 0, result.stderr
            documents.append(orjson.loads((out / "report.json").read_bytes()))
        from_database, from_topic = documents
        expected = [r.model_dump(mode="json") for r in drift[-count:]]
        assert from_topic["windows"] == expected, since
        # The database sends the distributions (the bulk of a record) only where the page
        # plots them: the newest window with drift values.
        assert drift[-1].has_drift
        thin = [{**w, "distributions": None} for w in expected[:-1]] + expected[-1:]
        assert from_database["windows"] == thin, since
        assert from_database["realised_error"] == from_topic["realised_error"]
        assert from_database["source"].startswith("history database 127.0.0.1:")


async def test_since_with_an_empty_database_says_so(
    kafka_settings: KafkaSettings, postgres_db: Database, tmp_path: Path
) -> None:
    settings = await history_settings(kafka_settings, postgres_db.dsn, postgres_db.password_file)
    async with running_sink(settings):  # creates the schema, writes nothing
        pass
    env = {
        "APPRAISE_HISTORY__DSN": postgres_db.dsn,
        "APPRAISE_HISTORY__PASSWORD_FILE": str(postgres_db.password_file),
    }
    result = await _appraise("report", "--since", "30d", "--out", str(tmp_path / "x"), env=env)
    assert result.returncode == 2
    assert "no 1m windows in the history database" in result.stderr
    bad = await _appraise("report", "--since", "a month", "--out", str(tmp_path / "y"), env=env)
    assert bad.returncode == 2
    assert "expected a duration such as 30d" in bad.stderr
