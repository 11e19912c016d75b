"""Sending listings over HTTP to a stand-in price service (an aiohttp server in this process that
answers as ``appraise serve`` promises to): every listing arrives once and unchanged, answers are
counted by status, concurrency holds, a service that is down or hung gives counted errors."""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import orjson
import pytest
from aiohttp import web

from producers.http import ERROR, HttpStats, Latencies, predict_url, send_http
from producers.publish import encode
from producers.run import ProduceOptions, drafts_for, produce_http
from producers.scenarios import parse_scenario
from producers.sources import Draft, holdout_drafts
from stream.settings import KafkaSettings, Settings, TopicSettings
from tests.conftest import TopicFactory
from tests.needs import until
from tests.producers.test_produce import read_all
from tests.tools import free_port

#: Never reached in a passing test: a run that hangs fails here, not at pytest's timeout.
DEADLINE_S = 60.0
#: How long a request beyond the limit gets to show up (loopback: well under a millisecond).
GRACE_S = 0.3
HISTORY_NOW = datetime(2000, 1, 1, tzinfo=UTC)  # encode()'s now; unused with history times


class PriceService:
    """Answers ``POST /predict`` as the price service's contract says: 200 with a prediction for
    a listing, 422 naming the field for a negative living area or a body that is not a JSON
    object. Records every body, the concurrency it saw and the client ports it was sent from.
    With ``gate``, requests are held until it is set."""

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.gate = gate
        self.bodies: list[bytes] = []
        self.content_types: set[str] = set()
        self.active = 0
        self.peak = 0
        self.client_ports: set[int] = set()

    async def predict(self, request: web.Request) -> web.Response:
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            body = await request.read()
            self.bodies.append(body)
            self.content_types.add(request.headers.get("Content-Type", ""))
            if request.transport is not None:
                self.client_ports.add(request.transport.get_extra_info("peername")[1])
            if self.gate is not None:
                await self.gate.wait()
            return _answer(body)
        finally:
            self.active -= 1


def _answer(body: bytes) -> web.Response:
    try:
        listing = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _refused("json_invalid", None, "not JSON")
    if not isinstance(listing, dict):
        return _refused("not_an_object", None, "not a JSON object")
    area = listing.get("living_area_sqft")
    if isinstance(area, int | float) and area < 0:
        return _refused("out_of_range", "living_area_sqft", "must be at least 0")
    prediction = {
        "listing_id": listing.get("listing_id"),
        "predicted_price": 180_000.0,
        "model_version": "test",
    }
    return web.json_response(prediction)


def _refused(reason: str, field: str | None, message: str) -> web.Response:
    detail = [{"type": reason, "loc": ["body", *([field] if field else [])], "msg": message}]
    return web.json_response({"detail": detail}, status=422)


@asynccontextmanager
async def serving(service: PriceService) -> AsyncIterator[str]:
    """``service`` on a free port of 127.0.0.1; yields its base URL."""
    app = web.Application()
    app.router.add_post("/predict", service.predict)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def silent_server() -> AsyncIterator[str]:
    """Accepts connections and never answers (a hung service), until the client hangs up."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


def kafka_bodies(drafts: list[Draft]) -> list[bytes]:
    """What the listings topic would carry for ``drafts`` (history times), sorted."""
    values = [encode(d, event_time="history", now=HISTORY_NOW) or b"" for d in drafts]
    return sorted(values)


@pytest.mark.integration
async def test_every_listing_arrives_once_as_the_topic_would_carry_it() -> None:
    service = PriceService()
    async with serving(service) as url:
        stats = await send_http(url, holdout_drafts(), count=200, concurrency=8)
    assert sorted(service.bodies) == kafka_bodies(holdout_drafts()[:200])
    assert service.content_types == {"application/json"}
    assert stats.statuses == Counter({"200": 200})
    assert stats.url == f"{url}/predict"
    assert stats.latencies.count == 200
    assert stats.describe_statuses() == "200 \N{MULTIPLICATION SIGN} 200"


@pytest.mark.integration
async def test_live_event_times_are_the_time_of_sending() -> None:
    service = PriceService()
    async with serving(service) as url:
        before = datetime.now(UTC)
        await send_http(url, holdout_drafts(), count=50, event_time="live")
        after = datetime.now(UTC)
    sent = [orjson.loads(body) for body in service.bodies]
    times = [datetime.fromisoformat(listing.pop("event_time")) for listing in sent]
    assert all(before <= t <= after for t in times)
    # Everything else as in the source.
    history = [orjson.loads(body) for body in kafka_bodies(holdout_drafts()[:50])]
    for listing in history:
        del listing["event_time"]
    assert sorted(sent, key=repr) == sorted(history, key=repr)


@pytest.mark.integration
async def test_answers_are_counted_by_status() -> None:
    good = [d for d in holdout_drafts()[:30] if d.listing is not None]
    bad = [Draft.of({**d.listing, "living_area_sqft": -1}) for d in good[:7] if d.listing]
    broken = [Draft(listing=None, raw=b'{"listing_id": "x", '), Draft(listing=None, raw=None)]
    service = PriceService()
    async with serving(service) as url:
        stats = await send_http(url, [*good, *bad, *broken], concurrency=4)
    assert stats.statuses == Counter({"200": len(good), "422": len(bad) + len(broken)})
    assert stats.answered == stats.done == len(good) + len(bad) + len(broken)
    assert b"" in service.bodies  # a tombstone is an empty body, refused by the service


@pytest.mark.integration
async def test_never_more_than_concurrency_requests_in_flight() -> None:
    concurrency = 4
    gate = asyncio.Event()
    service = PriceService(gate=gate)
    async with serving(service) as url:
        run = asyncio.create_task(
            send_http(url, holdout_drafts(), count=40 * concurrency, concurrency=concurrency)
        )
        try:
            await until(lambda: service.active >= concurrency, DEADLINE_S, "4 requests in flight")
            # A fifth would arrive now; that none does can only be seen over a while.
            await asyncio.sleep(GRACE_S)
            assert service.active == concurrency
        finally:
            gate.set()  # the held requests finish either way
        stats = await asyncio.wait_for(run, timeout=DEADLINE_S)
    assert stats.statuses == Counter({"200": 40 * concurrency})
    assert service.peak == concurrency
    assert len(service.client_ports) <= concurrency  # one pool of as many connections


@pytest.mark.integration
@pytest.mark.parametrize(
    "scenario",
    ["scale:feature=living_area_sqft,factor=2", "malformed:share=0.2,kinds=nan|not_utf8|tombstone"],
)
async def test_a_scenario_changes_what_is_sent_as_it_does_for_kafka(scenario: str) -> None:
    options = ProduceOptions(count=300, scenarios=[parse_scenario(scenario)], seed=3)
    service = PriceService()
    async with serving(service) as url:
        stats = await produce_http(Settings(), options, url=url)
    expected = kafka_bodies(list(itertools.islice(drafts_for(options), 300)))
    assert sorted(service.bodies) == expected
    assert expected != kafka_bodies(holdout_drafts()[:300])
    assert stats.done == 300


@pytest.mark.integration
async def test_a_service_that_is_not_there_gives_counted_errors() -> None:
    stats = await send_http(f"http://127.0.0.1:{free_port()}", holdout_drafts(), count=20)
    assert stats.statuses == Counter({ERROR: 20})
    assert stats.answered == 0
    assert stats.last_error is not None
    assert "Cannot connect" in stats.last_error
    assert stats.describe_latency() == "no answers"


@pytest.mark.integration
async def test_a_hung_service_times_out_into_errors() -> None:
    async with silent_server() as url:
        stats = await send_http(url, holdout_drafts(), count=3, concurrency=3, timeout_s=0.2)
    assert stats.statuses == Counter({ERROR: 3})
    assert stats.last_error == "no answer within 0.2 s"


@pytest.mark.integration
async def test_a_stop_ends_the_run_and_every_request_sent_is_counted() -> None:
    service = PriceService()
    stop = asyncio.Event()

    def progressed(stats: HttpStats) -> None:
        if stats.done >= 100:
            stop.set()

    async with serving(service) as url:
        options = ProduceOptions(loop=True)  # never ends by itself
        stats = await asyncio.wait_for(
            produce_http(Settings(), options, url=url, stop=stop, on_progress=progressed),
            timeout=DEADLINE_S,
        )
    assert stats.done >= 100
    assert stats.done == len(service.bodies) == stats.statuses["200"]


async def test_sale_labels_still_go_to_the_sales_topic(
    kafka_settings: KafkaSettings, new_topic: TopicFactory
) -> None:
    topics = TopicSettings(listings=await new_topic(), sales=await new_topic())
    settings = Settings(kafka=kafka_settings, topics=topics)
    options = ProduceOptions(count=50, with_sales=True, sale_delay_s=0.2)
    service = PriceService()
    async with serving(service) as url:
        stats = await produce_http(settings, options, url=url)
    assert (stats.done, stats.sales) == (50, 50)
    sales = await read_all(kafka_settings, topics.sales, 50)
    sent_ids = {orjson.loads(body)["listing_id"].encode() for body in service.bodies}
    assert {key for key, _ in sales} == sent_ids


def test_latency_quantiles_are_within_half_a_percent() -> None:
    latencies = Latencies()
    for ms in range(1, 1001):
        latencies.add(ms / 1000)
    assert latencies.quantile(0.5) == pytest.approx(0.500, rel=0.005)
    assert latencies.quantile(0.99) == pytest.approx(0.990, rel=0.005)
    assert Latencies().quantile(0.5) is None


@pytest.mark.parametrize(
    ("base", "target"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000/predict"),
        ("https://prices.example/", "https://prices.example/predict"),
        ("http://gateway:8080/appraise", "http://gateway:8080/appraise/predict"),
    ],
)
def test_the_base_url_gets_the_predict_path(base: str, target: str) -> None:
    assert predict_url(base) == target


async def appraise(*args: str) -> tuple[int, str, str]:
    """``appraise`` in a child process, without blocking this loop (a server may run on it)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("APPRAISE_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "stream",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=clean,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=DEADLINE_S)
    assert proc.returncode is not None
    return proc.returncode, stdout.decode(), stderr.decode()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--http", "ftp://prices"], "Invalid value for --http: 'ftp://prices': expected"),
        (["--http", "localhost:8000"], "Invalid value for --http: 'localhost:8000': expected"),
        (["--http", "http://"], "Invalid value for --http: 'http://': expected"),
        (["--concurrency", "4"], "Invalid value for --concurrency: only with --http URL"),
        (["--http", "http://127.0.0.1:8000", "--concurrency", "0"], "--concurrency"),
    ],
)
async def test_bad_http_arguments_get_one_clear_message(args: list[str], message: str) -> None:
    code, _, stderr = await appraise("produce", *args)
    assert code == 2
    assert message in " ".join(stderr.split())
    assert "Traceback" not in stderr


@pytest.mark.integration
async def test_the_command_says_how_the_service_answered() -> None:
    service = PriceService()
    async with serving(service) as url:
        code, stdout, stderr = await appraise("produce", "--http", url, "--count", "20")
    assert code == 0, stderr
    assert f"sent 20 listings to {url}/predict in " in stdout
    assert ": 200 \N{MULTIPLICATION SIGN} 20; latency p50 " in stdout
    assert len(service.bodies) == 20


@pytest.mark.integration
async def test_the_command_says_when_nothing_answered() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, stdout, stderr = await appraise("produce", "--http", url, "--count", "5")
    assert code == 1
    assert "error \N{MULTIPLICATION SIGN} 5; no answers" in stdout
    assert f"no answer from {url}/predict" in " ".join(stderr.split())
    assert "Traceback" not in stderr
