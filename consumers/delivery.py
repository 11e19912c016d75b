"""Sending a batch's records and waiting for every ack, retrying what a broker error may fix.

``send`` for every record, then one gather of the futures: never ``send_and_wait`` per record,
which costs a round trip each (about 3,000 records/s against about 80,000 measured here). Errors
are sorted by aiokafka's ``retriable`` flag: retriable ones (a leader moving, a broker away) are
sent again after a backoff that doubles; any other one stops the scorer before it commits, so
nothing undelivered is ever committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import stamina
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError, KafkaTimeoutError, MessageSizeTooLargeError

from consumers.batch import ScoredBatch
from stream.errors import BrokerError

log = logging.getLogger(__name__)

#: Header on a dead letter whose original value was too large for the dead-letter topic: the
#: value is left out and this header gives its size in bytes.
DLQ_VALUE_OMITTED: Final = "appraise.dlq.value.omitted_bytes"

Headers = list[tuple[str, bytes]]
# Loop turns after queueing; three were enough here for the requests to reach the socket.
_SENDER_TURNS: Final = 3

#: (topic, value, key, headers) of one record to send.
Outgoing = tuple[str, bytes | None, bytes | None, Headers | None]


class Sender(Protocol):
    """The one producer call delivery uses (``AIOKafkaProducer.send`` fits)."""

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Headers | None = None,
    ) -> asyncio.Future[Any]: ...


class Delivery:
    """Delivers batches of records through one producer.

    Args:
        producer: the producer (started).
        retries: how often a retriable failure is retried per batch (setting produce_retries).
        backoff_s: the first wait before a retry, doubled each time (setting retry_backoff_s).
        dlq_topic: dead letters the broker refuses as too large are sent again without value.
        on_retry: called once per retry round (the scorer counts them).
        error_for: the error raised for a non-retriable failure, given what was being done
            and the client's error (``stream.kafka.clients.client_error`` names a setting that
            caused it).
    """

    def __init__(
        self,
        producer: Sender,
        *,
        retries: int,
        backoff_s: float,
        dlq_topic: str,
        on_retry: Callable[[], None] = lambda: None,
        error_for: Callable[[str, BaseException], Exception] = lambda doing, exc: BrokerError(
            f"{doing}: {exc!r}"
        ),
    ) -> None:
        self.producer = producer
        self.retries = retries
        self.backoff_s = backoff_s
        self.dlq_topic = dlq_topic
        self.on_retry = on_retry
        self.error_for = error_for
        self.reachable = True
        """False while the last attempt failed with a broker error (readiness reads it)."""

    async def send_all(self, records: Sequence[Outgoing]) -> None:
        """Send ``records`` and return once the broker acknowledged every one; raise
        :class:`BrokerError` if a non-retriable error or the last retry fails."""
        await self.finish(await self.start(records))

    async def start(self, records: Sequence[Outgoing]) -> Pending:
        """Queue ``records`` in the producer and let its sender put them on the wire; the acks
        are awaited by :meth:`finish`. Between the two the caller may do other work (score the
        next batch) while the broker stores these."""
        pending = Pending()
        send = self.producer.send
        for item in records:
            topic, value, key, headers = item
            try:
                pending.futures.append(await send(topic, value, key=key, headers=headers))
                pending.waiting.append(item)
            except KafkaError as exc:  # refused before it was queued (too large, buffer full)
                pending.failed.append((item, exc))
        # A few turns of the loop: the producer's sender task wakes up and writes the requests
        # to the sockets now, before the caller's next CPU-bound step holds the loop.
        for _ in range(_SENDER_TURNS):
            await asyncio.sleep(0)
        return pending

    async def finish(self, pending: Pending) -> None:
        """Wait for the acks of :meth:`start`; retry what failed with a retriable error."""
        # Our own loop, not stamina's (used for commits): each round sends again only the
        # records that failed, and a dead letter too large for its topic changes shape (sent
        # without its value), which a retry of one call cannot express.
        for attempt in range(self.retries + 1):
            results = await asyncio.gather(*pending.futures, return_exceptions=True)
            failed = pending.failed
            for item, result in zip(pending.waiting, results, strict=True):
                if isinstance(result, BaseException):
                    failed.append((item, result))
            if not failed:
                self.reachable = True
                return
            again: list[Outgoing] = []
            for item, error in failed:
                if _too_large(error) and item[0] == self.dlq_topic and item[1]:
                    again.append(_without_value(item))
                elif retriable(error):
                    again.append(item)
                else:
                    raise self.error_for(f"could not deliver to {item[0]}", error) from error
            self.reachable = False
            if attempt == self.retries:
                break
            self.on_retry()
            delay = self.backoff_s * 2**attempt
            log.warning("retrying %d sends in %.2f s: %r", len(again), delay, failed[0][1])
            await asyncio.sleep(delay)
            pending = await self.start(again)
        raise BrokerError(
            f"{len(failed)} records not acknowledged after {self.retries} retries "
            f"(last error: {failed[-1][1]!r}); is the broker up?"
        )


@dataclass(slots=True)
class Pending:
    """Records queued by :meth:`Delivery.start`, not yet acknowledged."""

    futures: list[asyncio.Future[Any]] = field(default_factory=list)
    waiting: list[Outgoing] = field(default_factory=list)
    failed: list[tuple[Outgoing, BaseException]] = field(default_factory=list)


def retriable(exc: BaseException) -> bool:
    """Whether trying again may succeed. aiokafka marks KafkaTimeoutError (a batch that expired
    waiting for a broker) not retriable, but for the scorer it means "the broker was away"."""
    return isinstance(exc, KafkaTimeoutError) or bool(getattr(exc, "retriable", False))


def _too_large(exc: BaseException) -> bool:
    return isinstance(exc, MessageSizeTooLargeError) or "TooLarge" in type(exc).__name__


def _without_value(item: Outgoing) -> Outgoing:
    topic, value, key, headers = item
    size = len(value or b"")
    log.warning("dead letter of %d bytes too large for %s: sent without value", size, topic)
    return topic, None, key, [*(headers or []), (DLQ_VALUE_OMITTED, str(size).encode())]


def outgoing(scored: ScoredBatch, predictions_topic: str, dlq_topic: str) -> list[Outgoing]:
    """The records a scored batch sends: its predictions, then its dead letters."""
    sends: list[Outgoing] = [(predictions_topic, v, k, None) for k, v in scored.predictions]
    # A record with neither key nor value (a keyless tombstone) cannot be sent as it came:
    # its dead letter gets an empty value (the reason header already says "empty").
    sends += [
        (dlq_topic, b"" if d.value is None and d.key is None else d.value, d.key, d.headers)
        for d in scored.dead_letters
    ]
    return sends


async def commit(
    consumer: Committer,
    offsets: Mapping[TopicPartition, int],
    *,
    retries: int,
    backoff_s: float,
    on_retry: Callable[[], None] = lambda: None,
) -> bool:
    """Commit ``offsets``, retrying a retriable error (backoff ``backoff_s``, doubling); False
    when it could not be committed. A batch delivered but not committed is scored again by
    whoever owns its partitions next (at-least-once): stopping the scorer would not help."""
    try:
        async for attempt in stamina.retry_context(
            on=retriable,
            attempts=retries + 1,
            timeout=None,
            wait_initial=backoff_s,
            wait_max=backoff_s * 2**retries,
            wait_jitter=0.0,
        ):
            with attempt:
                if attempt.num > 1:
                    on_retry()
                await consumer.commit(dict(offsets))
    except KafkaError as exc:
        log.warning("commit of %s failed (%r); the batch may be scored twice", offsets, exc)
        return False
    return True


class Committer(Protocol):
    """The one consumer call :func:`commit` uses (``AIOKafkaConsumer.commit`` fits)."""

    async def commit(self, offsets: dict[TopicPartition, int]) -> None: ...
