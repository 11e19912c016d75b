"""``appraise report`` end to end: the command on the embedded broker writes the page and the
JSON, names the window kinds there, and says so when the topic holds no window records."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import orjson

from stream.settings import KafkaSettings
from tests.conftest import TopicFactory
from tests.stream.aggregate.helpers import publish
from tests.stream.report.conftest import FULL_PAGE_PLOTS, WindowMaker, drift_of, records_of


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

    newest = drift_of(records_of(minutes))[-1]
    features = newest.features
    assert features is not None
    worst = max(features, key=lambda name: features[name].score or 0.0)
    assert lines[2].startswith("6 1m windows")  # 1m: the tumbling window of the defaults
    assert f"worst feature {worst} score {features[worst].score:.2f} (PSI" in lines[2]
    page = (tmp_path / "report.html").read_text()
    assert page.count("<svg") == FULL_PAGE_PLOTS
    document = orjson.loads((tmp_path / "report.json").read_bytes())
    assert document["windows"] == [
        r.model_dump(mode="json") for r in drift_of(records_of(minutes))[-6:]
    ]
    assert {row["feature"]: (row["score"], row["drifting"]) for row in document["features"]} == {
        name: (values.score, values.drifting) for name, values in features.items()
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
