"""Time scales of a run of ``appraise up``: the stream app's windows and the monitoring's timers.

``default`` keeps every duration of the rules and Alertmanager as written. ``demo`` shortens the
stream app's windows, scrapes and evaluates every second, divides every duration in the rules
(``for:`` and range selectors) by 10 and makes Alertmanager's group timers seconds, so a drift
scenario becomes a notification within about a minute on a laptop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import ValidationError

from stream.errors import ConfigError
from stream.settings import Settings


@dataclass(frozen=True, slots=True)
class Profile:
    """Time scales of a run: the stream app's windows and the monitoring's timers."""

    name: str
    description: str
    #: Settings this profile sets unless the environment sets them: section -> field -> value.
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Every duration in the rules is divided by this (1: as written).
    rules_time_divisor: int = 1
    #: Prometheus scrape and evaluation interval; None keeps prometheus.yml's.
    scrape_interval: str | None = None
    #: Alertmanager timers on every route that sets one; None keeps alertmanager.yml's.
    group_wait: str | None = None
    group_interval: str | None = None
    repeat_interval: str | None = None
    #: The producer's rate when ``--rate`` is not given.
    rate: float = 20.0
    #: Each listing's sale follows it after this many seconds (realised error needs labels).
    sale_delay_s: float = 30.0


PROFILES: Final[Mapping[str, Profile]] = {
    "default": Profile(
        "default",
        "production time scales: 1 min and 5 min windows, alerts after minutes",
    ),
    "demo": Profile(
        "demo",
        "laptop time scales: 10 s and 30 s windows, rule durations / 10, notifications within "
        "about a minute of a drift",
        settings={
            "scorer": {"pane_seconds": 2.0, "pane_publish_interval_s": 1.0},
            "aggregate": {
                "tumbling_seconds": 10.0,
                "hopping_seconds": 30.0,
                "hop_seconds": 10.0,
                "allowed_lateness_seconds": 2.0,
            },
        },
        rules_time_divisor=10,
        scrape_interval="1s",
        group_wait="2s",
        group_interval="5s",
        repeat_interval="1h",
        rate=50.0,
        sale_delay_s=5.0,
    ),
}


def profile_named(name: str) -> Profile:
    """The profile called ``name``, or a ConfigError listing the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(
            f"unknown profile {name!r}: expected one of {', '.join(PROFILES)}"
        ) from None


def with_profile(settings: Settings, profile: Profile) -> Settings:
    """``settings`` with the profile's values wherever the environment did not set the field."""
    updates: dict[str, Any] = {}
    for section, values in profile.settings.items():
        current = getattr(settings, section)
        chosen = {k: v for k, v in values.items() if k not in current.model_fields_set}
        if chosen:
            try:
                updates[section] = type(current).model_validate({**current.model_dump(), **chosen})
            except ValidationError as exc:
                problems = [e["msg"].removeprefix("Value error, ") for e in exc.errors()]
                raise ConfigError(
                    f"profile {profile.name!r} sets {section} {chosen}, which does not fit the "
                    f"APPRAISE_{section.upper()}__* variables set: " + "; ".join(problems)
                ) from None
    return settings.model_copy(update=updates)
