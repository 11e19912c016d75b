"""The faust app's settings, derived from the project's: the same broker timings, security and
partition counts as every other client (``stream.kafka.clients``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Final

from stream.aggregate._faust import faust
from stream.kafka.clients import client_kwargs, consumer_kwargs
from stream.settings import KafkaSettings, Settings

# Above the session timeout, as faust requires, and at least the client setting.
_REQUEST_TIMEOUT_MARGIN_S: Final = 5.0


def faust_settings(settings: Settings) -> dict[str, Any]:
    """faust ``App`` keyword arguments for ``settings``.

    The broker timings mirror ``stream.kafka.clients.consumer_kwargs`` (the one place for the Tansu
    workarounds and client settings): a 6 s session and 1 s heartbeat make the worker ready in
    about 5 s on Tansu instead of about 31 s with faust's defaults; new groups start at
    ``earliest`` because Tansu's LATEST offset is wrong.
    """
    kafka = settings.kafka
    consumer = consumer_kwargs(kafka, None)
    session_s = consumer["session_timeout_ms"] / 1000
    return {
        "broker": [f"kafka://{server}" for server in kafka.bootstrap_servers.split(",")],
        "broker_client_id": kafka.client_id,
        "broker_credentials": faust_credentials(kafka),
        "broker_session_timeout": session_s,
        "broker_heartbeat_interval": consumer["heartbeat_interval_ms"] / 1000,
        "broker_request_timeout": max(
            kafka.request_timeout_ms / 1000, session_s + _REQUEST_TIMEOUT_MARGIN_S
        ),
        "consumer_auto_offset_reset": consumer["auto_offset_reset"],
        "producer_acks": -1,  # "all", as stream.kafka.producer_kwargs
        # Explicit partitions for the internal and changelog topics: the same count as the
        # project's topics, which faust requires of a source and its tables' changelogs.
        "topic_partitions": settings.topics.partitions,
        "topic_replication_factor": settings.topics.replication_factor,
        # State is rebuilt from the changelogs at start; no RocksDB to install. faust still
        # creates a data directory: under the system's temporary directory, not the cwd.
        "store": "memory://",
        # One per process, removed at stop: runs of the same app id never share it.
        "datadir": str(Path(tempfile.gettempdir()) / f"appraise-{{conf.name}}-{os.getpid()}-data"),
        "web_enabled": False,
    }


def faust_credentials(kafka: KafkaSettings) -> faust.auth.Credentials | None:
    """faust's form of the security settings (None for PLAINTEXT)."""
    kwargs = client_kwargs(kafka)
    context = kwargs.get("ssl_context")
    if kafka.security_protocol == "SSL":
        return faust.SSLCredentials(context)
    if kafka.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        return faust.SASLCredentials(
            username=kwargs["sasl_plain_username"],
            password=kwargs["sasl_plain_password"],
            mechanism=kwargs["sasl_mechanism"],
            ssl_context=context,
        )
    return None
