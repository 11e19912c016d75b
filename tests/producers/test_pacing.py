"""The pacer keeps a steady rate on a virtual clock, whatever the chunking."""

from __future__ import annotations

import pytest

from producers.pacing import Pacer


class VirtualClock:
    """A clock that moves only when slept on (plus a fixed cost per call, like real work)."""

    def __init__(self, cost_per_call_s: float = 0.0) -> None:
        self.now = 0.0
        self.cost = cost_per_call_s

    def __call__(self) -> float:
        self.now += self.cost
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def run(pacer: Pacer, total: int) -> int:
    sent = 0
    while sent < total:
        sent += min(await pacer.release(sent), total - sent)
    return sent


@pytest.mark.parametrize("cost", [0.0, 0.0002, 0.003])
async def test_the_rate_holds_over_a_run(cost: float) -> None:
    clock = VirtualClock(cost)
    pacer = Pacer(2_000, clock=clock, sleep=clock.sleep)
    assert await run(pacer, 20_000) == 20_000
    # Event 20,000 is due at 9.9995 s; a slow loop may finish a call's cost later.
    assert clock.now == pytest.approx(10.0, rel=0.01)


async def test_a_late_wake_up_is_caught_up_in_one_chunk() -> None:
    clock = VirtualClock()
    pacer = Pacer(1_000, clock=clock, sleep=clock.sleep)
    assert await pacer.release(0) == 1
    clock.now += 0.5  # the loop was busy for half a second
    assert await pacer.release(1) == 500


async def test_chunks_never_exceed_the_cap() -> None:
    clock = VirtualClock()
    pacer = Pacer(1_000_000, max_chunk=50, clock=clock, sleep=clock.sleep)
    await pacer.release(0)
    clock.now += 10
    assert await pacer.release(1) == 50


async def test_no_rate_means_as_fast_as_asked() -> None:
    assert await Pacer(None, max_chunk=300).release(12345) == 300


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="rate must be above 0 events/s, got 0"):
        Pacer(0)
