"""The history database's schema: versioned DDL, applied at start-up.

Two tables hold every closed window:

``windows``
    one row per window (kind, start) and model version: the drift record's counts, prediction
    quantiles against the reference's, the prediction's drift and the drifting share, and the
    realised-error record's sales, MAE, MAPE and target drift; each record as received in a
    ``json`` column too (``appraise report`` rebuilds its records from them). A column of the
    record that has not arrived yet is NULL.
``feature_windows``
    one row per window, model version and feature: the raw statistics (PSI, KS), their critical
    values, the drift score and decision, missing, unseen and out-of-range rates. Indexed by
    ``(feature, window_kind, window_start)`` with the score and decision included, so "one
    feature over 30 days" is one index range scan (an index-only scan once vacuumed).

Why plain versioned DDL, not a migration tool: the schema is two tables and their indexes; a
migration here is a list of statements run in one transaction (PostgreSQL's DDL is
transactional, so a failed migration leaves the previous version whole), under an advisory lock
so two sinks starting together do not race. Alembic would bring SQLAlchemy, which nothing else
uses; a new version is a new entry in :data:`MIGRATIONS`, never an edit of an old one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, NamedTuple

import psycopg


class Migration(NamedTuple):
    """One schema version: what it changes, and the statements that change it."""

    version: int
    description: str
    statements: Sequence[str]


MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(
        1,
        "windows and per-feature statistics",
        (
            """
            CREATE TABLE windows (
                window_kind text NOT NULL,
                window_start timestamptz NOT NULL,
                model_version text NOT NULL,
                window_end timestamptz NOT NULL,
                -- the drift record (NULL until it arrives)
                reference_model_version text,
                events bigint,
                panes integer,
                min_events integer,
                p10 double precision,
                p50 double precision,
                p90 double precision,
                p99 double precision,
                reference_p10 double precision,
                reference_p50 double precision,
                reference_p90 double precision,
                reference_p99 double precision,
                prediction_psi double precision,
                prediction_ks double precision,
                prediction_score double precision,
                prediction_drifting boolean,
                drifting_share double precision,
                drifting_features text[],
                likely_causes jsonb,
                psi_threshold double precision,
                false_alarm_level double precision,
                drift_record json,
                drift_written_at timestamptz,
                -- the realised-error record (NULL until it arrives)
                sales bigint,
                mae_dollars double precision,
                mape double precision,
                target_psi double precision,
                target_score double precision,
                target_drifting boolean,
                error_record json,
                error_written_at timestamptz,
                PRIMARY KEY (window_kind, window_start, model_version)
            )
            """,
            "CREATE INDEX windows_by_end ON windows (window_end)",
            # The records as received are the bulk of a row (~15 KB with the distributions):
            # json keeps their text without parsing it (jsonb would, at 3 times the cost of
            # the rest of the write), and lz4 compresses them faster than the default pglz,
            # where the server was built with it.
            """
            DO $$ BEGIN
                ALTER TABLE windows ALTER drift_record SET COMPRESSION lz4,
                                    ALTER error_record SET COMPRESSION lz4;
            EXCEPTION WHEN feature_not_supported THEN NULL;
            END $$
            """,
            """
            CREATE TABLE feature_windows (
                window_kind text NOT NULL,
                window_start timestamptz NOT NULL,
                model_version text NOT NULL,
                feature text NOT NULL,
                psi double precision,
                ks double precision,
                psi_critical double precision,
                ks_critical double precision,
                noise double precision,
                score double precision,
                drifting boolean NOT NULL,
                missing_rate double precision,
                unseen_rate double precision,
                out_of_range_rate double precision,
                PRIMARY KEY (window_kind, window_start, model_version, feature),
                FOREIGN KEY (window_kind, window_start, model_version)
                    REFERENCES windows ON DELETE CASCADE
            )
            """,
            """
            CREATE INDEX feature_windows_by_feature
                ON feature_windows (feature, window_kind, window_start)
                INCLUDE (score, drifting, psi)
            """,
        ),
    ),
)
#: The version this code writes.
SCHEMA_VERSION: Final = MIGRATIONS[-1].version
# Any constant both sinks agree on: pg_advisory_xact_lock's key for "migrating appraise".
_LOCK_KEY: Final = 0x61707072  # "appr"


class SchemaError(RuntimeError):
    """The database holds a newer schema than this code knows (an older sink after an upgrade)."""


async def migrate(conn: psycopg.AsyncConnection[object]) -> tuple[int, list[int]]:
    """Bring the schema to :data:`SCHEMA_VERSION`; return (version before, versions applied).

    One transaction under an advisory lock: a concurrent sink waits, then finds nothing to do.
    Raises :class:`SchemaError` when the database is newer than this code.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_version (
                version integer PRIMARY KEY,
                description text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        cursor = await conn.execute("SELECT coalesce(max(version), 0) FROM schema_version")
        row = await cursor.fetchone()
        before = int(row[0]) if row is not None else 0  # type: ignore[index]
        if before > SCHEMA_VERSION:
            raise SchemaError(
                f"the history database is at schema version {before}, newer than this "
                f"appraise's {SCHEMA_VERSION}: upgrade appraise"
            )
        applied = []
        for migration in MIGRATIONS:
            if migration.version <= before:
                continue
            for statement in migration.statements:
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_version (version, description) VALUES (%s, %s)",
                (migration.version, migration.description),
            )
            applied.append(migration.version)
    return before, applied
