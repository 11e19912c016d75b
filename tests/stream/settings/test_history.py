"""The history sink's settings: a DSN libpq can read, a password from the environment or a
file (never both, never shown), and what a child process is given."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from stream.errors import ConfigError
from stream.settings import Settings, load_settings, settings_env

DSN = "host=db.internal port=6543 dbname=windows user=sink"


def test_the_password_file_is_added_to_the_dsn_and_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = secrets.token_hex(8)
    secret = tmp_path / "pg"
    secret.write_text(password + "\n")
    monkeypatch.setenv("APPRAISE_HISTORY__DSN", DSN)
    monkeypatch.setenv("APPRAISE_HISTORY__PASSWORD_FILE", str(secret))
    history = load_settings().history
    assert conninfo_to_dict(history.conninfo())["password"] == password
    assert history.where() == "db.internal:6543/windows"
    assert password not in repr(history)


def test_a_password_from_the_environment_reaches_a_child_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APPRAISE_HISTORY__DSN", DSN)
    password = secrets.token_hex(8)
    monkeypatch.setenv("APPRAISE_HISTORY__PASSWORD", password)
    env = settings_env(load_settings())
    assert env["APPRAISE_HISTORY__PASSWORD"] == password
    assert env["APPRAISE_HISTORY__DSN"] == DSN


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"APPRAISE_HISTORY__DSN": "host=db dbname"}, "expected a libpq connection string"),
        (
            {
                "APPRAISE_HISTORY__PASSWORD": "pw-value-123",
                "APPRAISE_HISTORY__PASSWORD_FILE": "/etc/hosts",
            },
            "set password or password_file, not both",
        ),
        ({"APPRAISE_HISTORY__PASSWORD_FILE": "/no/such/file"}, "is not a readable file"),
        ({"APPRAISE_HISTORY__RETENTION_DAYS": "-1"}, "APPRAISE_HISTORY__RETENTION_DAYS='-1'"),
    ],
)
def test_a_bad_history_setting_is_one_clear_line(
    variables: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message) as raised:
        load_settings()
    assert "pw-value-123" not in str(raised.value)


def test_no_dsn_is_allowed_until_the_sink_needs_one() -> None:
    history = Settings().history
    assert history.dsn is None
    assert history.where() == "(no dsn)"
    with pytest.raises(ValueError, match=r"history\.dsn is not set"):
        history.conninfo()
