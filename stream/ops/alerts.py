"""The alert webhook receiver of ``appraise up``: records and prints what Alertmanager sends.

Alertmanager posts its version 4 webhook payload (status, alerts[] with labels, annotations,
startsAt/endsAt, fingerprint; groupKey) to ``/alerts/<receiver kind>``; alertmanager.yml has one
path per kind (page, ticket, other). Each alert of a payload becomes one :class:`Notification`:
appended as a JSON line to the run's ``alerts.jsonl`` and handed to a callback (the live view
prints it).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import orjson
from aiohttp import web

from stream.service.http import HttpServer

#: Notifications kept in memory for the live view (all of them go to the file).
RECENT: Final = 50


@dataclass(frozen=True, slots=True)
class Notification:
    """One alert of one webhook delivery."""

    received_at: float
    kind: str
    """The receiver path: page, ticket or other."""
    status: str
    """firing or resolved."""
    alertname: str
    labels: Mapping[str, str]
    summary: str
    description: str
    starts_at: str
    ends_at: str
    fingerprint: str

    def line(self) -> str:
        """One line for a person: time, status, name, the labels that tell alerts apart."""
        clock = time.strftime("%H:%M:%S", time.localtime(self.received_at))
        shown = ", ".join(
            f"{k}={v}"
            for k, v in sorted(self.labels.items())
            if k not in {"alertname", "severity", "job", "deployment", "instance"}
        )
        severity = self.labels.get("severity", "")
        return (
            f"{clock} {self.status.upper():8} {self.alertname} [{severity}]"
            + (f" {shown}" if shown else "")
            + (f": {self.description}" if self.status == "firing" and self.description else "")
        )


def notifications(payload: Mapping[str, Any], kind: str, received_at: float) -> list[Notification]:
    """The notifications of one webhook payload; raises ValueError if it is not version 4."""
    if str(payload.get("version")) != "4" or not isinstance(payload.get("alerts"), list):
        raise ValueError("expected Alertmanager's webhook payload, version 4, with alerts[]")
    found = []
    for alert in payload["alerts"]:
        labels = {str(k): str(v) for k, v in (alert.get("labels") or {}).items()}
        annotations = alert.get("annotations") or {}
        found.append(
            Notification(
                received_at=received_at,
                kind=kind,
                status=str(alert.get("status", payload.get("status", ""))),
                alertname=labels.get("alertname", ""),
                labels=labels,
                summary=str(annotations.get("summary", "")),
                description=" ".join(str(annotations.get("description", "")).split()),
                starts_at=str(alert.get("startsAt", "")),
                ends_at=str(alert.get("endsAt", "")),
                fingerprint=str(alert.get("fingerprint", "")),
            )
        )
    return found


def read_notifications(path: Path) -> list[Notification]:
    """The notifications recorded in an ``alerts.jsonl`` (none if the file is not there)."""
    if not path.is_file():
        return []
    return [
        Notification(**orjson.loads(line))
        for line in path.read_bytes().splitlines()
        if line.strip()
    ]


class WebhookReceiver(HttpServer):
    """An aiohttp server on ``host:port`` that records every notification to ``path``."""

    serves = "alert webhook receiver"
    paths = "(POST /alerts/<kind>)"

    def __init__(
        self,
        host: str,
        port: int,
        path: Path,
        on_notification: Callable[[Notification], None] = lambda _: None,
    ) -> None:
        super().__init__(host, port)
        self.path = path
        self._on_notification = on_notification
        self._recent: deque[Notification] = deque(maxlen=RECENT)

    def recent(self) -> Sequence[Notification]:
        """The latest notifications, oldest first."""
        return tuple(self._recent)

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/alerts/{kind}", self._receive)

    async def start(self) -> None:
        """Listen; the file is created (empty) first, so a reader finds it from the start."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()
        await super().start()

    async def _receive(self, request: web.Request) -> web.Response:
        try:
            payload = orjson.loads(await request.read())
            received = notifications(payload, request.match_info["kind"], time.time())
        except (orjson.JSONDecodeError, ValueError, TypeError, AttributeError) as exc:
            return web.Response(status=400, text=f"{exc}\n")
        with self.path.open("ab") as out:
            for notification in received:
                out.write(orjson.dumps(asdict(notification)) + b"\n")
        for notification in received:
            self._recent.append(notification)
            self._on_notification(notification)
        return web.Response(text="ok\n")
