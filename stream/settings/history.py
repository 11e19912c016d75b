"""The history sink's settings section (``APPRAISE_HISTORY__*``): which PostgreSQL, with which
credentials, how it batches, retries and keeps rows."""

from __future__ import annotations

from pathlib import Path

from psycopg import ProgrammingError
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import Field, SecretStr, field_validator, model_validator

from stream.settings.sections import Section, secret_of


class HistorySettings(Section):
    """``appraise history``: windows from ``prediction-windows`` into PostgreSQL.

    Credentials come from the environment or a file, never from the repository: the password in
    ``password`` or ``password_file`` (or libpq's own ``PGPASSWORD`` / ``PGPASSFILE``); the DSN
    names the server, database and user.
    """

    dsn: str | None = Field(
        default=None,
        description="libpq connection string or postgresql:// URL of the history database "
        "(host, port, dbname, user; the password preferably in password_file). Unset: "
        "`appraise history` refuses to start, `appraise report` reads the topic",
    )
    password: SecretStr | None = Field(default=None, description="the database user's password")
    password_file: Path | None = Field(
        default=None, description="file whose content is the database user's password"
    )
    group_id: str = Field(
        default="appraise-history", min_length=1, description="consumer group of the sink"
    )
    batch_records: int = Field(
        default=1_000,
        ge=1,
        le=100_000,
        description="most window records written in one transaction",
    )
    fetch_max_wait_ms: int = Field(
        default=500, ge=0, le=60_000, description="longest wait for more records to batch, in ms"
    )
    retry_initial_s: float = Field(
        default=0.5, gt=0, le=60, description="first wait before retrying the database, in s"
    )
    retry_max_s: float = Field(
        default=30.0,
        gt=0,
        le=3_600,
        description="longest wait between retries while the database is away, in s (the sink "
        "retries until it is back; nothing is committed meanwhile)",
    )
    connect_timeout_s: float = Field(
        default=10.0, gt=0, le=600, description="longest wait for one connection attempt, in s"
    )
    lag_refresh_s: float = Field(
        default=5.0, gt=0, le=600, description="how often the sink's lag is measured, in s"
    )
    retention_days: float = Field(
        default=0,
        ge=0,
        le=36_600,
        description="windows whose end is older than this many days are deleted (hourly); "
        "0 keeps every window",
    )

    @field_validator("dsn")
    @classmethod
    def _check_dsn(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            conninfo_to_dict(value)
        except ProgrammingError:
            raise ValueError(
                "expected a libpq connection string (host=... dbname=... user=...) or a "
                "postgresql:// URL"
            ) from None
        return value

    @model_validator(mode="after")
    def _check_password(self) -> HistorySettings:
        if self.password is not None and self.password_file is not None:
            raise ValueError("set password or password_file, not both")
        if self.password_file is not None and not Path(self.password_file).is_file():
            raise ValueError(f"password_file: {self.password_file} is not a readable file")
        return self

    def secret(self) -> SecretStr | None:
        """The password, read from ``password_file`` when that is set."""
        return secret_of(self.password, self.password_file)

    def conninfo(self) -> str:
        """The connection string with the password added (``dsn`` must be set)."""
        if self.dsn is None:
            raise ValueError("history.dsn is not set")
        secret = self.secret()
        if secret is None:
            return self.dsn
        return make_conninfo(self.dsn, password=secret.get_secret_value())

    def where(self) -> str:
        """The server and database for log lines and errors: ``host:port/dbname``, no secret."""
        if self.dsn is None:
            return "(no dsn)"
        params = conninfo_to_dict(self.dsn)
        host = params.get("host") or "localhost"
        return f"{host}:{params.get('port') or 5432}/{params.get('dbname') or params.get('user')}"
