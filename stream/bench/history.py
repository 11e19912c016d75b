"""``appraise bench history``: does the history sink keep up with the stream app, and does a
year of windows stay queryable?

One run on the broker in use (a fresh embedded one by default), fresh topics deleted afterwards,
and a PostgreSQL server of its own (``stream.ops.postgres.LocalPostgres`` in a temporary
directory, deleted afterwards):

1. The stream app closing windows flat out (:mod:`stream.bench.history_stream`): a backlog of
   scored listings, about ``window_events`` per minute of event time; windows closed per second.
2. The history sink writing the stream app's records of this run, copied to ``records``, each
   with its realised-error record (:mod:`stream.bench.history_sink`); windows (drift records)
   and records written and committed per second.
3. ``years`` of 1-minute windows for every feature generated into the same schema, and the
   dashboard's 30-day queries timed (:mod:`stream.bench.history_query`).

``ratio_written_to_closed`` = windows written per second / windows closed per second, both
measured here: at 10 or more the sink outruns the stream app at its fastest with room to spare
(the target).
``query_30d_s`` is the slowest of ``query_runs`` runs of the one-feature query (target: 1 s).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

import orjson

from stream.bench.common import run_tag
from stream.bench.history_query import Queried, chunks, generate_and_query
from stream.bench.history_sink import Written, sink_records, write_records
from stream.bench.history_stream import Closed, close_windows
from stream.kafka.clients import make_admin, wait_until_reachable
from stream.kafka.topics import TopicSpec, delete_topics, ensure_topics
from stream.model.load import load_model
from stream.ops.postgres import LocalPostgres
from stream.settings import ScorerSettings, Settings, TopicSettings

#: The issue's targets: written / closed at least this, the 30-day query within this (s).
RATIO_TARGET: Final = 10.0
QUERY_TARGET_S: Final = 1.0
_KINDS: Final = ("listings", "predictions", "dlq", "sales", "panes", "windows")


@dataclass(frozen=True)
class HistoryBenchResult:
    """The figures of one run; ``--json`` prints them all (NaN, a skipped query: null)."""

    windows_written_per_s: float
    windows_closed_per_s: float
    ratio_written_to_closed: float
    query_30d_s: float
    query_30d_all_features_s: float
    records_written_per_s: float
    windows_closed: int
    pane_partials: int
    events: int
    window_events: int
    scorer_eps: float
    records_written: int
    drift_records_written: int
    feature_rows_written: int
    sink_batches: int
    sink_s: float
    sink_database_share: float
    year_windows: int
    year_feature_rows: int
    generate_s: float
    vacuum_s: float
    query_30d_rows: int
    query_30d_all_features_rows: int
    feature_windows_mb: float
    feature_index_mb: float
    query_30d_plan: str
    query_30d_all_features_plan: str

    def to_json(self) -> bytes:
        """One JSON object with the keys above, each figure to 3 decimals."""
        figures = {
            k: round(v, 3) if isinstance(v, float) and math.isfinite(v) else v
            for k, v in asdict(self).items()
        }
        return orjson.dumps(figures)


def steps(years: float, skip_query: bool) -> int:
    """How many steps :func:`bench_history` reports (for a progress bar)."""
    return 3 + (0 if skip_query else chunks(years) + 1)


def _mark(met: bool) -> str:
    return "met" if met else "MISSED"


def format_result(r: HistoryBenchResult) -> str:
    """The figures for a person, the targets beside them."""
    ratio_met = r.ratio_written_to_closed >= RATIO_TARGET
    lines = [
        f"written / closed  {r.ratio_written_to_closed:>12.1f} x (target >= {RATIO_TARGET:g} x: "
        f"{_mark(ratio_met)})",
        f"history sink      {r.windows_written_per_s:>12,.1f} windows/s written and committed "
        f"({r.drift_records_written:,} drift records, each with its realised-error record: "
        f"{r.records_written:,} records at {r.records_written_per_s:,.0f}/s, "
        f"{r.feature_rows_written:,} feature rows, {r.sink_batches:,} "
        f"batch{'' if r.sink_batches == 1 else 'es'} in "
        f"{r.sink_s:,.2f} s; {r.sink_database_share:.0%} of it in the database's transactions)",
        f"stream app        {r.windows_closed_per_s:>12,.1f} windows/s closed "
        f"({r.windows_closed:,} windows from {r.pane_partials:,} pane partials of "
        f"{r.events:,} events, ~{r.window_events:,} per 1-minute window; scorer "
        f"{r.scorer_eps:,.0f} events/s)",
    ]
    if math.isnan(r.query_30d_s):
        lines.append("30-day query      skipped (--skip-query)")
        return "\n".join(lines)
    query_met = r.query_30d_s <= QUERY_TARGET_S
    lines += [
        f"30-day query      {r.query_30d_s:>12.3f} s one feature, slowest run "
        f"({r.query_30d_rows:,} rows; target <= {QUERY_TARGET_S:g} s: {_mark(query_met)})",
        f"                  {r.query_30d_all_features_s:>12.3f} s every feature, highest per hour, "
        f"slowest run ({r.query_30d_all_features_rows:,} rows)",
        f"  plan, one feature:   {r.query_30d_plan}",
        f"  plan, all features:  {r.query_30d_all_features_plan}",
        f"  over {r.year_windows:,} 1-minute windows, {r.year_feature_rows:,} feature rows "
        f"(feature_windows {r.feature_windows_mb:,.0f} MB, its index feature_windows_by_feature "
        f"{r.feature_index_mb:,.0f} MB), generated in {r.generate_s:,.1f} s, "
        f"VACUUM ANALYZE {r.vacuum_s:,.1f} s",
    ]
    return "\n".join(lines)


async def bench_history(
    settings: Settings,
    scorer: ScorerSettings,
    *,
    events: int = 50_000,
    window_events: int = 100,
    records: int = 20_000,
    years: float = 1.0,
    skip_query: bool = False,
    query_runs: int = 5,
    progress: Callable[[int, str], None] = lambda done, status: None,
) -> HistoryBenchResult:
    """Run the bench (module docstring) on ``settings.kafka`` with the model in
    ``settings.model_dir``; topic names, app id and the history database are this run's own.

    Args:
        events: listings scored into the stream app's backlog.
        window_events: listings per minute of event time (per 1-minute window).
        records: window records the sink writes (half drift, half realised error).
        years: years of 1-minute windows generated for the query (with ``skip_query``: none).
        query_runs: runs of each query; the slowest is reported.
        progress: called with the steps done and what is being done.
    """
    await wait_until_reachable(settings.kafka, settings.service.broker_wait_s)
    model = load_model(settings.model_dir)
    tag = run_tag()
    names = {k: f"bench-history-{k}-{tag}" for k in _KINDS}
    sink_topic = f"bench-history-sink-{tag}"
    await ensure_topics(
        settings.kafka,
        [
            *(TopicSpec(n, 1) for n in names.values()),
            TopicSpec(sink_topic, settings.topics.partitions),
        ],
    )
    topics = TopicSettings(**names, partitions=1, replication_factor=1)
    done = 0
    try:
        progress(done, f"publishing {events:,} listings and scoring them")
        closed = await close_windows(
            settings.model_copy(update={"topics": topics}),
            scorer,
            model,
            app_id=f"bench-history-app-{tag}",
            events=events,
            window_events=window_events,
        )
        done += 2
        progress(done, f"the history sink writing {records:,} records into PostgreSQL")
        with tempfile.TemporaryDirectory(prefix="appraise-bench-history-") as root:
            server = LocalPostgres(Path(root))
            try:
                await server.start()
                history = settings.history.model_copy(
                    update={
                        "dsn": server.dsn,
                        "password_file": server.password_file,
                        "group_id": f"bench-history-{tag}",
                    }
                )
                sink_settings = settings.model_copy(
                    update={
                        "topics": topics.model_copy(update={"windows": sink_topic}),
                        "history": history,
                    }
                )
                written = await write_records(sink_settings, sink_records(closed.records, records))
                done += 1
                queried = None
                if not skip_query:

                    def step(status: str) -> None:
                        nonlocal done
                        done += status.startswith("generated ")
                        progress(done, status)

                    step(f"generating {years:g} years of 1-minute windows")
                    queried = await generate_and_query(
                        history.conninfo(), years=years, runs=query_runs, progress=step
                    )
                    done = steps(years, skip_query)
                    progress(done, "done")
            finally:
                await server.remove()
    finally:
        await _delete(settings, tag)
    return _result(closed, written, queried, events, window_events)


def _result(
    closed: Closed, written: Written, queried: Queried | None, events: int, window_events: int
) -> HistoryBenchResult:
    nan = float("nan")
    q = queried
    return HistoryBenchResult(
        windows_written_per_s=written.windows_per_second,
        windows_closed_per_s=closed.per_second,
        ratio_written_to_closed=written.windows_per_second / closed.per_second,
        query_30d_s=max(q.one_feature_s) if q else nan,
        query_30d_all_features_s=max(q.all_features_s) if q else nan,
        records_written_per_s=written.per_second,
        windows_closed=len(closed.records),
        pane_partials=closed.partials,
        events=events,
        window_events=window_events,
        scorer_eps=closed.scorer_eps,
        records_written=written.records,
        drift_records_written=written.drift,
        feature_rows_written=written.feature_rows,
        sink_batches=written.batches,
        sink_s=written.seconds,
        sink_database_share=written.write_seconds / written.seconds,
        year_windows=q.windows if q else 0,
        year_feature_rows=q.feature_rows if q else 0,
        generate_s=q.generate_s if q else nan,
        vacuum_s=q.vacuum_s if q else nan,
        query_30d_rows=q.one_feature_rows if q else 0,
        query_30d_all_features_rows=q.all_features_rows if q else 0,
        feature_windows_mb=q.table_mb if q else nan,
        feature_index_mb=q.index_mb if q else nan,
        query_30d_plan=q.one_feature_plan if q else "",
        query_30d_all_features_plan=q.all_features_plan if q else "",
    )


async def _delete(settings: Settings, tag: str) -> None:
    """Delete every topic of this run: its own and the app's internal ones (all carry ``tag``)."""
    admin = make_admin(settings.kafka)
    try:
        await admin.start()
        found = [t for t in await admin.list_topics() if tag in t]
    finally:
        await admin.close()
    await delete_topics(settings.kafka, found)
