"""``appraise monitoring-config``: the monitoring configs of the compose stack, with runbook
links that work in a notification."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stream.cli.app import out
from stream.ops.configs import write_stack_configs
from stream.ops.profiles import profile_named
from stream.settings import load_settings


def monitoring_config(
    out_dir: Annotated[
        Path, typer.Option("--out", metavar="DIR", help="directory to write the files into")
    ],
    profile: Annotated[
        str,
        typer.Option(
            metavar="default|demo",
            help="time scales of the rules: 'default' (as written) or 'demo'",
        ),
    ] = "default",
) -> None:
    """Write prometheus.yml, alertmanager.yml and rules/*.yml for Prometheus and Alertmanager to
    read (the compose stack runs this once): the repository's files, each alert's runbook_url
    starting with APPRAISE_MONITORING__RUNBOOK_URL (the web address of your RUNBOOK.md)."""
    settings = load_settings()
    files = write_stack_configs(
        out_dir,
        profile_named(profile),
        source=settings.monitoring.config_dir,
        runbook_url=settings.monitoring.runbook_url,
    )
    for path in (files.prometheus, files.alertmanager, files.rules_dir):
        out.print(str(path), markup=False)
