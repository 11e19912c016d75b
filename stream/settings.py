"""One frozen settings object, read once at the entry point and passed down.

Every field can be set from the environment with the prefix ``APPRAISE_`` and ``__`` between
nested names, e.g. ``APPRAISE_KAFKA__BOOTSTRAP_SERVERS=broker:9092`` or
``APPRAISE_TOPICS__PARTITIONS=8``. Secrets come from the environment or from a file
(``APPRAISE_KAFKA__SASL_PASSWORD_FILE``), never from the repository.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

# The scorer's section lives beside the scorer (it depends on pydantic only, so no cycle).
from consumers.settings import ScorerSettings
from stream.errors import ConfigError

ENV_PREFIX = "APPRAISE_"
ENV_NESTED_DELIMITER = "__"

_HOST_PORT = re.compile(r"^\[?[A-Za-z0-9_.:-]+\]?:\d{1,5}$")

Port = Annotated[int, Field(ge=0, le=65535)]

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Section):
    """How to reach the Kafka cluster (the embedded broker, a local Kafka, or a managed one)."""

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        description="comma-separated host:port list",
    )
    client_id: str = Field(default="appraise", min_length=1)
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    sasl_password_file: Path | None = Field(
        default=None, description="file whose content is the SASL password"
    )
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    enable_idempotence: bool = Field(
        default=False,
        description="idempotent producer; the embedded broker (Tansu) cannot, Apache Kafka can",
    )
    request_timeout_ms: int = Field(default=30_000, ge=1_000)

    @field_validator("bootstrap_servers")
    @classmethod
    def _check_servers(cls, value: str) -> str:
        servers = [s.strip() for s in value.split(",")]
        bad = [
            s
            for s in servers
            if not _HOST_PORT.match(s) or not 0 < int(s.rsplit(":", 1)[1]) < 65536
        ]
        if not servers or bad:
            raise ValueError("expected a comma-separated list of host:port with a port 1-65535")
        return ",".join(servers)

    @model_validator(mode="after")
    def _check_security(self) -> KafkaSettings:
        sasl = self.security_protocol.startswith("SASL")
        if sasl and self.sasl_mechanism is None:
            raise ValueError(
                f"security_protocol {self.security_protocol} needs sasl_mechanism "
                "(PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"
            )
        if sasl and (self.sasl_username is None or self.password() is None):
            raise ValueError(
                f"security_protocol {self.security_protocol} needs sasl_username and "
                "sasl_password (or sasl_password_file)"
            )
        if self.sasl_password is not None and self.sasl_password_file is not None:
            raise ValueError("set sasl_password or sasl_password_file, not both")
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "sasl_password_file"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{name}: {path} is not a readable file")
        return self

    def password(self) -> SecretStr | None:
        """The SASL password, read from ``sasl_password_file`` when that is set."""
        if self.sasl_password_file is not None:
            try:
                return SecretStr(Path(self.sasl_password_file).read_text().strip())
            except OSError:
                return None
        return self.sasl_password


class TopicSettings(_Section):
    """Topic names and how they are created. Every topic is created with its final partition
    count (the embedded broker cannot add partitions later; faust needs co-partitioned topics)."""

    listings: str = "listings"
    predictions: str = "predictions"
    dlq: str = "listings.dlq"
    sales: str = "sales"
    panes: str = "prediction-panes"
    windows: str = "prediction-windows"
    partitions: int = Field(default=4, ge=1, le=1024)
    replication_factor: int = Field(default=1, ge=1, le=16)

    @field_validator("listings", "predictions", "dlq", "sales", "panes", "windows")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", value) or value in {".", ".."}:
            raise ValueError("expected a Kafka topic name: 1-249 of letters, digits, . _ -")
        return value

    def all(self) -> tuple[str, ...]:
        """Every topic the project uses, in data-flow order."""
        return (self.listings, self.predictions, self.dlq, self.sales, self.panes, self.windows)


class MetricsSettings(_Section):
    """Where the metrics/health sidecars listen."""

    host: str = Field(default="127.0.0.1", min_length=1, description="bind address")
    scorer_port: Port = 9400
    stream_port: Port = 9401


class MonitoringSettings(_Section):
    """Prometheus, Alertmanager and the alert webhook receiver that ``appraise up`` runs (Debian's
    ``prometheus`` and ``prometheus-alertmanager`` binaries; the configs are generated from
    ``prometheus/``)."""

    host: str = Field(default="127.0.0.1", min_length=1, description="bind address of all three")
    prometheus_port: Port = 9090
    alertmanager_port: Port = 9093
    webhook_port: Port = Field(
        default=9095, description="the receiver that records and prints Alertmanager's alerts"
    )
    prometheus_bin: str = Field(default="prometheus", min_length=1, description="name or path")
    alertmanager_bin: str = Field(
        default="prometheus-alertmanager",
        min_length=1,
        description="name or path (Debian's name; upstream's binary is called alertmanager)",
    )


class BrokerSettings(_Section):
    """The embedded broker (Tansu) started by ``appraise broker`` and ``appraise up``."""

    host: str = "127.0.0.1"
    port: Port = 9092
    startup_timeout_s: float = Field(default=30.0, gt=0)


class AggregateSettings(_Section):
    """The stream app (``appraise aggregate``): event-time windows over the scorer's pane partials,
    drift against the reference profile, and realised error from sale labels.

    Every window size and hop must be a whole multiple of the scorer's pane width
    (``APPRAISE_SCORER__PANE_SECONDS``, 10 s by default); panes of another width are refused.
    """

    app_id: str = Field(
        default="appraise-aggregate",
        pattern=r"^[A-Za-z0-9._-]{1,200}$",
        description="faust app id: the consumer group and the prefix of its internal topics",
    )
    tumbling_seconds: float = Field(default=60.0, gt=0, le=86_400, description="tumbling size")
    hopping_seconds: float = Field(default=300.0, gt=0, le=86_400, description="hopping size")
    hop_seconds: float = Field(default=60.0, gt=0, le=86_400, description="hopping advance")
    allowed_lateness_seconds: float = Field(
        default=30.0,
        ge=0,
        le=86_400,
        description="a window closes once the event-time watermark (the latest pane start seen) "
        "passes its end plus this; later panes are counted as dropped",
    )
    min_events: int = Field(
        default=200,
        ge=1,
        description="a closed window with fewer events exports counts but no drift values",
    )
    psi_threshold: float = Field(
        default=0.2, gt=0, description="a feature whose PSI is above this counts as drifting"
    )
    prediction_retention_seconds: float = Field(
        default=3_600.0,
        gt=0,
        description="how long (in event time) a prediction waits in the join table for its sale",
    )
    max_model_versions: int = Field(
        default=2, ge=1, le=16, description="model versions whose gauges are kept (newest first)"
    )
    windows_enabled: bool = Field(
        default=True, description="run the pane windows (drift, quantiles) in this process"
    )
    join_enabled: bool = Field(
        default=True,
        description="run the label join (realised error) in this process. The join stores every "
        "prediction (about a thousand a second per process): when the scorer runs faster, run it "
        "as a second process with its own app_id and windows_enabled=false, so it never slows "
        "the windows down",
    )

    @model_validator(mode="after")
    def _check_windows(self) -> AggregateSettings:
        if not (self.windows_enabled or self.join_enabled):
            raise ValueError("windows_enabled and join_enabled are both false: nothing to run")
        if self.hop_seconds > self.hopping_seconds:
            raise ValueError(
                f"hop_seconds {self.hop_seconds:g} is larger than hopping_seconds "
                f"{self.hopping_seconds:g}: a hopping window advances by at most its size"
            )
        return self


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
    scorer: ScorerSettings = ScorerSettings()
    aggregate: AggregateSettings = AggregateSettings()
    model_dir: Path = Field(
        default=Path("models/current"), description="directory written by `appraise train`"
    )
    max_event_bytes: int = Field(
        default=1_000_000,
        ge=1_024,
        description="largest accepted event value in bytes; larger ones are dead-lettered",
    )


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from the environment (and ``overrides``), or raise a ConfigError that
    names the environment variable, the value received and what was expected.

    An ``APPRAISE_`` variable that names no setting is an error too: a typo must not silently
    fall back to a default.
    """
    unknown = sorted(k for k in os.environ if k.upper().startswith(ENV_PREFIX) and not _known(k))
    if unknown:
        raise ConfigError(
            f"unknown setting {', '.join(unknown)}: expected one of {', '.join(_env_names())}"
        )
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def _env_names() -> list[str]:
    names = []
    for name, field in Settings.model_fields.items():
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            prefix = ENV_PREFIX + name.upper() + ENV_NESTED_DELIMITER
            names += [prefix + inner.upper() for inner in sub.model_fields]
        else:
            names.append(ENV_PREFIX + name.upper())
    return names


def _known(key: str) -> bool:
    return key.upper() in _env_names()


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
