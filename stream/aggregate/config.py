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
        # The window tables are small: in memory, rebuilt from their changelogs at start. The
        # join table is on disk (join_store, below), under the data directory: the system's
        # temporary directory, not the cwd, <datadir>/v1/tables/<table>-<partition>.db.
        "store": "memory://",
        # One per process, removed at stop: runs of the same app id never share it, and a
        # restarted worker reads the join table back from its changelog too (no RocksDB file
        # outlives its process, so none can disagree with the changelog).
        "datadir": str(Path(tempfile.gettempdir()) / f"appraise-{{conf.name}}-{os.getpid()}-data"),
        "web_enabled": False,
    }


def join_store(table: str) -> dict[str, Any]:
    """faust ``Table`` keyword arguments of the join table's store: faust's RocksDB store
    through ``rocksdict``, one database per partition of the table (the predictions topic's), so
    the table spreads over the workers: ``<datadir>/v1/tables/<table>-<partition>.db``. (The
    URL names the table: a table's bare ``rocksdb://`` is falsy to faust, which then falls back
    to the app's memory store.)

    Its memory per database, in bytes: faust's defaults are sized for a dedicated host (3
    memtables of 64 MB and a 2 GB block cache per partition database); a million stored
    predictions are under 100 MB of data, so small memtables and cache keep the process's memory
    flat whatever the table holds: about 2 x 4 + 8 MB per partition.
    """
    options = {
        "write_buffer_size": 4 * 2**20,
        "max_write_buffer_number": 2,
        "block_cache_size": 8 * 2**20,
    }
    # faust's recovery_buffer_size stays 1,000: 10,000 read a million entries back no faster
    # (112 s against 110 s here) and held 55 MB more.
    return {"store": f"rocksdb:{table}", "options": options}


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
