"""``subscriber consume``: events in, decisions out, relocations signalled, then commit.

For each batch the consumer, partition by partition and in offset order:

1. decodes each record (undecodable ones go to the dead-letter topic and are passed over);
2. confirms with the workflow where moved instances really run, when a move is unconfirmed;
3. asks :func:`subscriber.decide.step.handle_event` what to do;
4. signals each relocation and waits until Temporal recorded it (retrying while it is away);
5. sends every decision to the audit topic (keyed by application) and the UE's new record to
   the compacted changelog (keyed by UE, same partition number as the event);

and commits the batch's offsets only once every record of steps 4 and 5 is acknowledged. A crash
anywhere replays the batch: the same events give the same decisions and the same request ids,
which the workflow drops, so nothing is relocated twice and no decision is lost.

UE records follow partitions: when the group assigns a partition, its UEs are restored from the
changelog partition of the same number before any of its events is handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import heapq
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from types import TracebackType
from typing import Any, Self

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from opentelemetry import trace
from prometheus_client import Counter, Gauge
from temporalio.client import Client

from subscriber import tracing
from subscriber.act.signals import SignalReceipt, request_relocation
from subscriber.decide.engine import PolicyHolder
from subscriber.decide.instances import Instances
from subscriber.decide.step import (
    Handled,
    UeRecord,
    confirm,
    decode_record,
    encode_record,
    handle_event,
    handle_recheck,
)
from subscriber.errors import SignalFailed, UndecodableEvent
from subscriber.events import LocationEvent, decode_event
from subscriber.logs import pseudonym
from subscriber.relocation import MoveOutcome, RelocationRequest, RelocationState, workflow_id
from subscriber.settings import Settings

log = structlog.get_logger()

DECISIONS = Counter(
    "subscriber_decisions_total", "Decisions made, by action and reason", ["action", "reason"]
)
CONSUMED = Counter("subscriber_consumed_total", "Event records handled, by outcome", ["outcome"])
LAG = Gauge("subscriber_consumer_lag", "Records behind the partition end", ["partition"])

Signaller = Callable[[Client, str, RelocationRequest], Awaitable[SignalReceipt]]


async def _partition_count(admin: AIOKafkaAdminClient, topic: str) -> int:
    """Partitions of ``topic``, 0 when it does not exist."""
    (meta,) = await admin.describe_topics([topic])
    if meta.get("error_code"):
        return 0
    return len(meta.get("partitions") or [])


class _Restorer(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: EventConsumer) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # Commit what was handled while the partitions are still ours.
        with contextlib.suppress(Exception):
            await self._consumer.flush()
        self._consumer.forget([tp.partition for tp in revoked])

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._consumer.ensure_restored([tp.partition for tp in assigned])


class EventConsumer:
    """The consumer group member; an async context manager, then :meth:`run`."""

    def __init__(
        self,
        settings: Settings,
        *,
        policy: PolicyHolder,
        instances: Instances,
        temporal: Client,
        signal: Signaller = request_relocation,
    ) -> None:
        """Prepare, connecting nothing yet.

        Args:
            settings: Kafka topics and group, Temporal task queue, act options.
            policy: the running topology and policy.
            instances: which instances serve which UEs.
            temporal: a client with the pydantic data converter.
            signal: how to hand a request to its workflow (tests inject failures here).
        """
        self._s = settings
        self._policy = policy
        self._instances = instances
        self._temporal = temporal
        self._signal = signal
        self.records: dict[int, dict[str, UeRecord]] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._state_partitions = 0
        self._restoring: dict[int, asyncio.Task[None]] = {}
        self._lanes = asyncio.Semaphore(settings.act.max_concurrent_ues)
        self._finishing: asyncio.Task[None] | None = None
        # (due wall time, recheck_at_s, partition, ue): deferred moves to look at again
        # though no event comes.
        self._timers: list[tuple[float, float, int, str]] = []
        self._armed: dict[tuple[int, str], float] = {}

    async def __aenter__(self) -> Self:
        kafka = self._s.kafka
        await self._ensure_state_topic()
        self._producer = AIOKafkaProducer(
            bootstrap_servers=kafka.bootstrap_servers,
            enable_idempotence=True,
            acks="all",
            compression_type=None if kafka.compression == "none" else kafka.compression,
            linger_ms=kafka.linger_ms,
        )
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers,
            group_id=kafka.consumer_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self._s.act.max_batch,
        )
        await self._consumer.start()
        self._consumer.subscribe([kafka.events_topic], listener=_Restorer(self))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()

    async def _ensure_state_topic(self) -> None:
        """Create the changelog with the events topic's partition count, and learn that count."""
        kafka = self._s.kafka
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
        await admin.start()
        try:
            partitions = await _partition_count(admin, kafka.events_topic) or 1
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(
                            kafka.state_topic,
                            partitions,
                            1,
                            topic_configs={"cleanup.policy": "compact"},
                        )
                    ]
                )
            # A topic just created may not be described yet on a busy broker: 0 partitions
            # here would skip every restore, so wait (bounded) until it is.
            for _ in range(50):
                self._state_partitions = await _partition_count(admin, kafka.state_topic)
                if self._state_partitions:
                    break
                await asyncio.sleep(0.1)
        finally:
            await admin.close()

    def forget(self, partitions: list[int]) -> None:
        """Drop the UE records of partitions this member no longer owns."""
        for p in partitions:
            self.records.pop(p, None)
            for key in [k for k in self._armed if k[0] == p]:
                del self._armed[key]
            task = self._restoring.pop(p, None)
            if task is not None and not task.done():
                task.cancel()

    async def ensure_restored(self, partitions: list[int]) -> None:
        """Restore each partition once per assignment; callers wait for the same restore."""
        for p in partitions:
            if p not in self._restoring:
                self._restoring[p] = asyncio.create_task(self.restore([p]))
        await asyncio.gather(*(self._restoring[p] for p in partitions))

    async def restore(self, partitions: list[int]) -> None:
        """Load the UE records of ``partitions`` from the changelog, replacing what we had."""
        started = time.monotonic()
        kafka = self._s.kafka
        tps = [
            TopicPartition(kafka.state_topic, p) for p in partitions if p < self._state_partitions
        ]
        restored: dict[int, dict[str, UeRecord]] = {p: {} for p in partitions}
        # No reader without partitions to read: aiokafka's stop() right after start() raises
        # CancelledError (its group-less coordinator awaits a task it cancelled before it ran),
        # which ended the consumer as if it had been cancelled.
        if tps:
            reader = AIOKafkaConsumer(
                bootstrap_servers=kafka.bootstrap_servers, enable_auto_commit=False
            )
            await reader.start()
            try:
                reader.assign(tps)
                await reader.seek_to_beginning(*tps)
                ends = await reader.end_offsets(tps)
                pending = {tp for tp in tps if ends[tp] > 0}
                while pending:
                    batch = await reader.getmany(*pending, timeout_ms=1000)
                    for tp, msgs in batch.items():
                        for msg in msgs:
                            self._apply_changelog(restored[tp.partition], msg.key, msg.value)
                    pending = {tp for tp in pending if await reader.position(tp) < ends[tp]}
            finally:
                await reader.stop()
        self.records.update(restored)
        for p, records in restored.items():
            for ue, record in records.items():
                self._arm(p, ue, record)
        # Restored records live long: keep the collector from rescanning them (docs/policy.md).
        gc.freeze()
        log.info(
            "consumer.restored",
            partitions=partitions,
            ues=sum(len(v) for v in restored.values()),
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )

    @staticmethod
    def _apply_changelog(into: dict[str, UeRecord], key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        ue = key.decode()
        if value is None:
            into.pop(ue, None)
            return
        try:
            into[ue] = decode_record(value)
        except UndecodableEvent:
            log.warning("consumer.bad_changelog_record", ue=pseudonym(ue))

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; the batch in hand is finished and committed first."""
        assert self._consumer is not None
        try:
            while not stop.is_set():
                batch = await self._consumer.getmany(
                    timeout_ms=200, max_records=self._s.act.max_batch
                )
                if batch:
                    await self.process(batch)
                elif self._finishing is not None and self._finishing.done():
                    self._finishing.result()  # surface a failed commit
                await self._run_due_rechecks()
                self._update_lag()
        finally:
            await self.flush()

    async def process(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """Handle one batch and commit it once everything it produced is acknowledged."""
        assert self._consumer is not None
        assert self._producer is not None
        if self._finishing is not None and self._finishing.done():
            self._finishing.result()  # a failed acknowledgement or commit stops the consumer
        # Records can arrive before the assignment callback has restored their partition.
        await self.ensure_restored([tp.partition for tp in batch])
        # One UE's records stay in order; different UEs (same key = same UE) go concurrently,
        # so one slow signal does not hold up every other UE of the partition.
        lanes: dict[tuple[TopicPartition, bytes | None], list[Any]] = {}
        for tp, msgs in batch.items():
            for msg in msgs:
                lanes.setdefault((tp, msg.key), []).append(msg)
        results = await asyncio.gather(*(self._lane(tp, msgs) for (tp, _), msgs in lanes.items()))
        sends = [future for lane in results for future in lane]
        offsets = {tp: msgs[-1].offset + 1 for tp, msgs in batch.items()}
        # Waiting for the acknowledgements and the commit overlaps with the next batch; commits
        # still happen in batch order, each only after its own records are acknowledged.
        self._finishing = asyncio.create_task(self._finish(self._finishing, sends, offsets))

    async def _finish(
        self,
        previous: asyncio.Task[None] | None,
        sends: list[asyncio.Future[Any]],
        offsets: dict[TopicPartition, int],
    ) -> None:
        assert self._consumer is not None
        if previous is not None:
            await previous
        if sends:
            await asyncio.gather(*sends)
        await self._consumer.commit(offsets)

    async def flush(self) -> None:
        """Wait until every batch handled so far is acknowledged and committed."""
        if self._finishing is not None:
            await self._finishing

    async def _lane(self, tp: TopicPartition, msgs: list[Any]) -> list[asyncio.Future[Any]]:
        async with self._lanes:
            sends: list[asyncio.Future[Any]] = []
            for msg in msgs:
                sends += await self._handle(tp, msg)
            return sends

    async def _handle(self, tp: TopicPartition, msg: Any) -> list[asyncio.Future[Any]]:
        assert self._producer is not None
        structlog.contextvars.bind_contextvars(
            topic=tp.topic, partition=tp.partition, offset=msg.offset
        )
        try:
            # The publisher's trace context: the signal below, sent inside this span, carries
            # it on into the workflow (subscriber.tracing).
            with tracing.continue_trace(
                "consume event",
                tracing.context_from_kafka(msg.headers),
                kind=trace.SpanKind.CONSUMER,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.destination.name": tp.topic,
                    "messaging.destination.partition.id": str(tp.partition),
                    "messaging.kafka.offset": msg.offset,
                },
            ):
                try:
                    event = decode_event(msg.value or b"")
                except UndecodableEvent as exc:
                    CONSUMED.labels("dead_letter").inc()
                    log.warning("consumer.undecodable", error=str(exc))
                    return [await self._dead_letter(tp, msg, str(exc))]
                return await self._handle_event(tp.partition, event)
        finally:
            structlog.contextvars.unbind_contextvars("topic", "partition", "offset")

    async def _handle_event(
        self, partition: int, event: LocationEvent
    ) -> list[asyncio.Future[Any]]:
        assert self._producer is not None
        started = time.monotonic()
        ue = event.ue.key()
        alias = pseudonym(ue)
        record = await self._confirm(self.records.get(partition, {}).get(ue))
        handled: Handled = handle_event(
            event,
            record,
            self._instances.of(ue),
            self._policy.bundle,
            ue_alias=alias,
            app_port=self._s.act.app_port,
            dedup_window=self._s.act.dedup_window,
        )
        _annotate(event.event_id, alias, handled)
        if handled.duplicate:
            CONSUMED.labels("duplicate").inc()
            log.info("consumer.duplicate", event_id=event.event_id, ue=alias)
            return []
        sends = await self._carry_out(partition, ue, handled, event.event_id, "event", alias)
        CONSUMED.labels("handled").inc()
        log.info(
            "consumer.event",
            event_id=event.event_id,
            ue=alias,
            decisions=[
                f"{a.decision.action.value}:{a.decision.reason.value}" for a in handled.audited
            ],
            signalled=[r.request_id for r in handled.requests],
            duration_ms=round((time.monotonic() - started) * 1000, 2),
        )
        return sends

    async def _carry_out(
        self, partition: int, ue: str, handled: Handled, event_id: str, trigger: str, alias: str
    ) -> list[asyncio.Future[Any]]:
        """Signal the moves, audit the decisions, store the record; return the pending sends."""
        assert self._producer is not None
        for request in handled.requests:
            await self._signal_with_retry(request)
        sends = []
        for audited in handled.audited:
            DECISIONS.labels(audited.decision.action.value, audited.decision.reason.value).inc()
            key, value = audited.to_record(event_id, trigger, alias)
            sends.append(await self._producer.send(self._s.kafka.decisions_topic, value, key=key))
        self.records.setdefault(partition, {})[ue] = handled.record
        self._arm(partition, ue, handled.record)
        sends.append(
            await self._producer.send(
                self._s.kafka.state_topic,
                encode_record(handled.record),
                key=ue.encode(),
                partition=partition,
            )
        )
        return sends

    def _arm(self, partition: int, ue: str, record: UeRecord) -> None:
        # The policy's times are event times. Wait, in wall time, as long as the policy asked
        # for after the UE's latest report: right for live events, and for replayed ones too.
        if record.recheck_at_s is None or record.state is None:
            self._armed.pop((partition, ue), None)
            return
        if self._armed.get((partition, ue)) == record.recheck_at_s:
            return  # already armed for that time: one recheck, however many events asked
        self._armed[(partition, ue)] = record.recheck_at_s
        delay_s = max(0.0, record.recheck_at_s - record.state.last_seen_s)
        heapq.heappush(self._timers, (time.time() + delay_s, record.recheck_at_s, partition, ue))

    async def _run_due_rechecks(self) -> None:
        """Look again at deferred moves whose time has come; no offsets to commit for these."""
        now = time.time()
        sends: list[asyncio.Future[Any]] = []
        while self._timers and self._timers[0][0] <= now:
            _, at_s, partition, ue = heapq.heappop(self._timers)
            if self._armed.get((partition, ue)) != at_s:
                continue  # superseded by a later arming
            del self._armed[(partition, ue)]
            record = self.records.get(partition, {}).get(ue)
            if record is None or record.recheck_at_s != at_s:
                continue  # partition moved away, or a newer event rescheduled it
            alias = pseudonym(ue)
            record = await self._confirm(record)
            assert record is not None
            handled = handle_recheck(
                at_s,
                record,
                self._instances.of(ue),
                self._policy.bundle,
                ue_alias=alias,
                app_port=self._s.act.app_port,
            )
            last_event = record.seen[-1] if record.seen else ""
            # A recheck has no record to inherit a trace from: it starts its own.
            with tracing.continue_trace("recheck", None):
                _annotate(last_event, alias, handled)
                sends += await self._carry_out(partition, ue, handled, last_event, "recheck", alias)
            log.info(
                "consumer.recheck",
                ue=alias,
                decisions=[
                    f"{a.decision.action.value}:{a.decision.reason.value}" for a in handled.audited
                ],
                signalled=[r.request_id for r in handled.requests],
            )
        if sends:
            await asyncio.gather(*sends)

    async def _confirm(self, record: UeRecord | None) -> UeRecord | None:
        """Ask the workflow where each moved instance really runs, once its move had time.

        A move normally completes within seconds; asking earlier would cost a query per event
        while the workflow is still busy. The belief is only wrong when a move failed and was
        compensated, and that is what this catches.
        """
        if record is None or not record.unconfirmed:
            return record
        now_s = time.time()
        for key, requested_at_s, request_id in record.unconfirmed:
            if now_s - requested_at_s < self._s.act.confirm_after_s:
                continue
            app, _, instance = key.partition("/")
            handle = self._temporal.get_workflow_handle(workflow_id(app, instance))
            deadline = timedelta(seconds=2)
            try:
                # Short: with no worker polling, a query waits for the RPC deadline; the belief
                # is kept and the next event asks again.
                history = await handle.query(
                    "history", result_type=list[MoveOutcome], rpc_timeout=deadline
                )
                state = await handle.query(
                    "state", result_type=RelocationState, rpc_timeout=deadline
                )
            except Exception as exc:  # unreachable or not yet started: keep the belief
                log.info("consumer.confirm_skipped", instance=key, error=type(exc).__name__)
                continue
            if request_id and all(o.request_id != request_id for o in history):
                continue  # the workflow has not acted on our request yet: its state is older
            if state.pending is None and state.in_flight is None:
                actual = state.placement.cluster if state.placement else None
                record = confirm(record, key, actual)
        return record

    async def _signal_with_retry(self, request: RelocationRequest) -> None:
        delay, deadline = 0.2, time.monotonic() + self._s.act.signal_retry_max_s
        while True:
            try:
                receipt = await self._signal(self._temporal, self._s.temporal.task_queue, request)
                log.info(
                    "consumer.signalled",
                    workflow_id=receipt.workflow_id,
                    request_id=request.request_id,
                )
                return
            except SignalFailed as exc:
                if not exc.retryable or time.monotonic() + delay > deadline:
                    # Not committing is the safe answer: the batch is replayed after a restart.
                    raise
                log.warning("consumer.signal_retry", request_id=request.request_id, error=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _dead_letter(self, tp: TopicPartition, msg: Any, reason: str) -> asyncio.Future[Any]:
        assert self._producer is not None
        headers = [
            ("source_topic", tp.topic.encode()),
            ("source_partition", str(tp.partition).encode()),
            ("source_offset", str(msg.offset).encode()),
            ("reason", reason[:500].encode()),
        ]
        value = (msg.value or b"")[: self._s.receiver.dead_letter_max_bytes]
        future: asyncio.Future[Any] = await self._producer.send(
            self._s.kafka.dead_letter_topic, value, key=msg.key, headers=headers
        )
        return future

    def _update_lag(self) -> None:
        assert self._consumer is not None
        for tp in self._consumer.assignment():
            highwater = self._consumer.highwater(tp)
            if highwater is None:
                continue
            position = self._consumer.last_stable_offset(tp) or highwater
            LAG.labels(str(tp.partition)).set(max(0, highwater - min(position, highwater)))


def _annotate(event_id: str, alias: str, handled: Handled) -> None:
    """Put the decisions on the current span: pseudonyms and codes only, never identities."""
    current = trace.get_current_span()
    if not current.is_recording():
        return
    current.set_attributes(
        {
            "subscriber.event_id": event_id,
            "subscriber.ue": alias,
            "subscriber.duplicate": handled.duplicate,
            "subscriber.decision.actions": [a.decision.action.value for a in handled.audited],
            "subscriber.decision.reasons": [a.decision.reason.value for a in handled.audited],
            "subscriber.decision.apps": [a.instance.app for a in handled.audited],
            "subscriber.requests": [r.request_id for r in handled.requests],
        }
    )
    for audited in handled.audited:
        current.add_event(
            "decision",
            {
                "action": audited.decision.action.value,
                "reason": audited.decision.reason.value,
                "app": audited.instance.app,
                "instance": audited.instance.instance,
                "policy_version": audited.decision.version,
            },
        )
