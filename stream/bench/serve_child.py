"""The processes of ``appraise bench serve`` besides ``appraise serve`` itself, each in its own
process so neither shares a core's event loop with what it measures:

- ``python -m stream.bench.serve_child baseline MODEL_DIR PORT``: the price service as the
  systems this project grew from served it: FastAPI, a pydantic body parameter, a synchronous
  handler (FastAPI runs it in its thread pool) that calls the model's scikit-learn ``predict``
  on a one-row DataFrame per request. Same server (uvicorn, uvloop, httptools) as ours.
- ``python -m stream.bench.serve_child load URL CONCURRENCY WARMUP_S SECONDS``: a closed-loop
  load generator: CONCURRENCY clients, each sending ``POST URL`` with the next hold-out
  listing (stamped with the generator's start time) as soon as its previous answer arrived.
  Prints one JSON line: requests, seconds, rps, p50_ms, p99_ms, statuses.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import uvicorn
from aiohttp import ClientError, ClientSession, ClientTimeout, TCPConnector
from fastapi import FastAPI

from stream.bench.common import holdout_listings
from stream.contract.events import ListingEvent
from stream.contract.features import FEATURES
from stream.contract.times import rfc3339
from stream.model.load import load_model


def baseline_app(model_dir: Path) -> FastAPI:
    """The per-request service: one scikit-learn predict per request."""
    model = load_model(model_dir)
    app = FastAPI(title="per-request baseline")

    @app.post("/predict")
    def predict(listing: ListingEvent) -> dict[str, Any]:
        row = listing.model_dump()
        frame = pd.DataFrame([{name: row[name] for name in FEATURES}])
        price = float(model.predict(frame)[0])
        return {
            "listing_id": listing.listing_id,
            "predicted_price": round(price, 2),
            "model_version": model.version,
        }

    return app


def _bodies() -> list[bytes]:
    """The hold-out listings as request bodies, stamped now: live traffic, as a price service
    gets it (a run's listings fall in one or two 10-s panes, not one pane each)."""
    now = rfc3339(datetime.now(UTC))
    return [orjson.dumps({**listing, "event_time": now}) for listing in holdout_listings()]


async def load(url: str, concurrency: int, warmup_s: float, seconds: float) -> dict[str, Any]:
    """Drive ``url`` with ``concurrency`` closed-loop clients; figures of the measured part."""
    bodies = _bodies()
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    headers = {"Content-Type": "application/json"}
    started = time.perf_counter()
    measure_from = started + warmup_s
    stop_at = measure_from + seconds

    async def client(session: ClientSession, offset: int) -> None:
        i = offset
        while True:
            sent = time.perf_counter()
            if sent >= stop_at:
                return
            try:
                async with session.post(url, data=bodies[i % len(bodies)], headers=headers) as r:
                    await r.read()
                    status = str(r.status)
            except (ClientError, TimeoutError):
                status = "error"
            done = time.perf_counter()
            if sent >= measure_from:
                latencies.append(done - sent)
                statuses[status] = statuses.get(status, 0) + 1
            i += concurrency

    connector = TCPConnector(limit=concurrency)
    async with ClientSession(connector=connector, timeout=ClientTimeout(total=30)) as session:
        await asyncio.gather(*(client(session, k) for k in range(concurrency)))
    took = time.perf_counter() - measure_from
    lat = np.asarray(latencies) * 1000
    return {
        "requests": len(latencies),
        "seconds": took,
        "rps": len(latencies) / took if took > 0 else 0.0,
        "p50_ms": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
        "p99_ms": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
        "statuses": statuses,
    }


def _run(main: Any) -> Any:
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def main(argv: list[str]) -> None:
    """Entry point (see the module docstring)."""
    if argv[:1] == ["baseline"] and len(argv) == 3:
        app = baseline_app(Path(argv[1]))
        config = uvicorn.Config(
            app, port=int(argv[2]), access_log=False, log_level="warning", server_header=False
        )
        uvicorn.Server(config).run()
    elif argv[:1] == ["load"] and len(argv) == 5:
        figures = _run(load(argv[1], int(argv[2]), float(argv[3]), float(argv[4])))
        sys.stdout.write(orjson.dumps(figures).decode() + "\n")
    else:
        sys.exit(f"usage: {__doc__}")


if __name__ == "__main__":
    main(sys.argv[1:])
