"""How the consumer carries out decisions without one UE or one slow service holding up the rest.

* :class:`Marks`: per partition, which records are handed out and which are done; the commit
  point is the first record not yet done (the watermark), so an offset is committed once it and
  every earlier record of its partition are done, whatever order they finish in.
* :class:`Work`: the parts of one record still outstanding (audit records, its signals, its UE
  record); the record is done when the last part is.
* :class:`StateWriter`: the changelog writes of each UE one at a time, in order, a write that
  arrives while one is in flight replacing any still queued (each is a whole record).
* :class:`Lanes`: per UE, its relocation signals and then its record, in the order decided; UEs
  proceed independently, and at most ``limit`` signals are in flight at once. A UE's record goes
  to the changelog only after its signals are accepted: a record that names an event as seen
  promises that the event's moves were handed to Temporal, which is what makes a replay after a
  crash skip it safely.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog
from aiokafka import TopicPartition
from opentelemetry import context as otel_context

from subscriber.act.outbox import Outbox
from subscriber.errors import SignalFailed
from subscriber.relocation import RelocationRequest

log = structlog.get_logger()

LaneKey = tuple[int, str]
"""(partition, UE key)."""

_RETRY_FIRST_S = 0.2
_RETRY_MAX_S = 5.0


class PartitionMarks:
    """One partition's records in offset order, those done, and the next offset to commit.

    A partition dropped and assigned again gets a new object: a late completion from before
    cannot mark a redelivered record of the same offset as done.
    """

    __slots__ = ("done", "next", "opened")

    def __init__(self) -> None:
        self.opened: deque[int] = deque()
        self.done: set[int] = set()
        self.next: int | None = None

    def completer(self, offset: int) -> Callable[[], None]:
        """What marks ``offset`` done."""
        return lambda: self.done.add(offset)


class Marks:
    """The commit watermark of each partition."""

    def __init__(self) -> None:
        self._parts: dict[TopicPartition, PartitionMarks] = {}

    @property
    def outstanding(self) -> int:
        """Records handed out and not yet past the watermark."""
        return sum(len(p.opened) for p in self._parts.values())

    def add(self, tp: TopicPartition, offset: int) -> Callable[[], None]:
        """A record handed out (in offset order within its partition); returns its completer."""
        part = self._parts.get(tp)
        if part is None:
            part = self._parts[tp] = PartitionMarks()
        part.opened.append(offset)
        return part.completer(offset)

    def advance(self) -> dict[TopicPartition, int]:
        """The offsets to commit now: per partition whose watermark moved, the next to read."""
        out = {}
        for tp, part in self._parts.items():
            opened, done = part.opened, part.done
            moved = False
            while opened and opened[0] in done:
                offset = opened.popleft()
                done.discard(offset)
                part.next = offset + 1
                moved = True
            if moved and part.next is not None:
                out[tp] = part.next
        return out

    def drop(self, partitions: set[int]) -> None:
        """Forget partitions this member no longer owns."""
        for tp in [tp for tp in self._parts if tp.partition in partitions]:
            del self._parts[tp]


class Work:
    """The parts of one record still outstanding; ``on_done`` runs when the last one finishes.

    It starts with one part, the handling itself, which :meth:`finish` ends: parts added while
    handling cannot complete the record early.
    """

    __slots__ = ("_left", "_on_done")

    def __init__(self, on_done: Callable[[], None] | None = None) -> None:
        self._left = 1
        self._on_done = on_done

    def part(self) -> Callable[[], None]:
        """One more outstanding part; call the returned function when it is done."""
        self._left += 1
        return self.finish

    def finish(self) -> None:
        """One part done."""
        self._left -= 1
        if self._left == 0 and self._on_done is not None:
            self._on_done()


@dataclass
class _Slot:
    waiting: list[Callable[[], None]]
    queued: bytes | None = None
    queued_waiting: list[Callable[[], None]] = field(default_factory=list)
    has_queued: bool = False


class StateWriter:
    """The changelog writes: per UE one in flight, acknowledged before the next is sent.

    Args:
        outbox: where writes go (retried until acknowledged).
        topic: the changelog topic.
    """

    def __init__(self, outbox: Outbox, topic: str) -> None:
        self._outbox = outbox
        self._topic = topic
        self._busy: dict[LaneKey, _Slot] = {}

    def __len__(self) -> int:
        return len(self._busy)

    def busy(self, key: LaneKey) -> bool:
        """A write of this UE is still unacknowledged."""
        return key in self._busy

    def write(self, key: LaneKey, value: bytes | None, then: Callable[[], None]) -> None:
        """Write the UE's record (None: a tombstone); ``then`` once it, or a later one, is in."""
        slot = self._busy.get(key)
        if slot is not None:
            slot.queued, slot.has_queued = value, True
            slot.queued_waiting.append(then)
            return
        self._busy[key] = _Slot([then])
        self._send(key, value)

    def _send(self, key: LaneKey, value: bytes | None) -> None:
        partition, ue = key
        self._outbox.send(
            self._topic,
            value,
            key=ue.encode(),
            partition=partition,
            then=lambda: self._acked(key),
        )

    def _acked(self, key: LaneKey) -> None:
        slot = self._busy.get(key)
        if slot is None:
            return  # the partition was dropped meanwhile
        for then in slot.waiting:
            then()
        if not slot.has_queued:
            del self._busy[key]
            return
        value = slot.queued
        self._busy[key] = _Slot(slot.queued_waiting)
        self._send(key, value)

    def drop(self, partitions: set[int]) -> None:
        """Forget writes of partitions this member no longer owns."""
        for key in [k for k in self._busy if k[0] in partitions]:
            del self._busy[key]


Signal = Callable[[RelocationRequest], Awaitable[None]]
"""Hand one request to its workflow; returns once Temporal accepted it."""
DeadLetter = Callable[[LaneKey, RelocationRequest, str], Awaitable[None]]
"""Put a request Temporal will never accept on the dead-letter topic, with the reason."""


@dataclass(frozen=True, slots=True)
class Job:
    """One step of a UE's lane: signal ``requests``, then write ``record``, then ``then``."""

    requests: tuple[RelocationRequest, ...]
    record: bytes | None
    then: Callable[[], None]
    context: otel_context.Context | None = None


class Lanes:
    """Per UE, its signals and then its record, in order; UEs independently of each other.

    Args:
        signal: hands one request to Temporal (raises :class:`SignalFailed`).
        dead_letter: where a request Temporal rejects for good goes.
        writer: the changelog writer.
        limit: most signals in flight at once.
    """

    def __init__(
        self, *, signal: Signal, dead_letter: DeadLetter, writer: StateWriter, limit: int
    ) -> None:
        self._signal = signal
        self._dead_letter = dead_letter
        self._writer = writer
        self._slots = asyncio.Semaphore(limit)
        self._lanes: dict[LaneKey, deque[Job]] = {}
        self._tasks: dict[LaneKey, asyncio.Task[None]] = {}

    def __len__(self) -> int:
        return len(self._lanes)

    @property
    def signals_waiting(self) -> int:
        """Requests queued and not yet accepted by Temporal (for the metrics)."""
        return sum(len(job.requests) for lane in self._lanes.values() for job in lane)

    def busy(self, key: LaneKey) -> bool:
        """The UE has signals or writes still queued."""
        return key in self._lanes or self._writer.busy(key)

    async def submit(self, key: LaneKey, job: Job) -> None:
        """Queue ``job`` behind the UE's earlier ones; with nothing queued and nothing to signal,
        its record goes straight to the writer."""
        lane = self._lanes.get(key)
        if lane is None and not job.requests:
            self._writer.write(key, job.record, job.then)
            return
        if lane is None:
            lane = self._lanes[key] = deque()
            self._tasks[key] = asyncio.create_task(self._run(key, lane))
        lane.append(job)

    async def _run(self, key: LaneKey, lane: deque[Job]) -> None:
        try:
            while lane:
                job = lane[0]
                for request in job.requests:
                    await self._deliver(key, request, job.context)
                self._writer.write(key, job.record, job.then)
                lane.popleft()
        finally:
            if self._lanes.get(key) is lane:
                del self._lanes[key]
                del self._tasks[key]

    async def _deliver(
        self, key: LaneKey, request: RelocationRequest, context: otel_context.Context | None
    ) -> None:
        delay = _RETRY_FIRST_S
        while True:
            token = otel_context.attach(context) if context is not None else None
            try:
                async with self._slots:
                    await self._signal(request)
                return
            except SignalFailed as exc:
                if not exc.retryable:
                    log.error(
                        "consumer.signal_rejected", request_id=request.request_id, error=str(exc)
                    )
                    await self._dead_letter(key, request, str(exc))
                    return
                log.warning("consumer.signal_retry", request_id=request.request_id, error=str(exc))
            finally:
                if token is not None:
                    otel_context.detach(token)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX_S)

    async def drop(self, partitions: set[int]) -> None:
        """Stop the lanes of partitions this member no longer owns (their records replay)."""
        keys = [k for k in self._tasks if k[0] in partitions]
        await self._cancel(keys)

    async def close(self) -> None:
        """Stop every lane."""
        await self._cancel(list(self._tasks))

    async def _cancel(self, keys: list[LaneKey]) -> None:
        tasks = [self._tasks[k] for k in keys]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for key in keys:
            self._lanes.pop(key, None)
            self._tasks.pop(key, None)

    async def idle(self) -> None:
        """Wait until no lane has work queued."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
