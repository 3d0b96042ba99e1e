"""The consumer's Kafka sends: queued, handed to the producer one batch per partition, retried
until the broker acknowledges them."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

log = structlog.get_logger()

Headers = Sequence[tuple[str, bytes]]

_RETRY_FIRST_S = 0.2
_RETRY_MAX_S = 5.0
_PARTITIONER = DefaultPartitioner()
_PARTITION_CACHE_SIZE = 100_000


def _noop() -> None:
    return None


@dataclass(frozen=True, slots=True)
class _Send:
    """One record for the producer, and what to do once the broker acknowledged it."""

    topic: str
    value: bytes | None
    key: bytes | None
    partition: int | None
    headers: list[tuple[str, bytes]]
    then: Callable[[], None]


class Outbox:
    """Sends to Kafka, one batch per partition at a time, retried until acknowledged.

    :meth:`send` only queues. A task hands everything queued meanwhile to the producer at once,
    one closed batch per topic partition (``producer.send_batch``), whenever the event loop runs
    it: the consumer yields every few records and after each fetched batch. One
    ``producer.send()`` per record cost the consumer about a quarter of its CPU in per-record
    coroutines and futures (docs/performance.md). Records keep their order within a partition
    and a batch; a batch the broker refuses is sent again, whole and in its order, until it is
    acknowledged, so a broker restart delays records instead of failing the consumer.

    Args:
        producer: a started idempotent producer.
    """

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer
        self._queued: list[_Send] = []
        self._wake = asyncio.Event()
        self._handing = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None
        self._retrying: dict[asyncio.Task[None], tuple[str, int | None]] = {}
        self._partition_of: dict[tuple[str, int, bytes], int] = {}

    def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None,
        partition: int | None = None,
        headers: Headers | None = None,
        then: Callable[[], None] = _noop,
    ) -> None:
        """Queue a record; ``then`` runs once the broker acknowledged it.

        Without ``partition``, the record goes where ``producer.send()`` would put it.
        """
        self._queued.append(_Send(topic, value, key, partition, list(headers or ()), then))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_forever())
        self._wake.set()

    async def flush(self) -> None:
        """Hand every queued record to the producer now (``producer.flush()`` then sends it)."""
        async with self._handing:
            sends, self._queued = self._queued, []
            await self._hand_over(sends)

    async def _flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # a bug must not stop every later send
                log.exception("consumer.outbox_failed")

    async def _hand_over(self, sends: list[_Send]) -> None:
        groups: dict[tuple[str, int], list[_Send]] = {}
        counts: dict[str, int] = {}
        for send in sends:
            partition = send.partition
            if partition is None:
                try:
                    partition = await self._partition(send, counts)
                except KafkaError as exc:  # no metadata yet: retried like a refused batch
                    self._retry(send.topic, None, [send], exc)
                    continue
            groups.setdefault((send.topic, partition), []).append(send)
        # Side by side: send_batch() waits while its partition still has a batch queued, and
        # one after the other every partition would wait for its own produce request.
        await asyncio.gather(*(self._submit(tp[0], tp[1], group) for tp, group in groups.items()))

    async def _submit(self, topic: str, partition: int, sends: list[_Send]) -> None:
        done = 0
        for batch, members in self._batches(sends):
            try:
                future = await self._producer.send_batch(batch, topic, partition=partition)
            except KafkaError as exc:  # this batch and the rest, in their order
                self._retry(topic, partition, sends[done:], exc)
                return
            done += len(members)
            future.add_done_callback(functools.partial(self._acked, topic, partition, members))

    def _batches(self, sends: list[_Send]) -> list[tuple[Any, list[_Send]]]:
        """Closed batches holding ``sends`` in order (closed: sent at once, no linger)."""
        out: list[tuple[Any, list[_Send]]] = []
        batch = self._producer.create_batch()
        members: list[_Send] = []
        for send in sends:
            if _append(batch, send) is None:  # full: a new batch always takes its first record
                out.append((batch, members))
                batch, members = self._producer.create_batch(), []
                _append(batch, send)
            members.append(send)
        out.append((batch, members))
        for batch, _ in out:
            batch.close()
        return out

    async def _partition(self, send: _Send, counts: dict[str, int]) -> int:
        """The partition ``producer.send()`` would choose: by the key's hash, any without."""
        count = counts.get(send.topic)
        if count is None:
            count = counts[send.topic] = len(await self._producer.partitions_for(send.topic))
        choices = list(range(count))
        if send.key is None:
            return int(_PARTITIONER(None, choices, choices))
        cache_key = (send.topic, count, send.key)
        partition = self._partition_of.get(cache_key)
        if partition is None:
            if len(self._partition_of) >= _PARTITION_CACHE_SIZE:
                self._partition_of.clear()
            partition = self._partition_of[cache_key] = int(
                _PARTITIONER(send.key, choices, choices)
            )
        return partition

    def _acked(
        self, topic: str, partition: int, members: list[_Send], future: asyncio.Future[Any]
    ) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            self._retry(topic, partition, members, exc)
            return
        for send in members:
            send.then()

    def _retry(
        self, topic: str, partition: int | None, members: list[_Send], exc: BaseException
    ) -> None:
        log.warning(
            "consumer.send_retry", topic=topic, records=len(members), error=type(exc).__name__
        )
        task = asyncio.create_task(self._again(topic, partition, members))
        self._retrying[task] = (topic, partition)
        task.add_done_callback(lambda t: self._retrying.pop(t, None))

    async def _again(self, topic: str, partition: int | None, members: list[_Send]) -> None:
        delay = _RETRY_FIRST_S
        while True:
            await asyncio.sleep(delay)
            try:
                if partition is None:
                    partition = await self._partition(members[0], {})
                for batch, _ in self._batches(members):
                    await (await self._producer.send_batch(batch, topic, partition=partition))
            except KafkaError as exc:
                log.warning("consumer.send_retry", topic=topic, error=type(exc).__name__)
                delay = min(delay * 2, _RETRY_MAX_S)
                continue
            for send in members:
                send.then()
            return

    async def drop(self, topic: str, partitions: set[int]) -> None:
        """Give up the sends to ``partitions`` of ``topic``, queued or being retried: another
        member owns them now, and a late write of ours would land after its own."""
        self._queued = [
            s for s in self._queued if not (s.topic == topic and s.partition in partitions)
        ]
        await _cancel(
            [t for t, (top, p) in self._retrying.items() if top == topic and p in partitions]
        )

    async def close(self) -> None:
        """Hand over what is queued (briefly), then give up the sends still being retried."""
        with contextlib.suppress(KafkaError, TimeoutError):
            async with asyncio.timeout(5):
                await self.flush()
        await _cancel([t for t in (self._flusher,) if t is not None] + list(self._retrying))


def _append(batch: Any, send: _Send) -> Any:
    return batch.append(key=send.key, value=send.value, timestamp=None, headers=send.headers)


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
