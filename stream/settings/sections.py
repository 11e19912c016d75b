"""The settings sections of the connections and the runtime: Kafka, topics, metrics, the
embedded broker, monitoring and the service runtime."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

_HOST_PORT = re.compile(r"^\[?[A-Za-z0-9_.:-]+\]?:\d{1,5}$")

Port = Annotated[int, Field(ge=0, le=65535)]

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


def secret_of(value: SecretStr | None, file: Path | None) -> SecretStr | None:
    """A secret given as a setting or as a file holding it: the file's content (stripped) when
    ``file`` is set (None if it cannot be read), else ``value``."""
    if file is not None:
        try:
            return SecretStr(Path(file).read_text().strip())
        except OSError:
            return None
    return value


class Section(BaseModel):
    """A frozen settings section that refuses unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(Section):
    """How to reach the Kafka cluster (the embedded broker, a local Kafka, or a managed one)."""

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="comma-separated host:port list of the brokers"
    )
    client_id: str = Field(
        default="appraise", min_length=1, description="client id the brokers see in their logs"
    )
    security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
    )
    sasl_mechanism: SaslMechanism | None = Field(
        default=None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL protocols only)"
    )
    sasl_username: str | None = Field(default=None, description="SASL user name")
    sasl_password: SecretStr | None = Field(default=None, description="SASL password")
    sasl_password_file: Path | None = Field(
        default=None, description="file whose content is the SASL password"
    )
    ssl_cafile: Path | None = Field(default=None, description="PEM file of the CA to trust")
    ssl_certfile: Path | None = Field(default=None, description="PEM client certificate (mTLS)")
    ssl_keyfile: Path | None = Field(default=None, description="PEM client key (mTLS)")
    enable_idempotence: bool = Field(
        default=False,
        description="idempotent producer; the embedded broker (Tansu) cannot, Apache Kafka can",
    )
    request_timeout_ms: int = Field(
        default=30_000, ge=1_000, description="longest wait for a broker's answer, in ms"
    )

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
        return secret_of(self.sasl_password, self.sasl_password_file)


class TopicSettings(Section):
    """Topic names and how they are created. Every topic is created with its final partition
    count (the embedded broker cannot add partitions later; faust needs co-partitioned topics)."""

    listings: str = Field(default="listings", description="listing events in")
    predictions: str = Field(default="predictions", description="predictions out")
    dlq: str = Field(default="listings.dlq", description="dead letters: bad listings")
    sales: str = Field(default="sales", description="sale labels in")
    panes: str = Field(default="prediction-panes", description="the scorer's pane partials")
    windows: str = Field(default="prediction-windows", description="one record per window")
    partitions: int = Field(default=4, ge=1, le=1024, description="partitions of every topic")
    replication_factor: int = Field(
        default=1, ge=1, le=16, description="replicas of every topic (1 on one broker)"
    )

    @field_validator("listings", "predictions", "dlq", "sales", "panes", "windows")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", value) or value in {".", ".."}:
            raise ValueError("expected a Kafka topic name: 1-249 of letters, digits, . _ -")
        return value

    def all(self) -> tuple[str, ...]:
        """Every topic the project uses, in data-flow order."""
        return (self.listings, self.predictions, self.dlq, self.sales, self.panes, self.windows)


class MetricsSettings(Section):
    """Where each service serves ``/metrics``, ``/healthz`` and ``/readyz`` (0: a free port)."""

    host: str = Field(default="127.0.0.1", min_length=1, description="bind address")
    scorer_port: Port = Field(default=9400, description="port of `appraise score`")
    aggregate_port: Port = Field(default=9401, description="port of `appraise aggregate`")
    history_port: Port = Field(default=9402, description="port of `appraise history`")


class MonitoringSettings(Section):
    """Prometheus, Alertmanager and the alert webhook receiver that ``appraise up`` runs
    (Debian's ``prometheus`` and ``prometheus-alertmanager`` binaries), and the rule files they
    read."""

    host: str = Field(default="127.0.0.1", min_length=1, description="bind address of all three")
    prometheus_port: Port = Field(default=9090, description="Prometheus's port")
    alertmanager_port: Port = Field(default=9093, description="Alertmanager's port")
    webhook_port: Port = Field(
        default=9095, description="the receiver that records and prints Alertmanager's alerts"
    )
    prometheus_bin: str = Field(default="prometheus", min_length=1, description="name or path")
    alertmanager_bin: str = Field(
        default="prometheus-alertmanager",
        min_length=1,
        description="name or path (Debian's name; upstream's binary is called alertmanager)",
    )
    config_dir: Path | None = Field(
        default=None,
        description="directory holding prometheus.yml, alertmanager.yml and rules/*.yml "
        "(default: the copy installed with appraise, the repository's prometheus/)",
    )
    runbook_url: str = Field(
        default="",
        description="URL of RUNBOOK.md (e.g. its page in your repository); each alert's "
        "runbook_url becomes this plus its section anchor. Empty: the installed RUNBOOK.md "
        "as a file:// URL",
    )

    @field_validator("config_dir")
    @classmethod
    def _check_config_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not (value / "prometheus.yml").is_file():
            raise ValueError(f"{value} has no prometheus.yml (expected a copy of prometheus/)")
        return value


class BrokerSettings(Section):
    """The embedded broker (Tansu) started by ``appraise broker`` and ``appraise up``."""

    host: str = Field(default="127.0.0.1", description="listen address")
    port: Port = Field(default=9092, description="listen port (0: a free one)")
    startup_timeout_s: float = Field(
        default=30.0, gt=0, description="longest wait for it to answer after launch, in seconds"
    )


class ServiceSettings(Section):
    """How every long-running service (`appraise score`, `appraise aggregate`) starts and stops,
    and how long any command waits for the broker."""

    broker_wait_s: float = Field(
        default=30.0,
        gt=0,
        le=3_600,
        description="longest wait for a Kafka broker to answer at start-up, in seconds",
    )
    drain_deadline_s: float = Field(
        default=20.0,
        gt=0,
        le=600,
        description="on SIGTERM/SIGINT, longest time to finish the work in hand, commit and "
        "leave the group, in seconds; past it the process exits with code 1",
    )
