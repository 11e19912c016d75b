"""The ``appraise`` command: the one place that wires the commands to the app.

Every command lives in a module of its group (``info``, ``data``, ``services``, ``report``,
``bench``) and reads its settings once, at its start; :func:`main` maps the project's own
errors, and the Kafka client's, to one line and exit code 2 (3: no broker), never a traceback.
"""

from __future__ import annotations

import typer
from aiokafka.errors import KafkaError

from stream.cli import bench, data, info, monitoring, report, services
from stream.cli.app import app, err, quiet_retries
from stream.errors import AppraiseError, BrokerError

app.command("schema", short_help="The JSON Schema of an event.")(info.schema)
app.command("settings", short_help="The settings in force.")(info.show_settings)
app.command(short_help="Run the embedded broker.")(services.broker)
app.command(short_help="Train the model and its reference profile.")(data.train)
app.command(short_help="Publish listings (and sale labels).")(data.produce)
app.command(short_help="Re-publish or re-score a range of a topic.")(data.replay)
app.command(short_help="Run everything on this machine.")(services.up)
app.command(short_help="Run the scorer.")(services.score)
app.command(short_help="Run the stream app (windows, drift, realised error).")(services.aggregate)
app.command(short_help="Run the HTTP price service (FastAPI).")(services.serve)
app.command(short_help="Run the history sink (windows into PostgreSQL).")(services.history)
app.command(short_help="Write the HTML and JSON report of the newest windows.")(report.report)
app.command("monitoring-config", short_help="Write the monitoring configs of the compose stack.")(
    monitoring.monitoring_config
)

bench_app = typer.Typer(
    help="Benchmarks: figures and ratios against baselines measured in the same run.",
    short_help="Benchmarks against baselines of the same run.",
    no_args_is_help=False,
    rich_markup_mode=None,
)
bench_app.callback(invoke_without_command=True)(bench.bench_all)
bench_app.command("scorer", short_help="The scorer against the pipe and a per-event service.")(
    bench.bench_scorer_cmd
)
bench_app.command("aggregate", short_help="The stream app against the scorer's rate.")(
    bench.bench_aggregate_cmd
)
bench_app.command("serve", short_help="The HTTP price service against per-request serving.")(
    bench.bench_serve_cmd
)
bench_app.command("history", short_help="The history sink against the stream app's rate.")(
    bench.bench_history_cmd
)
bench_app.command("detection", short_help="The drift detector against baselines, offline.")(
    bench.bench_detection_cmd
)
app.add_typer(bench_app, name="bench")


def main() -> None:
    """Console entry point: expected errors print one clear message and exit 2 (3 when no broker
    answers), no traceback."""
    quiet_retries()
    try:
        app()
    except BrokerError as exc:
        err.print(f"error: {exc}", style="red", markup=False, soft_wrap=True)
        raise SystemExit(3) from None
    except AppraiseError as exc:
        err.print(f"error: {exc}", style="red", markup=False, soft_wrap=True)
        raise SystemExit(2) from None
    except KafkaError as exc:
        err.print(f"error: the Kafka client failed: {exc!r}", style="red", markup=False)
        raise SystemExit(2) from None
