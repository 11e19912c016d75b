"""Sources: the bundled hold-out stream meets the contract; JSONL passes bad lines through."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from producers.publish import encode
from producers.sources import holdout_drafts, jsonl_drafts, read_lines
from stream.contract.decoding import decode_listing


def test_the_holdout_stream_is_2008_to_2010_in_time_order_and_all_valid() -> None:
    drafts = holdout_drafts()
    assert len(drafts) == 1_611  # 622 + 648 + 341 sales in the source data
    now = datetime(2026, 1, 1, tzinfo=UTC)
    events = [
        decode_listing(encode(d, event_time="history", now=now), max_bytes=10**6) for d in drafts
    ]
    times = [event.event_time for event in events]
    assert times == sorted(times)
    assert times[0].year == 2008
    assert times[-1].year == 2010
    assert all(d.sale_price is not None and d.sale_price > 0 for d in drafts)
    assert len({event.listing_id for event in events}) == len(events)


def test_live_time_replaces_the_event_time() -> None:
    draft = holdout_drafts()[0]
    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    event = decode_listing(encode(draft, event_time="live", now=now), max_bytes=10**6)
    assert event.event_time == now


def test_jsonl_keeps_objects_and_passes_other_lines_through_untouched() -> None:
    text = b'{"listing_id": "a", "x": 1}\n\n   \nnot json\n[1, 2]\n{"listing_id": 5}\n'
    drafts = list(jsonl_drafts(read_lines(io.BytesIO(text))))
    assert [d.key for d in drafts] == [b"a", None, None, None]
    assert drafts[0].listing == {"listing_id": "a", "x": 1}
    assert [d.raw for d in drafts[1:3]] == [b"not json", b"[1, 2]"]
    assert drafts[1].listing is None
