"""Shared fixtures: one embedded broker and one trained model for the whole session, and a fresh
topic per test.

Tests that use ``broker`` (directly or through ``kafka_settings``/``new_topic``) are marked
``integration`` automatically; ``pytest -m "not integration"`` runs without a broker.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from stream.kafka.broker import EmbeddedBroker
from stream.kafka.topics import TopicSpec, delete_topics, ensure_topics, topic_specs
from stream.model.load import load_model
from stream.model.predict import LoadedModel
from stream.model.train import train
from stream.settings import KafkaSettings, Settings

#: ``await new_topic()`` or ``await new_topic(partitions=8)``: the name of a fresh topic.
TopicFactory = Callable[..., Awaitable[str]]

_BROKER_FIXTURES = {"broker", "kafka_settings", "new_topic"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _BROKER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def broker(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedBroker]:
    """The embedded broker on a free port, with the project's default topics, for the session.

    Its memory storage keeps everything until the session ends: tests use their own topics."""
    log_path = tmp_path_factory.mktemp("broker") / "tansu.log"
    topics = topic_specs(Settings())
    async with EmbeddedBroker(port=0, topics=topics, log_path=log_path) as running:
        yield running


@pytest.fixture(scope="session")
def kafka_settings(broker: EmbeddedBroker) -> KafkaSettings:
    """Client settings pointing at the session's broker (built directly, no environment)."""
    return KafkaSettings(bootstrap_servers=broker.bootstrap_servers, client_id="appraise-tests")


@pytest_asyncio.fixture(loop_scope="session")
async def new_topic(kafka_settings: KafkaSettings) -> AsyncIterator[TopicFactory]:
    """A factory of fresh topics (random names, 4 partitions unless asked), deleted afterwards
    so the memory-only broker does not grow over the session."""
    created: list[str] = []

    async def create(partitions: int = 4) -> str:
        name = f"test-{uuid.uuid4().hex[:12]}"
        await ensure_topics(kafka_settings, [TopicSpec(name, partitions)])
        created.append(name)
        return name

    yield create
    await delete_topics(kafka_settings, created)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained on the bundled data into a temporary directory (about 7 s, once). Tests
    that damage a model directory work on a copy."""
    out = tmp_path_factory.mktemp("model")
    train(out)
    return out


@pytest.fixture(scope="session")
def model(model_dir: Path) -> LoadedModel:
    """The loaded model of ``model_dir`` (its trees not compiled: compile a fresh load)."""
    return load_model(model_dir)
