"""The label join's parts below faust: the event-time clock of the retention, and the sweep of
an on-disk store (a real ``rocksdict`` database, raw, as faust's RocksDB store opens it)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from rocksdict import Options, Rdict

from stream.aggregate._faust import faust
from stream.aggregate.config import join_store
from stream.aggregate.join import EventClock, StoredPrediction, stored_event_time, sweep

DAY = 86_400.0
OFFSET_KEY = b"__faust\0offset__"


def _value(event_time: float, partition: int = 0) -> bytes:
    """A stored value as faust writes it: the JSON of the table's text."""
    text = orjson.dumps(StoredPrediction(1.0, "v1", event_time, partition).to_list()).decode()
    return orjson.dumps(text)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Rdict]:
    opened = Rdict(str(tmp_path / "join-0.db"), Options(raw_mode=True))
    yield opened
    opened.close()


def test_the_clock_expires_by_the_newest_event_time_of_each_partition() -> None:
    clock = EventClock(seconds=60 * DAY)
    assert clock.horizon(0) == -math.inf  # nothing seen: nothing expires
    clock.note(0, 1_000 * DAY, now=2_000 * DAY)
    clock.note(0, 990 * DAY, now=2_000 * DAY)  # an older one does not move it back
    assert clock.horizon(0) == 940 * DAY
    assert clock.expired(0, 939 * DAY)
    assert not clock.expired(0, 955 * DAY)  # 45 days old
    assert not clock.expired(1, 0.0)  # partition 1 has seen nothing


def test_a_prediction_from_the_future_does_not_move_the_clock_beyond_now_and_skew() -> None:
    now = 1_800_000_000.0
    clock = EventClock(seconds=3_600.0, skew_s=300.0)
    clock.note(0, 32_503_680_000.0, now)  # 3000-01-01
    assert clock.horizon(0) == now + 300 - 3_600


def test_stored_event_times_are_read_from_the_stores_bytes() -> None:
    assert stored_event_time(_value(123.5)) == 123.5
    assert stored_event_time(b"41") is None
    assert stored_event_time(b"not json") is None
    assert stored_event_time(orjson.dumps('{"price": 1}')) is None


async def test_a_sweep_deletes_what_is_past_the_horizon_in_chunks(db: Rdict) -> None:
    now = 100 * DAY
    db[OFFSET_KEY] = b"41"  # faust's offset: not a prediction, never deleted
    for i in range(25):
        db[b'"old-%d"' % i] = _value(now - 61 * DAY)
    for i in range(30):
        db[b'"kept-%d"' % i] = _value(now - 45 * DAY)
    db[b'"junk"'] = b"[1, 2]"
    clock = EventClock(seconds=60 * DAY)
    clock.note(0, now, now=now)
    tombstones: list[tuple[int, bytes]] = []
    deleted = await sweep(
        [(0, db)], clock, lambda p, k: tombstones.append((p, k)), skip=OFFSET_KEY, chunk=7
    )
    assert deleted == 25
    assert sorted(tombstones) == sorted((0, b'"old-%d"' % i) for i in range(25))
    left = set(db.keys())
    assert left == {OFFSET_KEY, b'"junk"'} | {b'"kept-%d"' % i for i in range(30)}
    assert await sweep([(0, db)], clock, lambda p, k: None, skip=OFFSET_KEY) == 0


async def test_after_a_restart_the_first_sweep_reads_the_clock_back(db: Rdict) -> None:
    for i, age in enumerate((0.0, 30 * DAY, 70 * DAY)):
        db[b'"l-%d"' % i] = _value(1_000 * DAY - age)
    clock = EventClock(seconds=60 * DAY)
    # Unknown clock: nothing is deleted, but every entry's time is noted.
    assert await sweep([(3, db)], clock, lambda p, k: None) == 0
    assert clock.horizon(3) == 940 * DAY
    assert await sweep([(3, db)], clock, lambda p, k: None) == 1
    assert b'"l-2"' not in db


def test_the_join_table_is_on_disk_with_small_buffers(tmp_path: Path) -> None:
    app = faust.App("test-join-store", store="memory://", datadir=str(tmp_path))
    table = app.Table("recent", default=None, key_type=str, value_type=str, **join_store("recent"))
    store: Any = table.data
    assert type(store).__module__ == "faust.stores.rocksdb"  # not the app's memory store
    assert store.use_rocksdict
    assert store.partition_path(2) == tmp_path / "v1" / "tables" / "recent-2.db"
    assert store.rocksdb_options.block_cache_size == 8 * 2**20
