"""``appraise schema`` and ``appraise settings``: the contract and the settings in force."""

from __future__ import annotations

import sys
from typing import Annotated

import orjson
import typer

from stream.aggregate.policy import DriftPolicy
from stream.contract.events import EVENT_TYPES
from stream.contract.schema import json_schema
from stream.settings import load_settings


def schema(
    kind: Annotated[str, typer.Argument(metavar="KIND", help="listing, prediction or sale")],
) -> None:
    """Print the JSON Schema of an event, for teams that publish without reading Python."""
    if kind not in EVENT_TYPES:
        raise typer.BadParameter(f"{kind!r}: expected one of {', '.join(EVENT_TYPES)}")
    sys.stdout.write(orjson.dumps(json_schema(kind), option=orjson.OPT_INDENT_2).decode() + "\n")


def show_settings() -> None:
    """Print the settings in force (from APPRAISE_* variables and defaults; secrets hidden),
    and what they imply (``derived``: the drift decisions' false-alarm level per test)."""
    settings = load_settings()
    policy = DriftPolicy.of(settings.aggregate)
    shown = settings.model_dump(mode="json")
    shown["derived"] = {
        "aggregate": {"idle_after_seconds": settings.aggregate.idle_after_seconds},
        "drift": {
            "tests_per_day": policy.tests_per_day,
            "false_alarm_level_per_test": policy.alpha,
            "explained": policy.describe(),
        },
    }
    sys.stdout.write(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode() + "\n")
