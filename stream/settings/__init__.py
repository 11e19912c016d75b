"""Settings: one frozen object, read once at the entry point from ``APPRAISE_*`` and passed down.

Every field can be set from the environment with the prefix ``APPRAISE_`` and ``__`` between
nested names, e.g. ``APPRAISE_KAFKA__BOOTSTRAP_SERVERS=broker:9092`` or
``APPRAISE_TOPICS__PARTITIONS=8``. Secrets come from the environment or from a file
(``APPRAISE_KAFKA__SASL_PASSWORD_FILE``), never from the repository.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream.errors import ConfigError
from stream.settings.aggregate import AggregateSettings
from stream.settings.history import HistorySettings
from stream.settings.scorer import ScorerSettings
from stream.settings.sections import (
    BrokerSettings,
    KafkaSettings,
    MetricsSettings,
    MonitoringSettings,
    ServiceSettings,
    TopicSettings,
)
from stream.settings.serve import ServeSettings

ENV_PREFIX = "APPRAISE_"
ENV_NESTED_DELIMITER = "__"
#: Default of ``event_time_skew_s``, in seconds; the pure window code's default too.
DEFAULT_EVENT_TIME_SKEW_S = 300.0


class Settings(BaseSettings):
    """Everything appraise reads from its environment, validated once at start-up."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        frozen=True,
        extra="forbid",
        case_sensitive=False,
    )

    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    metrics: MetricsSettings = MetricsSettings()
    broker: BrokerSettings = BrokerSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    service: ServiceSettings = ServiceSettings()
    scorer: ScorerSettings = ScorerSettings()
    aggregate: AggregateSettings = AggregateSettings()
    serve: ServeSettings = ServeSettings()
    history: HistorySettings = HistorySettings()
    model_dir: Path = Field(
        default=Path("models/current"), description="directory written by `appraise train`"
    )
    max_event_bytes: int = Field(
        default=1_000_000,
        ge=1_024,
        description="largest accepted event value in bytes; larger ones are dead-lettered",
    )
    event_time_skew_s: float = Field(
        default=DEFAULT_EVENT_TIME_SKEW_S,
        ge=0,
        le=31_622_400,
        description="how far ahead of a service's own clock an event_time may be, in seconds: "
        "the scorer dead-letters listings further ahead (future_event_time), and the stream app "
        "drops pane partials and sales further ahead and never moves a watermark past its "
        "clock plus this",
    )


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from the environment (and ``overrides``), or raise a ConfigError that
    names the environment variable, the value received and what was expected.

    An ``APPRAISE_`` variable that names no setting is an error too: a typo must not silently
    fall back to a default.
    """
    known = set(env_names())
    unknown = sorted(
        k for k in os.environ if k.upper().startswith(ENV_PREFIX) and k.upper() not in known
    )
    if unknown:
        raise ConfigError(
            f"unknown setting {', '.join(unknown)}: expected one of {', '.join(env_names())}"
        )
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def env_names() -> list[str]:
    """Every ``APPRAISE_*`` variable a setting reads, in declaration order."""
    names = []
    for name, field in Settings.model_fields.items():
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            prefix = ENV_PREFIX + name.upper() + ENV_NESTED_DELIMITER
            names += [prefix + inner.upper() for inner in sub.model_fields]
        else:
            names.append(ENV_PREFIX + name.upper())
    return names


def describe_validation_error(exc: ValidationError) -> str:
    """One line per bad field: the environment variable, the value and what was expected."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = [str(part) for part in err["loc"]]
        env = ENV_PREFIX + ENV_NESTED_DELIMITER.join(loc).upper() if loc else ENV_PREFIX + "*"
        value = err.get("input")
        message = err["msg"].removeprefix("Value error, ")
        if isinstance(value, dict):  # a check across several fields of one section
            lines.append(f"settings {env}{ENV_NESTED_DELIMITER}*: {message}")
            continue
        shown = "<hidden>" if "PASSWORD" in env else repr(value)
        lines.append(f"setting {env}={shown} is invalid: {message}")
    return "bad settings:\n  " + "\n  ".join(lines)


def settings_env(settings: Settings) -> dict[str, str]:
    """This process's environment with ``settings`` spelled as APPRAISE_* variables instead of
    its own, so a child process reads exactly what this one decided (the broker's port, the
    model)."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(ENV_PREFIX)}
    dumped = settings.model_dump(mode="json", exclude_none=True)
    for name, value in dumped.items():
        if isinstance(value, dict):
            for inner, inner_value in value.items():
                key = f"{ENV_PREFIX}{name}{ENV_NESTED_DELIMITER}{inner}".upper()
                env[key] = _env_value(inner_value)
        else:
            env[f"{ENV_PREFIX}{name}".upper()] = _env_value(value)
    password = settings.kafka.password()
    if password is not None and settings.kafka.sasl_password_file is None:
        env[f"{ENV_PREFIX}KAFKA{ENV_NESTED_DELIMITER}SASL_PASSWORD"] = password.get_secret_value()
    history = settings.history
    if history.password is not None:
        env[f"{ENV_PREFIX}HISTORY{ENV_NESTED_DELIMITER}PASSWORD"] = (
            history.password.get_secret_value()
        )
    return env


def _env_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    return str(value)


__all__ = [
    "DEFAULT_EVENT_TIME_SKEW_S",
    "ENV_NESTED_DELIMITER",
    "ENV_PREFIX",
    "AggregateSettings",
    "BrokerSettings",
    "HistorySettings",
    "KafkaSettings",
    "MetricsSettings",
    "MonitoringSettings",
    "ScorerSettings",
    "ServeSettings",
    "ServiceSettings",
    "Settings",
    "TopicSettings",
    "describe_validation_error",
    "env_names",
    "load_settings",
    "settings_env",
]
