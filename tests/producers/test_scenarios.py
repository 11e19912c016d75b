"""Each scenario changes the distribution it claims to and nothing else; seeds repeat exactly."""

from __future__ import annotations

import itertools
import math
import statistics
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache
from typing import Any

import orjson
import pytest

from producers.publish import encode
from producers.run import ProduceOptions, drafts_for
from producers.scenarios import (
    DEFAULT_FACTOR,
    SCENARIO_TYPES,
    Malformed,
    Scale,
    ScenarioStream,
    describe_scenarios,
    parse_scenario,
)
from producers.sources import Draft, holdout_drafts
from stream.contract.decoding import decode_listing
from stream.contract.malformed import MALFORMATIONS
from stream.contract.reasons import InvalidEvent
from stream.errors import DataError

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@cache
def base() -> tuple[Draft, ...]:
    return tuple(holdout_drafts())


def run(*scenarios: str, seed: int = 7) -> list[Draft]:
    stream = ScenarioStream([parse_scenario(s) for s in scenarios], seed=seed, pool=base())
    return list(stream.apply(base()))


def payloads(drafts: list[Draft]) -> list[bytes | None]:
    return [encode(d, event_time="history", now=NOW) for d in drafts]


def listings(drafts: list[Draft]) -> list[dict[str, Any]]:
    return [orjson.loads(p) for p in payloads(drafts) if p is not None]


def within_binomial(hits: int, n: int, share: float) -> bool:
    """``hits`` of ``n`` is within 4 standard deviations of ``share``."""
    return abs(hits - n * share) <= 4 * math.sqrt(n * share * (1 - share)) + 1


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    return {k for k in before if before[k] != after[k]}


def test_no_scenario_passes_the_stream_through() -> None:
    assert payloads(run()) == payloads(list(base()))


def test_scale_multiplies_one_feature_for_its_share_and_nothing_else() -> None:
    before = listings(list(base()))
    after = listings(run("scale:feature=living_area_sqft,factor=0.0929,share=0.5"))
    touched = 0
    for b, a in zip(before, after, strict=True):
        changed = changed_fields(b, a)
        assert changed <= {"living_area_sqft"}
        if changed:
            touched += 1
            assert a["living_area_sqft"] == pytest.approx(b["living_area_sqft"] * 0.0929)
    assert within_binomial(touched, len(before), 0.5)


def test_scale_has_a_default_factor() -> None:
    scenario = parse_scenario("scale:feature=living_area_sqft")
    assert isinstance(scenario, Scale)
    assert scenario.factor == DEFAULT_FACTOR == 1.5


@pytest.mark.parametrize(
    ("text", "field", "half"),
    [
        ("scale:feature=rooms,factor=1.5", "factor", 1.25),
        ("scale:feature=lot_area_sqft,factor=0.0929", "factor", 0.54645),
        ("inflate:share=0.5", "share", 0.25),
        ("segment:feature=zoning,top=2", "share", 0.5),
        ("unseen:feature=zoning", "share", 0.1),
        ("missing:feature=rooms,share=0.4", "share", 0.2),
        ("malformed", "share", 0.025),
    ],
)
def test_every_scenario_has_a_magnitude_and_a_half_of_it(
    text: str, field: str, half: float
) -> None:
    scenario = parse_scenario(text)
    assert field == scenario.MAGNITUDE
    halved = scenario.at(0.5)
    assert halved.magnitude == pytest.approx(half)
    assert getattr(halved, field) == pytest.approx(half)
    assert scenario.at(1.0) == scenario
    assert halved.model_dump(exclude={field}) == scenario.model_dump(exclude={field})


def test_a_magnitude_fraction_outside_0_1_is_refused() -> None:
    with pytest.raises(ValueError, match="fraction"):
        parse_scenario("missing:feature=rooms").at(1.5)


def test_segment_share_drops_that_share_of_the_listings_outside_it() -> None:
    before = listings(list(base()))
    outside = [b for b in before if b["building_type"] != "OneFam"]
    kept = listings(run("segment:feature=building_type,values=OneFam,share=0.5"))
    kept_outside = [k for k in kept if k["building_type"] != "OneFam"]
    assert len(kept) - len(kept_outside) == len(before) - len(outside)
    assert within_binomial(len(kept_outside), len(outside), 0.5)
    assert all(k in outside for k in kept_outside)


def test_scale_keeps_counts_integers_so_events_stay_valid() -> None:
    for payload in payloads(run("scale:feature=garage_cars,factor=1.5")):
        assert payload is not None
        decode_listing(payload, max_bytes=10**6)


def test_after_leaves_the_first_events_alone() -> None:
    before = listings(list(base()))
    after = listings(run("scale:feature=lot_area_sqft,factor=10,after=800"))
    assert after[:800] == before[:800]
    assert all(
        a["lot_area_sqft"] == 10 * b["lot_area_sqft"]
        for a, b in zip(after[800:], before[800:], strict=True)
    )


def test_until_ends_a_scenario_and_the_stream_is_as_before_again() -> None:
    before = listings(list(base()))
    after = listings(run("scale:feature=lot_area_sqft,factor=10,after=100,until=300"))
    assert after[:100] == before[:100]
    assert after[300:] == before[300:]
    assert all(
        a["lot_area_sqft"] == 10 * b["lot_area_sqft"]
        for a, b in zip(after[100:300], before[100:300], strict=True)
    )


def test_until_s_ends_a_scenario_by_the_clock() -> None:
    now = [0.0]

    def one_a_second() -> Iterator[Draft]:
        for i, draft in enumerate(base()[:40]):
            now[0] = float(i)
            yield draft

    stream = ScenarioStream(
        [parse_scenario("missing:feature=bedrooms,share=1,after_s=10,until_s=20")],
        seed=1,
        pool=base(),
        clock=lambda: now[0],
    )
    after = listings(list(stream.apply(one_a_second())))
    missing = [i for i, listing in enumerate(after) if listing["bedrooms"] is None]
    assert missing == list(range(10, 20))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("missing:feature=bedrooms,after=10,until=10", "until=10 must be above after=10"),
        ("missing:feature=bedrooms,after_s=5,until_s=2", "until_s=2 must be above after_s=5"),
    ],
)
def test_a_scenario_that_stops_before_it_starts_is_refused(text: str, expected: str) -> None:
    with pytest.raises(DataError, match=expected):
        parse_scenario(text)


def test_inflate_shifts_size_and_price_up_and_keeps_ids_and_times() -> None:
    before = listings(list(base()))
    inflated = run("inflate:share=0.5")
    after = listings(inflated)
    assert [a["listing_id"] for a in after] == [b["listing_id"] for b in before]
    assert [a["event_time"] for a in after] == [b["event_time"] for b in before]
    area = statistics.median(a["living_area_sqft"] for a in after)
    assert area > 1.15 * statistics.median(b["living_area_sqft"] for b in before)
    prices = [d.sale_price for d in inflated if d.sale_price is not None]
    original = [d.sale_price for d in base() if d.sale_price is not None]
    assert statistics.median(prices) > 1.25 * statistics.median(original)


def test_segment_top_keeps_only_the_most_expensive_neighbourhoods() -> None:
    kept = listings(run("segment:feature=neighbourhood,top=3"))
    by_hood: dict[str, list[float]] = {}
    for draft in base():
        assert draft.listing is not None
        assert draft.sale_price is not None
        by_hood.setdefault(draft.listing["neighbourhood"], []).append(draft.sale_price)
    ranked = sorted(by_hood, key=lambda h: statistics.median(by_hood[h]), reverse=True)
    assert {k["neighbourhood"] for k in kept} == set(ranked[:3])
    assert len(kept) == sum(len(by_hood[h]) for h in ranked[:3])


def test_segment_by_values_after_a_count() -> None:
    kept = listings(run("segment:feature=building_type,values=Duplex|Twnhs,after=100"))
    before = listings(list(base()))
    assert kept[:100] == before[:100]
    assert {k["building_type"] for k in kept[100:]} == {"Duplex", "Twnhs"}


def test_unseen_replaces_a_share_of_one_category() -> None:
    before = listings(list(base()))
    after = listings(run("unseen:feature=neighbourhood,value=Atlantis,share=0.3"))
    touched = [b for b, a in zip(before, after, strict=True) if changed_fields(b, a)]
    assert all(
        changed_fields(b, a) == {"neighbourhood"} and a["neighbourhood"] == "Atlantis"
        for b, a in zip(before, after, strict=True)
        if changed_fields(b, a)
    )
    assert within_binomial(len(touched), len(before), 0.3)


def test_missing_nulls_a_share_of_one_feature() -> None:
    before = listings(list(base()))
    after = listings(run("missing:feature=basement_area_sqft,share=0.2"))
    nulls = sum(a["basement_area_sqft"] is None for a in after)
    assert all(
        changed_fields(b, a) <= {"basement_area_sqft"} for b, a in zip(before, after, strict=True)
    )
    assert within_binomial(nulls, len(before), 0.2)


def test_malformed_injects_every_kind_at_its_rate_with_the_original_key() -> None:
    drafts = run("malformed:share=0.3")
    bad = [d for d in drafts if d.listing is None]
    assert within_binomial(len(bad), len(drafts), 0.3)
    reasons: Counter[str] = Counter()
    for draft, original in zip(drafts, base(), strict=True):
        assert draft.key == original.key
        if draft.listing is None:
            with pytest.raises(InvalidEvent) as caught:
                decode_listing(draft.raw, max_bytes=1_000_000)
            reasons[caught.value.reason] += 1
    assert set(reasons) == {m.reason for m in MALFORMATIONS}


def test_the_same_seed_gives_byte_identical_output_and_another_seed_does_not() -> None:
    spec = ("inflate:share=0.3", "missing:feature=rooms,share=0.1", "malformed:share=0.05")
    assert payloads(run(*spec, seed=11)) == payloads(run(*spec, seed=11))
    assert payloads(run(*spec, seed=11)) != payloads(run(*spec, seed=12))


def test_scenarios_compose_in_order() -> None:
    after = listings(
        run("segment:feature=neighbourhood,values=North_Ames", "scale:feature=rooms,factor=2")
    )
    rooms = [b["rooms"] for b in listings(list(base())) if b["neighbourhood"] == "North_Ames"]
    assert [a["rooms"] for a in after] == [2 * r for r in rooms]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("explode", "unknown scenario 'explode': expected one of scale, inflate, segment"),
        ("scale:factor=2", "feature: Field required"),
        ("scale:feature=price,factor=2", "feature: Input should be 'living_area_sqft'"),
        ("scale:feature=rooms,factor=-1", "factor: Input should be greater than 0"),
        ("missing:feature=rooms,share=1.5", "share: Input should be less than or equal to 1"),
        ("segment:feature=neighbourhood", "give either values=A|B|... or top=N"),
        ("malformed:kinds=nan|gibberish", "unknown kinds ['gibberish']"),
        ("unseen:feature=zoning,colour=red", "colour: Extra inputs are not permitted"),
        ("scale:factor", "'factor' should be key=value"),
    ],
)
def test_a_bad_scenario_gets_one_clear_message(text: str, message: str) -> None:
    with pytest.raises(DataError) as caught:
        parse_scenario(text)
    assert message in str(caught.value)


def test_malformed_kinds_can_be_chosen() -> None:
    scenario = parse_scenario("malformed:kinds=nan|empty_id,share=1")
    assert isinstance(scenario, Malformed)
    assert scenario.kinds == ("nan", "empty_id")


def test_the_scenario_list_documents_every_scenario_and_field() -> None:
    text = describe_scenarios()
    for name in ("scale", "inflate", "segment", "unseen", "missing", "malformed"):
        assert f"\n{name}: " in f"\n{text}"
    assert "factor (default 1.5, the magnitude)" in text
    assert "after (default 0)" in text
    for kind in SCENARIO_TYPES:
        assert f"{kind.MAGNITUDE} (default" in text
        assert "Magnitude:" in (kind.__doc__ or "")


def test_with_loop_a_scenario_counts_events_across_passes() -> None:
    # ``after`` beyond one pass of the hold-out: the change starts in the second pass.
    options = ProduceOptions(
        loop=True, scenarios=(parse_scenario("scale:feature=lot_area_sqft,factor=10,after=2000"),)
    )
    drafts = list(itertools.islice(drafts_for(options), 2100))
    first = listings(list(base()))
    again = listings(drafts)
    n = len(first)
    assert again[:n] == first
    assert again[n:2000] == first[: 2000 - n]
    assert [a["lot_area_sqft"] for a in again[2000:]] == [
        10 * b["lot_area_sqft"] for b in first[2000 - n : 2100 - n]
    ]
