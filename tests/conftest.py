"""Shared fixtures: one embedded broker, one local PostgreSQL and one trained model for the whole
session, and a fresh topic and a fresh database per test.

Tests that use ``broker`` (directly or through ``kafka_settings``/``new_topic``) or
``postgres_server`` (or ``postgres_db``) are marked ``integration`` automatically;
``pytest -m "not integration"`` runs without a broker or a database server.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from psycopg import sql

from stream.kafka.broker import EmbeddedBroker
from stream.kafka.topics import TopicSpec, delete_topics, ensure_topics, topic_specs
from stream.model.load import load_model
from stream.model.predict import LoadedModel
from stream.model.train import train
from stream.ops.postgres import LocalPostgres
from stream.settings import KafkaSettings, Settings
from tests.needs import postgres_bin
from tests.postgres import Database, connect, with_dbname

#: ``await new_topic()`` or ``await new_topic(partitions=8)``: the name of a fresh topic.
TopicFactory = Callable[..., Awaitable[str]]

_BROKER_FIXTURES = {"broker", "kafka_settings", "new_topic"}
_POSTGRES_FIXTURES = {"postgres_server", "postgres_db"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if (_BROKER_FIXTURES | _POSTGRES_FIXTURES) & set(getattr(item, "fixturenames", ())):
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


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalPostgres]:
    """A real PostgreSQL server (``stream.ops.postgres.LocalPostgres``) on a free port for the
    session; its cluster is deleted at the end. Tests use their own database: ``postgres_db``.

    Missing binaries: the test fails under CI and is skipped elsewhere (``tests.needs``)."""
    server = LocalPostgres(tmp_path_factory.mktemp("postgres"), bin_dir=str(postgres_bin()))
    try:
        await server.start()
        yield server
    finally:
        await server.remove()  # stops it; also deletes a data directory kept outside tmp_path


@pytest_asyncio.fixture(loop_scope="session")
async def postgres_db(postgres_server: LocalPostgres) -> AsyncIterator[Database]:
    """A fresh, empty database on the session's server (``test_<uuid hex>``), dropped afterwards
    even if the test left connections open. Connect with ``tests.postgres.connect(db.dsn,
    db.password_file)``."""
    name = f"test_{uuid.uuid4().hex}"
    dsn, password_file = postgres_server.dsn, postgres_server.password_file
    async with await connect(dsn, password_file, autocommit=True) as conn:
        await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield Database(with_dbname(dsn, name), password_file, name)
    async with await connect(dsn, password_file, autocommit=True) as conn:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        await conn.execute(drop.format(sql.Identifier(name)))
