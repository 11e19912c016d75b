"""``appraise bench serve``: the HTTP price service against the per-request way of serving the
model, in one run on this machine.

1. A fresh embedded broker, and ``appraise serve`` as its own process (as deployed: compiled
   trees, micro-batching, publishing to Kafka), ready on ``/readyz``.
2. The per-request baseline as its own process (:mod:`stream.bench.serve_child`): FastAPI, a
   pydantic body, scikit-learn's ``predict`` on a one-row DataFrame per request, same server
   (uvicorn, uvloop, httptools), ``OMP_NUM_THREADS=1`` (its thread pool runs handlers side by
   side: OpenMP threads on top of them only compete).
3. At each concurrency C, a closed-loop load generator in its own process (C clients, each
   sending the next hold-out listing when its answer arrived) against ours, then against the
   baseline: requests per second and p50/p99 latency of ``POST /predict``.
4. The broker stopped: ours again at the highest C, answering while nothing can be published.

Both servers and the generator share the machine's cores, so the figures are of this machine
under that load (on two cores, the generator takes about one of them).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any, Final

import orjson

from stream.errors import BrokerError
from stream.kafka.broker import EmbeddedBroker
from stream.kafka.topics import topic_specs
from stream.service.process import die_with_parent_fn
from stream.settings import Settings, settings_env

#: Concurrencies measured by default.
CONCURRENCIES: Final = (1, 16, 64)
#: Seconds a server may take to report ready.
READY_TIMEOUT_S: Final = 90.0


def _free_port() -> int:
    import socket

    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own server
            return int(response.status), response.read()
    except OSError:
        return 0, b""


async def _ready(url: str, what: str) -> None:
    async def poll() -> bool:
        status, _ = await asyncio.to_thread(_get, url)
        return status == 200

    deadline = asyncio.get_running_loop().time() + READY_TIMEOUT_S
    while not await poll():
        if asyncio.get_running_loop().time() > deadline:
            raise BrokerError(f"{what} was not ready on {url} within {READY_TIMEOUT_S:g} s")
        await asyncio.sleep(0.2)


async def _spawn(args: Sequence[str], env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *args,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        preexec_fn=die_with_parent_fn(),
    )


async def _stop(child: asyncio.subprocess.Process) -> None:
    if child.returncode is None:
        child.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(child.wait(), 20)
        except TimeoutError:
            child.kill()
            await child.wait()


async def _load(url: str, concurrency: int, warmup_s: float, seconds: float) -> dict[str, Any]:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "stream.bench.serve_child",
        "load",
        url,
        str(concurrency),
        str(warmup_s),
        str(seconds),
        stdout=asyncio.subprocess.PIPE,
        preexec_fn=die_with_parent_fn(),
    )
    out, _ = await child.communicate()
    if child.returncode != 0:
        raise BrokerError(f"the load generator failed against {url} (exit {child.returncode})")
    figures: dict[str, Any] = orjson.loads(out.splitlines()[-1])
    return figures


def _not_ok(run: dict[str, Any]) -> int:
    """Answers other than 200 in a load run."""
    return sum(n for status, n in run["statuses"].items() if status != "200")


def _metric(url: str, name: str) -> float:
    """The sum of a metric's samples on a /metrics page."""
    _, page = _get(url)
    total = 0.0
    for line in page.decode().splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def bench_serve(
    settings: Settings,
    *,
    concurrencies: Sequence[int] = CONCURRENCIES,
    seconds: float = 10.0,
    warmup_s: float = 2.0,
    progress: Callable[[int, str], None] = lambda done, status: None,
) -> dict[str, float]:
    """Run the benchmark (module docstring); the figures, as ``--json`` prints them."""
    figures: dict[str, float] = {}
    done = 0
    highest = max(concurrencies)
    async with EmbeddedBroker(port=0, topics=topic_specs(settings)) as broker:
        ours_port, base_port = _free_port(), _free_port()
        serve = settings.serve.model_copy(update={"port": ours_port})
        ours_settings = settings.model_copy(update={"kafka": broker.kafka, "serve": serve})
        ours = await _spawn([sys.executable, "-m", "stream", "serve"], settings_env(ours_settings))
        base_env = {**os.environ, "OMP_NUM_THREADS": "1"}
        baseline = await _spawn(
            [
                sys.executable,
                "-m",
                "stream.bench.serve_child",
                "baseline",
                str(settings.model_dir.resolve()),
                str(base_port),
            ],
            base_env,
        )
        ours_url, base_url = f"http://127.0.0.1:{ours_port}", f"http://127.0.0.1:{base_port}"
        try:
            await _ready(f"{ours_url}/readyz", "appraise serve")
            await _ready(f"{base_url}/docs", "the baseline")
            for c in concurrencies:
                progress(done, f"ours at concurrency {c}")
                mine = await _load(f"{ours_url}/predict", c, warmup_s, seconds)
                done += 1
                progress(done, f"baseline at concurrency {c}")
                theirs = await _load(f"{base_url}/predict", c, warmup_s, seconds)
                done += 1
                figures |= {
                    f"rps_c{c}": mine["rps"],
                    f"p50_ms_c{c}": mine["p50_ms"],
                    f"p99_ms_c{c}": mine["p99_ms"],
                    f"baseline_rps_c{c}": theirs["rps"],
                    f"baseline_p50_ms_c{c}": theirs["p50_ms"],
                    f"baseline_p99_ms_c{c}": theirs["p99_ms"],
                    f"speedup_c{c}": mine["rps"] / theirs["rps"] if theirs["rps"] else 0.0,
                    f"errors_c{c}": float(
                        sum(n for s, n in mine["statuses"].items() if s != "200")
                    ),
                }
            batches = _metric(f"{ours_url}/metrics", "appraise_http_batch_size_listings_count")
            listings = _metric(f"{ours_url}/metrics", "appraise_http_batch_size_listings_sum")
            figures["mean_batch_listings"] = listings / batches if batches else 0.0
            progress(done, f"ours at concurrency {highest}, broker stopped")
            await broker.stop()
            alone = await _load(f"{ours_url}/predict", highest, warmup_s, seconds)
            done += 1
            progress(done, "done")
            figures[f"broker_stopped_rps_c{highest}"] = alone["rps"]
            figures[f"broker_stopped_p99_ms_c{highest}"] = alone["p99_ms"]
            figures["unpublished_records"] = _metric(
                f"{ours_url}/metrics", "appraise_http_unpublished_total"
            )
            figures[f"broker_stopped_ratio_c{highest}"] = (
                alone["rps"] / figures[f"rps_c{highest}"] if figures[f"rps_c{highest}"] else 0.0
            )
        finally:
            await _stop(ours)
            await _stop(baseline)
    return {k: round(v, 3) for k, v in figures.items()}


def steps(concurrencies: Sequence[int]) -> int:
    """How many load runs :func:`bench_serve` makes (for a progress bar)."""
    return 2 * len(concurrencies) + 1


def format_result(figures: dict[str, float], concurrencies: Sequence[int]) -> str:
    """The figures as a table, ratios first."""
    top = max(concurrencies)
    lines = [
        f"ours/per-request at concurrency {top}: {figures[f'speedup_c{top}']:.1f}x "
        f"(target ≥ 5), p99 {figures[f'p99_ms_c{top}']:.1f} ms (≤ 50); "
        f"at 1: p50 {figures['p50_ms_c1'] / figures['baseline_p50_ms_c1']:.2f}x the "
        f"baseline's (≤ 1.2)"
        if 1 in concurrencies
        else f"ours/per-request at concurrency {top}: {figures[f'speedup_c{top}']:.1f}x",
        f"broker stopped: {figures[f'broker_stopped_ratio_c{top}']:.2f}x the requests/s "
        f"with it (≈ 1)",
        "",
        f"{'concurrency':>11} {'ours req/s':>11} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'baseline req/s':>15} {'p50 ms':>8} {'p99 ms':>8} {'speedup':>8}",
    ]
    for c in concurrencies:
        lines.append(
            f"{c:>11} {figures[f'rps_c{c}']:>11,.0f} {figures[f'p50_ms_c{c}']:>8.1f} "
            f"{figures[f'p99_ms_c{c}']:>8.1f} {figures[f'baseline_rps_c{c}']:>15,.0f} "
            f"{figures[f'baseline_p50_ms_c{c}']:>8.1f} {figures[f'baseline_p99_ms_c{c}']:>8.1f} "
            f"{figures[f'speedup_c{c}']:>7.1f}x"
        )
    lines.append(
        f"mean listings per predict call: {figures['mean_batch_listings']:.1f}; broker stopped "
        f"at {top}: {figures[f'broker_stopped_rps_c{top}']:,.0f} req/s, p99 "
        f"{figures[f'broker_stopped_p99_ms_c{top}']:.1f} ms"
    )
    return "\n".join(lines)
