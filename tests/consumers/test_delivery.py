"""Delivery: every ack awaited, retriable broker errors retried, the rest stop the scorer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError, UnknownError

from consumers.delivery import DLQ_VALUE_OMITTED, Delivery, Headers, Outgoing
from stream.errors import BrokerError


class _FlakyProducer:
    """Acks every send, except that the first ``failures`` attempts of each value (not None)
    fail with ``error``; records what was acknowledged."""

    def __init__(self, error: Exception, failures: int = 1, *, at_send: bool = False) -> None:
        self.error = error
        self.failures = failures
        self.at_send = at_send
        self.attempts: dict[bytes | None, int] = {}
        self.acked: list[tuple[str, bytes | None, Headers | None]] = []

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Headers | None = None,
    ) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        seen = self.attempts[value] = self.attempts.get(value, 0) + 1
        if seen <= self.failures and value is not None:
            if self.at_send:
                raise self.error
            future.set_exception(self.error)
        else:
            self.acked.append((topic, value, headers))
            future.set_result(None)
        return future


RECORDS: list[Outgoing] = [("out", f"v{i}".encode(), None, None) for i in range(5)]


async def test_retriable_errors_are_retried_until_acked() -> None:
    producer = _FlakyProducer(KafkaConnectionError(), failures=2)
    retries: list[int] = []
    delivery = Delivery(
        producer, retries=3, backoff_s=0.001, dlq_topic="dlq", on_retry=lambda: retries.append(1)
    )
    await delivery.send_all(RECORDS)
    assert {v for _, v, _ in producer.acked} == {r[1] for r in RECORDS}
    assert len(producer.acked) == len(RECORDS)
    assert len(retries) == 2
    assert delivery.reachable


async def test_giving_up_after_the_last_retry_is_an_error() -> None:
    delivery = Delivery(
        _FlakyProducer(KafkaConnectionError(), failures=9),
        retries=2,
        backoff_s=0.001,
        dlq_topic="d",
    )
    with pytest.raises(BrokerError, match="not acknowledged after 2 retries"):
        await delivery.send_all(RECORDS)
    assert not delivery.reachable


async def test_a_non_retriable_error_stops_at_once() -> None:
    producer = _FlakyProducer(UnknownError(), failures=1)
    delivery = Delivery(producer, retries=5, backoff_s=0.001, dlq_topic="dlq")
    with pytest.raises(BrokerError, match="could not deliver to out"):
        await delivery.send_all(RECORDS)


async def test_a_dead_letter_too_large_for_the_broker_goes_without_its_value() -> None:
    producer = _FlakyProducer(MessageSizeTooLargeError(), failures=1, at_send=True)
    delivery = Delivery(producer, retries=1, backoff_s=0.001, dlq_topic="dlq")
    await delivery.send_all([("dlq", b"x" * 100, b"k", [("appraise.dlq.reason", b"too_large")])])
    ((topic, value, headers),) = producer.acked
    assert (topic, value) == ("dlq", None)
    assert headers is not None
    assert (DLQ_VALUE_OMITTED, b"100") in headers
