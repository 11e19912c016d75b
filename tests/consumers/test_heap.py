"""The scorer's garbage-collector setting: applied while a scorer runs, put back after."""

from __future__ import annotations

import gc
from contextlib import ExitStack

from consumers.heap import GC_YOUNG_THRESHOLD, scoring_heap


def test_the_heap_is_frozen_and_collections_rarer_then_restored() -> None:
    gc.unfreeze()  # a known start, whatever ran before in this process
    before = gc.get_threshold()
    with scoring_heap():
        assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD
        assert gc.get_threshold()[1:] == before[1:]
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_overlapping_scorers_restore_what_the_first_found() -> None:
    gc.unfreeze()
    before = gc.get_threshold()
    first, second = ExitStack(), ExitStack()
    first.enter_context(scoring_heap())
    second.enter_context(scoring_heap())
    first.close()  # the first scorer stops while the second still runs
    assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD
    second.close()
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
