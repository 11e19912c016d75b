"""What ``appraise up`` plans to run: with ``--history`` the history sink is a part, ready on its
``/readyz``, and the Prometheus it runs scrapes it; without, neither. With ``--scorers N``, N
scorers, each on its own port, all in Prometheus's file_sd file; more than the partitions is
refused."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from stream.errors import ConfigError
from stream.ops.alerts import WebhookReceiver
from stream.ops.parts import scorer_ports
from stream.ops.up import UpOptions, plan
from stream.settings import (
    HistorySettings,
    MetricsSettings,
    MonitoringSettings,
    Settings,
    TopicSettings,
)


def _settings(tmp_path: Path, **metrics: int) -> Settings:
    binary = tmp_path / "bin"
    binary.write_text("")  # plan only needs the monitoring binaries to exist
    return Settings(
        metrics=MetricsSettings(history_port=9555, **metrics),
        monitoring=MonitoringSettings(prometheus_bin=str(binary), alertmanager_bin=str(binary)),
        history=HistorySettings(dsn="host=127.0.0.1 port=5999 dbname=appraise user=appraise"),
    )


def _scrape_jobs(run_dir: Path) -> dict[str, list[str]]:
    config = yaml.safe_load((run_dir / "config" / "prometheus.yml").read_text())
    return {
        job["job_name"]: [
            target
            for group in job.get("static_configs", _discovered(job))
            for target in group["targets"]
        ]
        for job in config["scrape_configs"]
    }


def _discovered(job: dict[str, Any]) -> list[dict[str, Any]]:
    """The target groups of the job's file_sd files."""
    files = [f for sd in job.get("file_sd_configs", []) for f in sd["files"]]
    return [group for f in files for group in json.loads(Path(f).read_text())]


@pytest.mark.parametrize("history", [True, False])
def test_history_is_a_part_and_a_scrape_target_only_with_the_flag(
    tmp_path: Path, history: bool
) -> None:
    settings = _settings(tmp_path)
    options = UpOptions(history=history, run_dir=tmp_path / "run")
    receiver = WebhookReceiver("127.0.0.1", 9595, tmp_path / "alerts.jsonl")
    parts = {part.name: part for part in plan(settings, options, receiver, lambda _: None)}
    jobs = _scrape_jobs(options.run_dir)
    if history:
        sink = parts["history"]
        assert sink.argv[-1] == "history"
        assert sink.ready_url == "http://127.0.0.1:9555/readyz"
        assert "127.0.0.1:5999/appraise" in sink.said
        assert jobs["appraise-history"] == ["127.0.0.1:9555"]
        names = list(parts)
        assert names.index("history") > names.index("aggregate")  # after what it reads
    else:
        assert "history" not in parts
        assert "appraise-history" not in jobs


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_n_scorers_are_parts_with_their_own_ports_all_in_the_file_sd_file(tmp_path: Path) -> None:
    first = _unused_port()
    settings = _settings(tmp_path, scorer_port=first)
    options = UpOptions(scorers=3, run_dir=tmp_path / "run")
    receiver = WebhookReceiver("127.0.0.1", 9595, tmp_path / "alerts.jsonl")
    parts = plan(settings, options, receiver, lambda _: None)
    scorers = [part for part in parts if part.argv[-1] == "score"]
    assert [part.name for part in scorers] == ["scorer", "scorer-2", "scorer-3"]
    ports = [int(part.env["APPRAISE_METRICS__SCORER_PORT"]) for part in scorers]
    assert ports[0] == first
    assert len(set(ports)) == 3
    assert ports == sorted(ports)
    assert 9555 not in ports  # another part's port is never taken
    for part, port in zip(scorers, ports, strict=True):
        assert part.ready_url == f"http://127.0.0.1:{port}/readyz"
        assert part.metrics == f"127.0.0.1:{port}"
        assert part.urls == {part.name: f"http://127.0.0.1:{port}/metrics"}
    assert [p.name for p in parts].index("aggregate") == 3  # after every scorer
    assert _scrape_jobs(options.run_dir)["appraise-scorer"] == [f"127.0.0.1:{p}" for p in ports]
    groups = json.loads((options.run_dir / "config" / "scorers.json").read_text())
    assert [g["labels"]["part"] for g in groups] == ["scorer", "scorer-2", "scorer-3"]


def test_the_next_scorer_ports_skip_a_busy_one_and_the_other_parts(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        first = int(busy.getsockname()[1]) - 1
        settings = _settings(tmp_path, scorer_port=first, aggregate_port=first + 2)
        ports = scorer_ports(settings, 2)
    assert ports[0] == first
    assert ports[1] > first + 2  # first + 1 is listened on, first + 2 is the stream app's


def test_scorer_port_0_gives_each_scorer_a_free_port(tmp_path: Path) -> None:
    ports = scorer_ports(_settings(tmp_path, scorer_port=0), 4)
    assert len(set(ports)) == 4
    assert 0 not in ports


@pytest.mark.parametrize("count", [0, 5])
def test_more_scorers_than_partitions_or_none_is_one_clear_error(
    tmp_path: Path, count: int
) -> None:
    settings = _settings(tmp_path).model_copy(update={"topics": TopicSettings(partitions=4)})
    options = UpOptions(scorers=count, run_dir=tmp_path / "run")
    with pytest.raises(ConfigError) as raised:
        plan(settings, options, None, lambda _: None)
    message = str(raised.value)
    assert "\n" not in message
    assert f"--scorers {count}" in message
    assert "APPRAISE_TOPICS__PARTITIONS=4" in message
