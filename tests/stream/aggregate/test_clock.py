"""The clock and the service's own time: the cap at now + skew, the idle advance by the wall
clock, and empty windows reported once per kind (``now`` is a number: no sleep)."""

from __future__ import annotations

from datetime import UTC, datetime

from stream.aggregate.clock import Clock
from stream.aggregate.windows import WindowSpec

TUMBLING = WindowSpec("1m", 60.0, 60.0)
HOPPING = WindowSpec("5m", 300.0, 60.0)
SPECS = (TUMBLING, HOPPING)
LATENESS = 30.0
FUTURE = datetime(2999, 1, 1, tzinfo=UTC).timestamp()


def _fed(starts: range, *, wall_offset: float = 0.0) -> Clock:
    """A clock fed panes of 10 s at ``starts``, each taken at wall time start + offset."""
    clock = Clock("v1", 10.0)
    for start in starts:
        clock.admit(float(start), SPECS, LATENESS)
        clock.advance_to(float(start), SPECS, LATENESS)
        clock.note_arrival(start + wall_offset)
    return clock


def test_a_watermark_beyond_the_cap_is_pulled_back_and_its_panes_forgotten() -> None:
    clock = _fed(range(0, 60, 10))
    clock.admit(FUTURE, SPECS, LATENESS)  # blinded: every earlier window closes, panes expire
    clock.advance_to(FUTURE, SPECS, LATENESS)
    clock.note_arrival(60.0)
    assert clock.panes == [FUTURE]
    beyond = clock.cap(1_000.0)
    assert beyond == [FUTURE]
    assert clock.watermark == 1_000.0
    assert clock.panes == []
    assert clock.arrival == (60.0, 1_000.0)
    # A clock within the cap is left as it is.
    assert clock.cap(5_000.0) == []
    assert clock.watermark == 1_000.0


def test_silence_moves_the_watermark_by_the_wall_clock_from_the_last_pane() -> None:
    # A replay of 2008: event time far behind the wall clock (wall = event time + 18 years).
    offset = 567_993_600.0
    clock = _fed(range(1_200_000_000, 1_200_000_060, 10), wall_offset=offset)
    last_wall = 1_200_000_050 + offset
    assert clock.idle_target(last_wall + 89, idle_seconds=90) is None  # not idle yet
    # Idle: the watermark at the last pane plus the wall time since, not the wall clock itself.
    assert clock.idle_target(last_wall + 90, idle_seconds=90) == 1_200_000_050 + 90


def test_an_idle_advance_closes_the_open_windows_then_says_each_kind_is_empty() -> None:
    clock = _fed(range(0, 120, 10))  # panes 0..110: [60, 120) of 1m and the 5m ones are open
    closed: list[tuple[str, float]] = []
    emptied: list[tuple[str, float]] = []
    wall = 110.0
    while not clock.settled(SPECS, LATENESS):
        wall += 1.0
        target = clock.idle_target(wall, idle_seconds=90)
        if target is None:
            continue
        moved = clock.advance_to(target, SPECS, LATENESS)
        closed += [(w.name, w.start) for w, _ in moved.closed]
        emptied += [(w.name, w.start) for w in moved.emptied]
        assert len(moved.emptied) <= 2  # at most one window per kind at a time
    assert ("1m", 60.0) in closed
    assert [s for n, s in closed if n == "5m"] == [-180.0, -120.0, -60.0, 0.0, 60.0]
    # Each kind's next window after its last one with panes, and every later one the
    # watermark passed on the way, once each: 1m [120, 180) first, 5m [120, 420) last.
    assert emptied[0] == ("1m", 120.0)
    assert emptied[-1] == ("5m", 120.0)
    assert len(emptied) == len(set(emptied))
    assert clock.panes == []  # nothing kept once everything has closed
    # Settled: a further tick has nothing to do until a pane comes.
    assert clock.watermark is not None
    assert clock.watermark >= 120 + 300 + LATENESS


def test_traffic_after_a_silence_is_counted_not_dropped() -> None:
    clock = _fed(range(0, 60, 10), wall_offset=5.0)  # live: each pane taken 5 s after it began
    wall = 55.0 + 600  # ten minutes of silence
    target = clock.idle_target(wall, idle_seconds=90)
    assert target is not None
    clock.advance_to(target, SPECS, LATENESS)
    # The next live pane began 5 s before it is taken, as before the silence.
    resumed = clock.admit(wall - 5.0, SPECS, LATENESS)
    assert resumed.dropped == ()
    assert {w.name for w in resumed.accepted} == {"1m", "5m"}


def test_the_arrival_survives_the_table_and_an_old_clock_has_none() -> None:
    clock = _fed(range(0, 30, 10))
    assert clock.arrival == (20.0, 20.0)
    assert Clock.from_json(clock.to_json()) == clock
    old = clock.to_json().replace(',"arrival":[20.0,20.0]', "")
    assert '"arrival"' not in old
    assert Clock.from_json(old).arrival is None
