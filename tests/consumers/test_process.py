"""The scorer as a real process (``appraise score``): SIGTERM drains, SIGKILL loses nothing."""

from __future__ import annotations

import re
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from consumers.metrics import ScorerMetrics
from consumers.scorer import Scorer
from stream.contract.events import PredictionEvent
from stream.contract.malformed import MALFORMATIONS
from stream.contract.reasons import DLQ_SOURCE_OFFSET, DLQ_SOURCE_PARTITION
from stream.model.predict import LoadedModel
from stream.settings import KafkaSettings, ScorerSettings
from tests.conftest import TopicFactory
from tests.consumers.kafka_helpers import Topics, committed, new_group, publish, read_all
from tests.consumers.records import listing, valid_value
from tests.http import http_get
from tests.processes import AppraiseProcess, scorer_process

pytestmark = pytest.mark.timeout(150)

BATCH = 500
DRAIN_DEADLINE_S = 10.0
_PREDICTIONS = re.compile(rb"^appraise_predictions_total\{[^}]*\} (\S+)$", re.MULTILINE)


async def _predictions_so_far(child: AppraiseProcess) -> float:
    line = await child.wait_for_line("metrics and health on ", 30)
    url = line.split("metrics and health on ")[1].split()[0]
    status, body = await http_get(f"{url}/metrics")
    assert status == 200
    found = _PREDICTIONS.search(body)
    return float(found.group(1)) if found else 0.0


async def _wait_until_scoring(child: AppraiseProcess) -> None:
    """Until the child has delivered some predictions (its own /metrics say so)."""
    await child.wait_for_line("partitions assigned", 30)
    deadline = time.monotonic() + 30
    while await _predictions_so_far(child) == 0:
        assert time.monotonic() < deadline, "no predictions within 30 s:\n" + "".join(child.lines)


async def _finish(
    kafka: KafkaSettings, topics: Topics, model_dir: Path, model: LoadedModel, group: str, n: int
) -> None:
    """Score the ``n`` records the group has not committed yet, in this process."""
    config = ScorerSettings(group_id=group, batch_size=BATCH)
    metrics = ScorerMetrics(CollectorRegistry(), config, process_collectors=False)
    async with Scorer(topics.settings(kafka, model_dir), config, model=model, metrics=metrics) as s:
        await s.run(max_events=n, timeout=60)


async def test_sigterm_drains_commits_and_leaves_no_duplicates(
    kafka_settings: KafkaSettings, new_topic: TopicFactory, model_dir: Path, model: LoadedModel
) -> None:
    topics = Topics(*[await new_topic() for _ in range(4)])
    group, n = new_group(), 20_000
    await publish(kafka_settings, topics.listings, [(None, valid_value(i)) for i in range(n)])
    env = topics.env(kafka_settings, model_dir, group, batch_size=str(BATCH))
    env["APPRAISE_SERVICE__DRAIN_DEADLINE_S"] = str(DRAIN_DEADLINE_S)
    async with scorer_process(env) as child:
        await _wait_until_scoring(child)
        child.signal(signal.SIGTERM)
        code = await child.wait(DRAIN_DEADLINE_S + 5)
    log = "".join(child.lines)
    assert code == 0, log  # drained within the deadline (past it the code is 1)
    done = int(re.findall(r"scorer stopped: (\d+) events", log)[0])
    assert 0 < done < n, "SIGTERM came after the run, not during it"
    assert await committed(kafka_settings, group, topics.listings) == done
    first = await read_all(kafka_settings, topics.predictions)
    assert len(first) == done

    await _finish(kafka_settings, topics, model_dir, model, group, n - done)
    ids = Counter(
        PredictionEvent.model_validate_json(r.value).listing_id
        for r in await read_all(kafka_settings, topics.predictions)
    )
    assert len(ids) == n
    assert set(ids.values()) == {1}


async def test_sigkill_mid_run_loses_nothing_and_repeats_at_most_a_batch(
    kafka_settings: KafkaSettings, new_topic: TopicFactory, model_dir: Path, model: LoadedModel
) -> None:
    topics = Topics(*[await new_topic() for _ in range(4)])
    group = new_group()
    small = [m for m in MALFORMATIONS if m.reason != "too_large"]
    records: list[tuple[bytes | None, bytes | None]] = [
        (None, valid_value(i)) for i in range(30_000)
    ]
    records += [
        (f"bad-{i}".encode(), small[i % len(small)].make(listing(500_000 + i))) for i in range(300)
    ]
    placed = await publish(kafka_settings, topics.listings, records)
    invalid_at = set(placed[30_000:])

    env = topics.env(kafka_settings, model_dir, group, batch_size=str(BATCH))
    async with scorer_process(env) as child:
        await _wait_until_scoring(child)
        child.signal(signal.SIGKILL)
        assert await child.wait(10) == -signal.SIGKILL
    done = await committed(kafka_settings, group, topics.listings)
    assert 0 < done < len(records), "SIGKILL came after the run, not during it"

    await _finish(kafka_settings, topics, model_dir, model, group, len(records) - done)
    predictions = await read_all(kafka_settings, topics.predictions)
    ids = Counter(PredictionEvent.model_validate_json(r.value).listing_id for r in predictions)
    assert set(ids) == {f"ames-{i:06d}" for i in range(30_000)}  # no loss
    letters = Counter(
        (int(dict(r.headers)[DLQ_SOURCE_PARTITION]), int(dict(r.headers)[DLQ_SOURCE_OFFSET]))
        for r in await read_all(kafka_settings, topics.dlq)
    )
    assert set(letters) == invalid_at
    repeats = sum(ids.values()) - len(ids) + sum(letters.values()) - len(letters)
    assert repeats <= BATCH  # the one batch delivered but not committed when killed
