"""Listings and fake consumer records for the scorer's tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from stream.contract.malformed import MALFORMATIONS

START = datetime(2008, 5, 1, 12, tzinfo=UTC)
NEIGHBOURHOODS = ("North_Ames", "College_Creek", "Old_Town", "Edwards", "Somerset", "Atlantis")


def listing(i: int, **changes: Any) -> dict[str, Any]:
    """A valid listing (JSON-ready dict) that differs with ``i``: id, time (one per second from
    2008-05-01 12:00 UTC), areas, years and neighbourhood, so predictions differ too."""
    event: dict[str, Any] = {
        "listing_id": f"ames-{i:06d}",
        "event_time": (START + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "living_area_sqft": 800 + (i * 37) % 2200,
        "lot_area_sqft": 5000.0 + (i * 131) % 20000,
        "basement_area_sqft": None if i % 17 == 0 else 600 + (i * 13) % 900,
        "year_built": 1900 + i % 108,
        "year_remodelled": 1950 + i % 58,
        "garage_cars": i % 4,
        "garage_area_sqft": 250.5 * (i % 4),
        "full_baths": 1 + i % 3,
        "half_baths": i % 2,
        "bedrooms": 1 + i % 5,
        "rooms": 4 + i % 7,
        "fireplaces": i % 3,
        "latitude": 42.0 + (i % 100) / 1000,
        "longitude": -93.6 - (i % 100) / 1000,
        "neighbourhood": NEIGHBOURHOODS[i % len(NEIGHBOURHOODS)],
        "building_type": "OneFam",
        "house_style": "One_Story" if i % 2 else "Two_Story",
        "overall_condition": "Average",
        "zoning": "Residential_Low_Density",
        "central_air": None if i % 23 == 0 else "Y",
    }
    event.update(changes)
    return event


def valid_value(i: int) -> bytes:
    """Record value of the valid listing ``i``."""
    return orjson.dumps(listing(i))


def invalid_value(i: int) -> tuple[bytes | None, str]:
    """Record value of the ``i``-th invalid record (every malformation in turn) and its reason."""
    bad = MALFORMATIONS[i % len(MALFORMATIONS)]
    return bad.make(listing(1_000_000 + i)), bad.reason


@dataclass(slots=True)
class FakeRecord:
    """The attributes of an aiokafka ConsumerRecord the batch code reads."""

    value: bytes | None
    offset: int
    key: bytes | None = None
    partition: int = 0
    topic: str = "listings"
    timestamp: int = 0
    headers: tuple[tuple[str, bytes], ...] = field(default_factory=tuple)
