"""Window assignment by event time, lateness, dropped panes and the clock's state."""

from __future__ import annotations

import pytest

from stream.aggregate.clock import Clock
from stream.aggregate.windows import (
    PaneWidthError,
    WindowSpec,
    common_pane_width,
    duration_label,
    window_specs,
)
from stream.errors import DataError
from stream.settings import AggregateSettings

TUMBLING = WindowSpec("1m", 60.0, 60.0)
HOPPING = WindowSpec("5m", 300.0, 60.0)
SPECS = (TUMBLING, HOPPING)


@pytest.mark.parametrize(
    ("seconds", "label"),
    [(60, "1m"), (300, "5m"), (90, "90s"), (3600, "1h"), (1.5, "1.5s"), (86_400, "1d")],
)
def test_duration_label(seconds: float, label: str) -> None:
    assert duration_label(seconds) == label


def test_specs_from_settings() -> None:
    specs = window_specs(AggregateSettings())
    assert specs == SPECS
    same_size = window_specs(
        AggregateSettings(tumbling_seconds=60, hopping_seconds=60, hop_seconds=30)
    )
    assert [s.name for s in same_size] == ["1m", "1m/30s"]
    assert common_pane_width(SPECS) == 60.0
    assert common_pane_width(same_size) == 30.0


def test_hop_larger_than_size_is_refused() -> None:
    with pytest.raises(ValueError, match="hop_seconds"):
        AggregateSettings(hopping_seconds=60, hop_seconds=120)


def test_panes_are_assigned_by_event_time() -> None:
    assert TUMBLING.starts_of(130.0) == [120.0]
    assert TUMBLING.starts_of(120.0) == [120.0]
    assert TUMBLING.starts_of(-10.0) == [-60.0]
    assert HOPPING.starts_of(130.0) == [-120.0, -60.0, 0.0, 60.0, 120.0]
    assert HOPPING.last_end(130.0) == 420.0
    TUMBLING.check_pane_width(10.0)
    with pytest.raises(PaneWidthError, match="do not tile"):
        TUMBLING.check_pane_width(7.0)


def test_windows_close_when_the_watermark_passes_end_plus_lateness() -> None:
    clock = Clock("v1", 10.0)
    closed_at: dict[float, list[str]] = {}
    for start in range(0, 200, 10):
        admission = clock.admit(float(start), [TUMBLING], lateness=20.0)
        assert admission.accepted
        assert not admission.late
        assert not admission.dropped
        closed, _ = clock.advance(float(start), [TUMBLING], lateness=20.0)
        closed_at[start] = [f"{w.start:g}:{len(panes)}" for w, panes in closed]
    # [0, 60) closes once a pane starting at 60 + 20 arrives, with its six panes.
    assert closed_at[70] == []
    assert closed_at[80] == ["0:6"]
    assert closed_at[140] == ["60:6"]
    assert clock.watermark == 190.0


def test_late_panes_within_lateness_count_and_later_ones_are_dropped() -> None:
    clock = Clock("v1", 10.0)
    for start in (0.0, 10.0, 60.0, 70.0):
        clock.admit(start, [TUMBLING], 20.0)
        clock.advance(start, [TUMBLING], 20.0)
    # Watermark 70: [0, 60) has ended but is open until 80, so a partial of pane 50 is late.
    late = clock.admit(50.0, [TUMBLING], 20.0)
    assert [w.start for w in late.accepted] == [0.0]
    assert [w.start for w in late.late] == [0.0]
    closed, expired = clock.advance(80.0, [TUMBLING], 20.0)
    assert [(w.start, panes) for w, panes in closed] == [(0.0, [0.0, 10.0, 50.0])]
    assert expired == [0.0, 10.0, 50.0]
    # Now [0, 60) has closed: another partial of pane 50 is dropped.
    dropped = clock.admit(50.0, [TUMBLING], 20.0)
    assert dropped.accepted == ()
    assert [w.start for w in dropped.dropped] == [0.0]
    assert 50.0 not in clock.panes


def test_a_pane_can_be_dropped_from_old_windows_and_count_in_newer_ones() -> None:
    clock = Clock("v1", 10.0)
    clock.admit(400.0, SPECS, 0.0)
    clock.advance(400.0, SPECS, 0.0)
    admission = clock.admit(130.0, SPECS, 0.0)
    # Closed by watermark 400: the 1m window at 120 and the 5m windows ending by 400.
    assert {(w.name, w.start) for w in admission.dropped} == {
        ("1m", 120.0),
        ("5m", -120.0),
        ("5m", -60.0),
        ("5m", 0.0),
        ("5m", 60.0),
    }
    assert [(w.name, w.start) for w in admission.accepted] == [("5m", 120.0)]
    assert admission.late == ()  # it ends at 420, after the watermark: on time there


def test_hopping_windows_close_in_order_with_their_panes() -> None:
    clock = Clock("v1", 60.0)
    closed_all = []
    for start in range(0, 720, 60):
        clock.admit(float(start), SPECS, 0.0)
        closed, _ = clock.advance(float(start), SPECS, 0.0)
        closed_all += [(w.name, w.start, len(panes)) for w, panes in closed]
    assert ("5m", 0.0, 5) in closed_all
    assert ("5m", -240.0, 1) in closed_all  # the first hopping window holds one pane
    ends = [start + (60 if name == "1m" else 300) for name, start, _ in closed_all]
    assert ends == sorted(ends)
    assert len(clock.panes) <= 5  # panes no open window needs are let go


def test_clock_state_round_trips() -> None:
    clock = Clock("v1", 10.0, watermark=120.0, panes=[100.0, 110.0, 120.0])
    assert Clock.from_json(clock.to_json()) == clock
    with pytest.raises(DataError, match="not a window clock"):
        Clock.from_json('{"watermark": 1}')
    with pytest.raises(DataError, match="format"):
        Clock.from_json(clock.to_json().replace("clock/1", "clock/9"))
