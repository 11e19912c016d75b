"""What ``appraise up`` plans to run: with ``--history`` the history sink is a part, ready on its
``/readyz``, and the Prometheus it runs scrapes it; without, neither."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from stream.ops.alerts import WebhookReceiver
from stream.ops.up import UpOptions, plan
from stream.settings import HistorySettings, MetricsSettings, MonitoringSettings, Settings


def _settings(tmp_path: Path) -> Settings:
    binary = tmp_path / "bin"
    binary.write_text("")  # plan only needs the monitoring binaries to exist
    return Settings(
        metrics=MetricsSettings(history_port=9555),
        monitoring=MonitoringSettings(prometheus_bin=str(binary), alertmanager_bin=str(binary)),
        history=HistorySettings(dsn="host=127.0.0.1 port=5999 dbname=appraise user=appraise"),
    )


def _scrape_jobs(run_dir: Path) -> dict[str, list[str]]:
    config = yaml.safe_load((run_dir / "config" / "prometheus.yml").read_text())
    return {
        job["job_name"]: [t for group in job["static_configs"] for t in group["targets"]]
        for job in config["scrape_configs"]
    }


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
