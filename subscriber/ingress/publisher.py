"""Kafka publishing without loss: the broker's ack, or an fsync'ed local spool, before we say yes.

:meth:`Publisher.publish` returns only when every event is acknowledged by the broker (idempotent
producer, ``acks=all``) or durably written to the local spool (:mod:`subscriber.ingress.spool`).
If the broker does not acknowledge within ``kafka.publish_timeout_ms``, the publisher treats Kafka
as unreachable: the events go to the spool, and so does every later event until a background
task has drained the spool, in order, back to Kafka. Sending new events straight to Kafka while
older ones still wait in the spool would overtake them, so per-UE order would break.

Delivery is at least once: an event whose ack timed out may have reached the broker anyway and
is then sent again from the spool. Consumers dedupe on ``event_id`` (deterministic), keeping the
first copy; the spool preserves the order of the first copies.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import orjson
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.partitioner import DefaultPartitioner
from opentelemetry.trace import SpanKind

from subscriber import tracing
from subscriber.events import EventRecord
from subscriber.ingress.spool import Spool, SpoolBatch, SpoolRecord, claim_slots
from subscriber.settings import KafkaSettings, ReceiverSettings

log = structlog.get_logger()

_DRAIN_CHUNK = 500
_BACKOFF_MIN_S = 0.5
_BACKOFF_MAX_S = 5.0
_MAX_BATCH_BYTES = 512 * 1024
_PARTITIONER = DefaultPartitioner()
_PARTITION_CACHE_SIZE = 200_000

_Queued = tuple[Spool, list[SpoolRecord], "asyncio.Future[None]"]
"""Records waiting for Kafka or the spool: the spool they would go to, and their caller's waiter."""


@dataclass(frozen=True)
class DeadLetter:
    """A callback body we rejected, kept for SREs on the dead-letter topic."""

    reason: str
    detail: str
    kind: str
    path: str
    content_type: str | None
    received_at: datetime
    body: bytes
    body_bytes: int

    def encode(self, max_bytes: int) -> bytes:
        """The Kafka record value: JSON, the body cut to ``max_bytes`` (base64 if not UTF-8)."""
        body = self.body[:max_bytes]
        doc: dict[str, Any] = {
            "reason": self.reason,
            "detail": self.detail,
            "kind": self.kind,
            "path": self.path,
            "content_type": self.content_type,
            "received_at": self.received_at.isoformat(),
            "body_bytes": self.body_bytes,
            "truncated": len(body) < self.body_bytes,
        }
        try:
            doc["body"] = body.decode()
        except UnicodeDecodeError:
            doc["body_base64"] = base64.b64encode(body).decode()
        return orjson.dumps(doc)


class Publisher:
    """Puts events on the events topic, durably, in per-UE order, surviving Kafka outages.

    An async context manager: entering it claims a spool slot, starts the producer (or starts
    in spool mode when Kafka is unreachable) and the drain task; leaving it stops both. Records
    still in the spool stay there for the next start.

    Args:
        kafka: brokers, topics, compression, linger and timeouts.
        receiver: spool directory and bound, dead-letter size cap.
        client_id: the Kafka client id.
    """

    def __init__(
        self,
        *,
        kafka: KafkaSettings,
        receiver: ReceiverSettings,
        client_id: str = "subscriber-receiver",
    ) -> None:
        self._kafka = kafka
        self._receiver = receiver
        self._client_id = client_id
        self._timeout_s = kafka.publish_timeout_ms / 1000
        self._producer: AIOKafkaProducer | None = None
        self._spool: Spool | None = None
        self._adopted: list[Spool] = []
        # Dead letters (bodies we refused, often from whoever can reach the port) spool apart,
        # in a small budget of their own: they can never take room from valid events.
        self._dead_spool: Spool | None = None
        self._dead_adopted: list[Spool] = []
        self.dead_letters_dropped = 0
        """Dead letters lost because Kafka was away and their own spool budget was used up."""
        self._degraded = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drainer: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self._pending: list[_Queued] = []
        self._pending_since = 0.0  # when the oldest of _pending was queued (monotonic)
        self._has_pending = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._enqueue_lock = asyncio.Lock()
        self._spool_queue: list[_Queued] = []
        self._spool_queued = asyncio.Event()
        self._spool_writer: asyncio.Task[None] | None = None
        # murmur2 is pure Python in aiokafka: a UE's partition is computed once, not per event.
        self._partition_of: dict[tuple[str, bytes | None], int] = {}
        self._partition_counts: dict[str, int] = {}

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._loop = asyncio.get_running_loop()
        self._spool, self._adopted = await asyncio.to_thread(
            claim_slots, self._receiver.spool_dir, max_bytes=self._receiver.spool_max_bytes
        )
        self._dead_spool, self._dead_adopted = await asyncio.to_thread(
            claim_slots,
            self._receiver.spool_dir / "dead-letters",
            max_bytes=self._receiver.dead_letter_spool_max_bytes,
        )
        if not self._all_empty():
            self._degraded = True
            log.info("spool_resume", records=self.spool_records, bytes=self.spool_bytes)
        else:
            self._producer = await self._start_producer()
            self._degraded = self._producer is None
        if not self._degraded:
            self._drained.set()
        self._drainer = asyncio.create_task(self._drain_forever(), name="spool-drainer")
        self._flusher = asyncio.create_task(self._flush_forever(), name="kafka-flusher")
        self._spool_writer = asyncio.create_task(self._write_spool_forever(), name="spool-writer")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._drainer is not None:
            await _cancel(self._drainer)
        if self._flusher is not None:
            if self._pending:
                await asyncio.wait([w for *_, w in self._pending], timeout=self._timeout_s)
            await _cancel(self._flusher)
        if self._spool_writer is not None:
            if self._spool_queue:
                await asyncio.wait([w for *_, w in self._spool_queue], timeout=self._timeout_s)
            await _cancel(self._spool_writer)
        if self._producer is not None:
            self._retire(self._producer)
            self._producer = None
        if self._retiring:
            await asyncio.wait(self._retiring)
        for spool in self._spools():
            spool.close()

    # -- state -----------------------------------------------------------------------------

    @property
    def kafka_connected(self) -> bool:
        """True while events go straight to Kafka (not to the spool)."""
        return self._producer is not None and not self._degraded

    @property
    def spool_records(self) -> int:
        """Records waiting in the spool(s)."""
        return sum(s.pending_records for s in self._spools())

    @property
    def spool_bytes(self) -> int:
        """Bytes the spool(s) hold on disk."""
        return sum(s.size_bytes for s in self._spools())

    @property
    def spool_damaged_bytes(self) -> int:
        """Bytes found damaged in the spool(s) and set aside since this process opened them."""
        return sum(s.damaged_bytes for s in self._spools())

    def is_ready(self) -> bool:
        """Ready to accept: Kafka is reachable, or the spool still has room."""
        return self.kafka_connected or (self._spool is not None and self._spool.has_room())

    async def wait_drained(self) -> None:
        """Wait until the spool is empty and events go straight to Kafka again."""
        await self._drained.wait()

    # -- publishing ------------------------------------------------------------------------

    async def publish(self, records: Sequence[EventRecord]) -> None:
        """Return once every event is acknowledged by the broker or fsync'ed to the spool.

        Raises:
            subscriber.errors.SpoolFull: Kafka is unreachable and the spool has no room;
                nothing was accepted.
        """
        if not tracing.recording() or tracing.in_span():
            await self._deliver(self._event_records(records))
            return
        # Events with no caller's trace (the poller's): each publish starts its own.
        with tracing.continue_trace("publish events", None, kind=SpanKind.PRODUCER):
            await self._deliver(self._event_records(records))

    def _event_records(self, records: Sequence[EventRecord]) -> list[SpoolRecord]:
        """Event records carrying the current trace context as headers (kept by the spool)."""
        topic = self._kafka.events_topic
        headers = tracing.kafka_headers()
        return [SpoolRecord(topic, r.key, r.value, headers) for r in records]

    async def publish_dead_letter(self, letter: DeadLetter) -> None:
        """Put a rejected body on the dead-letter topic (or the spool); never raises.

        Waits at most ``kafka.publish_timeout_ms`` for Kafka before spooling it.
        """
        record = SpoolRecord(
            self._kafka.dead_letter_topic,
            f"{letter.kind}:{letter.path}".encode(),
            letter.encode(self._receiver.dead_letter_max_bytes),
        )
        try:
            await self._deliver([record], dead_letter=True)
        except Exception as exc:  # a dead letter must never turn into an error for the caller
            self.dead_letters_dropped += 1
            log.warning("dead_letter_dropped", reason=letter.reason, error=type(exc).__name__)

    async def _deliver(self, records: list[SpoolRecord], *, dead_letter: bool = False) -> None:
        spool = self._dead_spool if dead_letter else self._spool
        assert spool is not None, "publisher is not open"
        if self._degraded or self._producer is None:
            await self._to_spool(spool, records)
            return
        waiter: asyncio.Future[None] = (self._loop or asyncio.get_running_loop()).create_future()
        if not self._pending:
            self._pending_since = time.monotonic()
        self._pending.append((spool, records, waiter))
        self._has_pending.set()
        # No timer per caller (asyncio.timeout costs about 4 µs a call): the flush that carries
        # these records ends within the publish timeout of the oldest caller in it; if it fails,
        # the flusher hands them to the spool and this resolves once they are fsync'ed there.
        await waiter

    async def _flush_forever(self) -> None:
        """Group commit: send everything queued as one set of batches, wait for the acks, repeat.

        One flush in flight at a time: aiokafka sends one produce request per broker at a time
        anyway (the next batch would only wait in its accumulator), and a flush that fails must
        be the last one through its producer (docs/receiver.md). What arrives meanwhile rides in
        the next, bigger flush.
        """
        while True:
            await self._has_pending.wait()
            self._has_pending.clear()
            pending, self._pending = self._pending, []
            if not pending:
                continue
            budget_s = self._timeout_s - (time.monotonic() - self._pending_since)
            producer = self._producer
            try:
                if producer is None:
                    raise KafkaConnectionError("no producer")
                async with asyncio.timeout(max(budget_s, 0.0)):
                    await self._send_all(
                        producer, [r for _, records, _ in pending for r in records]
                    )
            except Exception as exc:  # no ack in time, or any send failure: the spool takes it
                self._spool_failed(producer, pending, exc)
                continue
            for *_, waiter in pending:
                if not waiter.done():
                    waiter.set_result(None)

    def _spool_failed(
        self, producer: AIOKafkaProducer | None, failed: list[_Queued], exc: Exception
    ) -> None:
        """Switch to spool mode and queue a failed flush for the spool, before anything else.

        All in one step, with no await: the callers queued behind the failed flush follow it into
        the spool in their order, and so does every later caller (spool mode). A caller left
        to spool its own records could be overtaken by one that arrives meanwhile, and a flush
        still sent through the failing producer could reach the topic before them.
        """
        failed = [*failed, *self._pending]
        self._pending = []
        log.warning(
            "kafka_unavailable",
            error=type(exc).__name__,
            spooled=sum(len(records) for _, records, _ in failed),
        )
        self._enter_degraded(producer)
        self._spool_queue.extend(failed)
        self._spool_queued.set()

    async def _send_all(self, producer: AIOKafkaProducer, records: Sequence[SpoolRecord]) -> None:
        """Send records in one batch per partition (or more when full) and wait for the acks.

        Batches instead of one send() per record: per-record futures and tasks cost more CPU
        than the rest of a callback's handling. Keys are partitioned like send() does.
        """
        groups: dict[tuple[str, int], list[SpoolRecord]] = {}
        partitions: dict[str, list[int]] = {}
        for record in records:
            if record.topic not in partitions:
                choices = sorted(await producer.partitions_for(record.topic))
                partitions[record.topic] = choices
                if self._partition_counts.get(record.topic) != len(choices):
                    self._partition_counts[record.topic] = len(choices)
                    self._partition_of.clear()
            cache_key = (record.topic, record.key)
            partition = self._partition_of.get(cache_key) if record.key is not None else None
            if partition is None:
                choices = partitions[record.topic]
                partition = _PARTITIONER(record.key, choices, choices)
                if record.key is not None:
                    if len(self._partition_of) >= _PARTITION_CACHE_SIZE:
                        self._partition_of.clear()
                    self._partition_of[cache_key] = partition
            groups.setdefault((record.topic, partition), []).append(record)
        futures: list[asyncio.Future[Any]] = []
        async with self._enqueue_lock:
            for (topic, partition), group in groups.items():
                batch = producer.create_batch()
                for record in group:
                    headers = list(record.headers)
                    if (
                        batch.append(
                            key=record.key, value=record.value, timestamp=None, headers=headers
                        )
                        is None
                    ):
                        futures.append(await self._send_now(producer, batch, topic, partition))
                        batch = producer.create_batch()
                        batch.append(
                            key=record.key, value=record.value, timestamp=None, headers=headers
                        )
                futures.append(await self._send_now(producer, batch, topic, partition))
        await asyncio.gather(*futures)

    @staticmethod
    async def _send_now(
        producer: AIOKafkaProducer, batch: Any, topic: str, partition: int
    ) -> asyncio.Future[Any]:
        """Hand a batch to the producer closed, so it goes out at once.

        An open batch waits ``linger_ms`` for more records; ours is already the group commit of
        every waiting caller, so the linger only added to each flush's round trip (about 0.7 ms
        of 6 here, docs/performance.md).
        """
        batch.close()
        future: asyncio.Future[Any] = await producer.send_batch(batch, topic, partition=partition)
        return future

    async def _to_spool(self, spool: Spool, records: list[SpoolRecord]) -> None:
        """Queue records for the spool writer and wait until they are fsync'ed.

        The records are queued before the first await, so a drain that finds the spool and
        this queue empty (and leaves spool mode) cannot miss them.
        """
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._spool_queue.append((spool, records, waiter))
        self._spool_queued.set()
        await waiter

    async def _write_spool_forever(self) -> None:
        """Group commit to the spool: every queued caller's records, then one fsync."""
        while True:
            await self._spool_queued.wait()
            self._spool_queued.clear()
            async with self._lock:
                queued, self._spool_queue = self._spool_queue, []
                by_spool: dict[int, list[_Queued]] = {}
                for entry in queued:
                    by_spool.setdefault(id(entry[0]), []).append(entry)
                for entries in by_spool.values():
                    await self._append_to(entries[0][0], entries)
            self._wake.set()

    async def _append_to(self, spool: Spool, entries: list[_Queued]) -> None:
        """Append the queued callers' records to one spool with one fsync; answer each caller."""
        outcome: list[Exception | None]
        try:
            outcome = [
                *await asyncio.to_thread(
                    spool.append_groups, [records for _, records, _ in entries]
                )
            ]
        except Exception as exc:  # the disk failed unexpectedly: every caller gets the error
            outcome = [exc] * len(entries)
        for (*_, waiter), error in zip(entries, outcome, strict=True):
            if waiter.done():
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    def _enter_degraded(self, producer: AIOKafkaProducer | None) -> None:
        """Switch to spool mode (and retire ``producer``, the one that failed)."""
        self._degraded = True
        self._drained.clear()
        if producer is not None and self._producer is producer:
            self._producer = None
            self._retire(producer)
        self._wake.set()

    # -- producer --------------------------------------------------------------------------

    def _new_producer(self) -> AIOKafkaProducer:
        compression = self._kafka.compression
        return AIOKafkaProducer(
            bootstrap_servers=self._kafka.bootstrap_servers,
            client_id=self._client_id,
            acks="all",
            enable_idempotence=True,
            compression_type=None if compression == "none" else compression,
            linger_ms=self._kafka.linger_ms,
            max_batch_size=_MAX_BATCH_BYTES,
            request_timeout_ms=self._kafka.request_timeout_ms,
        )

    async def _start_producer(self) -> AIOKafkaProducer | None:
        producer = self._new_producer()
        try:
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.
            async with asyncio.timeout(self._timeout_s):
                await producer.start()
        except (TimeoutError, KafkaError, OSError) as exc:
            log.warning("kafka_unreachable", error=type(exc).__name__)
            self._retire(producer)
            return None
        except asyncio.CancelledError:
            # Shutdown cancelled the drainer mid-start: stop this producer too (__aexit__ waits
            # for retiring producers), or the garbage collector warns about it later.
            self._retire(producer)
            raise
        return producer

    def _retire(self, producer: AIOKafkaProducer) -> None:
        """Stop a producer in the background: its pending batches may take a while to expire."""

        async def stop() -> None:
            try:
                async with asyncio.timeout(self._kafka.request_timeout_ms / 1000 + self._timeout_s):
                    await producer.stop()
            except Exception as exc:  # the producer is discarded either way
                log.debug("producer_stop_failed", error=type(exc).__name__)

        task = asyncio.create_task(stop())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    # -- draining --------------------------------------------------------------------------

    def _spools(self) -> list[Spool]:
        """Every open spool in drain order: events (adopted first), then dead letters."""
        own = [s for s in (self._spool,) if s is not None]
        dead = [s for s in (self._dead_spool,) if s is not None]
        return [*self._adopted, *own, *self._dead_adopted, *dead]

    def _all_empty(self) -> bool:
        return all(s.is_empty() for s in self._spools())

    async def _drain_forever(self) -> None:
        backoff_s = _BACKOFF_MIN_S
        while True:
            if not self._degraded:
                self._wake.clear()
                await self._wake.wait()
                continue
            if await self._drain_once():
                backoff_s = _BACKOFF_MIN_S
            else:
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, _BACKOFF_MAX_S)

    async def _drain_once(self) -> bool:
        """Drain what the spools hold; False when Kafka failed and the caller should back off."""
        if self._producer is None:
            self._producer = await self._start_producer()
            if self._producer is None:
                return False
            log.info("kafka_reconnected", spooled=self.spool_records)
        producer = self._producer
        for spool in self._spools():
            while True:
                async with self._lock:
                    batch: SpoolBatch = await asyncio.to_thread(spool.read, _DRAIN_CHUNK)
                if not batch.records:
                    break
                started = time.monotonic()
                try:
                    async with asyncio.timeout(self._timeout_s):
                        await self._send_all(producer, batch.records)
                except Exception as exc:  # no ack in time, or any send failure: retry later
                    log.warning("spool_drain_failed", error=type(exc).__name__)
                    async with self._lock:
                        self._enter_degraded(producer)
                    return False
                async with self._lock:
                    await asyncio.to_thread(spool.commit, batch)
                log.debug(
                    "spool_drained_batch",
                    records=len(batch.records),
                    duration_ms=round((time.monotonic() - started) * 1000, 1),
                )
        async with self._lock:
            if self._all_empty() and not self._spool_queue:
                self._degraded = False
                self._drained.set()
                self._drop_empty_adopted()
                log.info("spool_drained")
        return True

    def _drop_empty_adopted(self) -> None:
        for adopted in (self._adopted, self._dead_adopted):
            for spool in [s for s in adopted if s.is_empty()]:
                spool.close()
                adopted.remove(spool)


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel a task and wait for it, cancelling again should a library swallow one."""
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=1.0)
    with contextlib.suppress(asyncio.CancelledError):
        await task
