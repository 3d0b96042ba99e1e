"""``subscriber consume``: events and outcomes in; decisions, relocation signals and UE records out.

The consumer group reads two co-partitioned topics: the events topic (keyed by UE) and the
outcomes topic, where each relocation workflow reports what became of a request on its UE's
partition (:class:`~subscriber.relocation.OutcomeReport`). A range assignment gives one member the
same partition numbers of both, and of the changelog. Record by record, in offset order:

1. an undecodable record, or one whose decision cannot be carried out (a relocation request that
   cannot be built from it), goes to the dead-letter topic with its reason, and the next follows;
2. an event is decided by :func:`subscriber.decide.step.handle_event` at once, with the capacity
   our own moves already took (:class:`~subscriber.decide.ledger.Ledger`); its decisions go to
   the audit topic at once;
3. its relocation requests go to the UE's lane (:class:`~subscriber.act.lanes.Lanes`): signalled
   to Temporal in order, concurrently with other UEs' (at most ``act.max_concurrent_signals``),
   retried while Temporal is away; then the UE's record goes to the changelog;
4. an outcome is folded into the UE's record (:func:`~subscriber.decide.step.apply_outcome`): the
   moves' placements are confirmed, and capacity is given back;
5. an offset is committed once it and every earlier record of its partition are done (signals
   accepted, audit and changelog records acknowledged): the watermark (:class:`Marks`).

So no Temporal call stands in the way of a decision: a slow or absent Temporal delays the signals
of the UEs that move, and the commits, never the decisions of other UEs. A crash replays from the
watermark; a UE record only names an event as seen once that event's signals were accepted, so a
replayed event is either skipped as seen or decided again to the same request ids, which the
workflow drops. A broker restart delays acknowledgements (the sends are retried) and commits (a
commit refused after a rebalance is left to the partitions' next owner, maybe this member again):
the process goes on.

Besides records: deferred moves are looked at again when due (rechecks); a new topology or
instances registry that puts instances on a cluster in maintenance or draining evacuates them
(:func:`~subscriber.decide.step.handle_evacuation`), as does an assignment; UEs quiet for
``act.ue_ttl_s`` are forgotten (:func:`~subscriber.decide.step.quiet_remainder`, tombstones).

UE records follow partitions: when the group assigns a partition, its UEs are restored from the
changelog partition of the same number before any of its records is handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import heapq
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Self

import orjson
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import IllegalStateError, KafkaError, TopicAlreadyExistsError
from aiokafka.partitioner import murmur2
from opentelemetry import context as otel_context
from opentelemetry import trace
from prometheus_client import Counter, Gauge
from temporalio.client import Client

from subscriber import tracing
from subscriber.act.lanes import Job, LaneKey, Lanes, Marks, StateWriter, Work
from subscriber.act.outbox import Outbox
from subscriber.act.signals import SignalReceipt, report_path_change, request_relocation
from subscriber.act.steering import PathChange
from subscriber.decide.bundle import Bundle
from subscriber.decide.engine import InstancesHolder, PolicyHolder
from subscriber.decide.instances import Instances
from subscriber.decide.ledger import Ledger
from subscriber.decide.policy import Action, Reason
from subscriber.decide.prewarm import Prewarm, Prewarming, Verdict, hold
from subscriber.decide.step import (
    Handled,
    UeRecord,
    apply_outcome,
    decode_record,
    encode_record,
    handle_evacuation,
    handle_event,
    handle_recheck,
    new_load_snapshot,
    quiet_remainder,
    release,
    reserve,
    reserved,
    warm_requests,
)
from subscriber.errors import SignalFailed, UndecodableEvent
from subscriber.events import LocationEvent, decode_event
from subscriber.logs import pseudonym
from subscriber.relocation import (
    OutcomeReport,
    RelocationRequest,
    RequestKind,
    Status,
    decode_report,
)
from subscriber.settings import Settings

log = structlog.get_logger()

DECISIONS = Counter(
    "subscriber_decisions_total", "Decisions made, by action and reason", ["action", "reason"]
)
CONSUMED = Counter("subscriber_consumed_total", "Records handled, by outcome", ["outcome"])
LAG = Gauge("subscriber_consumer_lag", "Records behind the partition end", ["partition"])
SIGNALS_WAITING = Gauge(
    "subscriber_signals_waiting", "Relocation requests decided and not yet accepted by Temporal"
)
UES = Gauge("subscriber_ues_tracked", "UE records held in memory")
EXPIRED = Counter("subscriber_ues_expired_total", "UEs forgotten after act.ue_ttl_s of quiet")
PREWARMS = Counter(
    "subscriber_prewarm_total",
    "Pre-warming records: prewarm started, used (hit), missed, expired",
    ["verdict"],
)
WARM_SECONDS = Counter(
    "subscriber_warm_instance_seconds_total",
    "Seconds warm instances were warm before they ended, by whether they were used",
    ["use"],
)

_HANDLED = CONSUMED.labels("handled")
_CLAMPED = CONSUMED.labels("clamped")


@functools.cache
def _decided(action: Action, reason: Reason) -> Any:
    """The decisions counter of one action and reason (labels() per decision cost 2 % of the
    consumer's CPU)."""
    return DECISIONS.labels(action.value, reason.value)


_NOT_WARMED = frozenset({Status.FAILED, Status.CANCELLED, Status.REJECTED, Status.STALE})
"""Outcomes of a prewarm that leave no warm instance (a superseded one may have a successor)."""

Signaller = Callable[[Client, str, RelocationRequest], Awaitable[SignalReceipt]]

_RESTORE_RETRY_S = 1.0
_EXPIRE_EVERY_S = 1.0
_EXPIRE_BATCH = 20_000
_YIELD_EVERY = 16
_MAX_BATCH_BYTES = 1 << 20


async def _partition_count(admin: AIOKafkaAdminClient, topic: str) -> int:
    """Partitions of ``topic``, 0 when it does not exist."""
    (meta,) = await admin.describe_topics([topic])
    if meta.get("error_code"):
        return 0
    return len(meta.get("partitions") or [])


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a record keyed ``key``."""
    hashed: int = murmur2(key.encode())
    return (hashed & 0x7FFFFFFF) % partitions


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: EventConsumer) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._consumer.revoked({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._consumer.ensure_restored(sorted({tp.partition for tp in assigned}))


class EventConsumer:
    """The consumer group member; an async context manager, then :meth:`run`."""

    def __init__(
        self,
        settings: Settings,
        *,
        policy: PolicyHolder,
        instances: InstancesHolder,
        temporal: Client,
        signal: Signaller = request_relocation,
    ) -> None:
        """Prepare, connecting nothing yet.

        Args:
            settings: Kafka topics and group, Temporal task queue, act options.
            policy: the running topology and policy.
            instances: the running instances registry.
            temporal: a client with the pydantic data converter (it may connect lazily).
            signal: how to hand a request to its workflow (tests and benchmarks wrap it).
        """
        self._s = settings
        self._policy = policy
        self._instances = instances
        self._temporal = temporal
        self._signaller = signal
        self.ledger = Ledger()
        self.warming: Prewarming | None = None
        """Pre-warming's running state while the policy has it on."""
        self._warm_owners: dict[tuple[str, str], tuple[int, str]] = {}
        self.records: dict[int, OrderedDict[str, UeRecord]] = {}
        """Per owned partition, the UEs' records, least recently active first."""
        self._kept: dict[int, dict[str, UeRecord]] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._outbox: Outbox | None = None
        self._lanes: Lanes | None = None
        self._marks = Marks()
        self._partitions = 0
        self._restoring: dict[int, asyncio.Task[None]] = {}
        self._generation = 0
        self._committable: dict[TopicPartition, int] = {}
        self._committing: asyncio.Task[None] | None = None
        self._last_commit = 0.0
        self._last_expiry = 0.0
        self._bundle_seen: Bundle | None = None
        self._registry_seen: Instances | None = None
        self._by_partition: dict[int, list[str]] = {}
        self._evacuate: set[int] = set()
        # (due wall time, recheck_at_s, partition, ue): deferred moves to look at again
        # though no event comes.
        self._timers: list[tuple[float, float, int, str]] = []
        self._armed: dict[tuple[int, str], float] = {}
        self.ready = False
        """True once the member owns partitions and has restored them (for /readyz)."""

    async def __aenter__(self) -> Self:
        kafka = self._s.kafka
        # As the receiver does: the youngest generation collected every 20,000 allocations
        # instead of 700, so a report's objects are mostly freed by reference counting before a
        # collection looks at them (5 % of the consumer's CPU went to collections).
        gc.set_threshold(20_000, 20, 20)
        await self._ensure_topics()
        self._producer = AIOKafkaProducer(
            bootstrap_servers=kafka.bootstrap_servers,
            enable_idempotence=True,
            acks="all",
            compression_type=None if kafka.compression == "none" else kafka.compression,
            linger_ms=kafka.linger_ms,
            # Every decision of an app goes to one partition (keyed by app), and a full batch
            # makes send() wait for the one in flight: aiokafka's 16 KiB (a dozen decisions)
            # held the whole event path to the broker's round trip.
            max_batch_size=_MAX_BATCH_BYTES,
            request_timeout_ms=kafka.request_timeout_ms,
        )
        await self._producer.start()
        self._outbox = Outbox(self._producer)
        writer = StateWriter(self._outbox, kafka.state_topic)
        self._lanes = Lanes(
            signal=self._signal,
            dead_letter=self._dead_letter_request,
            writer=writer,
            limit=self._s.act.max_concurrent_signals,
        )
        self._writer = writer
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers,
            group_id=kafka.consumer_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self._s.act.max_batch,
            # The broker holds a fetch up to fetch_wait_ms unless a whole batch is there: fewer,
            # larger batches. With 0, the first record ends the wait (and an idle member asks
            # again every half second, aiokafka's default).
            fetch_min_bytes=_MAX_BATCH_BYTES if self._s.act.fetch_wait_ms else 1,
            fetch_max_wait_ms=self._s.act.fetch_wait_ms or 500,
            # The same partition numbers of events and outcomes on one member: a UE's outcomes
            # reach the member that holds its record.
            partition_assignment_strategy=(RangePartitionAssignor,),
        )
        await self._consumer.start()
        self._consumer.subscribe(
            [kafka.events_topic, kafka.outcomes_topic], listener=_Rebalance(self)
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._lanes is not None:
            await self._lanes.close()
        if self._outbox is not None:
            await self._outbox.close()
        if self._committing is not None:
            self._committing.cancel()
            with contextlib.suppress(asyncio.CancelledError, KafkaError):
                await self._committing
        for task in self._restoring.values():
            task.cancel()
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()

    async def _ensure_topics(self) -> None:
        """Create the changelog and the outcomes topic with the events topic's partition count."""
        kafka = self._s.kafka
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
        await admin.start()
        try:
            partitions = await _partition_count(admin, kafka.events_topic) or 1
            topics = [
                NewTopic(
                    kafka.state_topic, partitions, 1, topic_configs={"cleanup.policy": "compact"}
                ),
                NewTopic(kafka.outcomes_topic, partitions, 1),
            ]
            for topic in topics:
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics([topic])
            # A topic just created may not be described yet on a busy broker: 0 partitions
            # here would skip every restore, so wait (bounded) until it is.
            for _ in range(50):
                self._partitions = await _partition_count(admin, kafka.state_topic)
                if self._partitions:
                    break
                await asyncio.sleep(0.1)
        finally:
            await admin.close()

    @property
    def signals_waiting(self) -> int:
        """Relocation requests decided and not yet accepted by Temporal."""
        return self._lanes.signals_waiting if self._lanes is not None else 0

    # -- partitions ---------------------------------------------------------------------------

    async def revoked(self, partitions: set[int]) -> None:
        """Commit what is done of ``partitions``, then let them go (their next owner replays the
        rest)."""
        assert self._lanes is not None
        assert self._outbox is not None
        assert self._producer is not None
        self.ready = False
        self._generation += 1  # what was fetched before is fetched again by the next owner
        # Our changelog writes land before the next owner (maybe us) restores the partitions.
        with contextlib.suppress(KafkaError, TimeoutError):
            async with asyncio.timeout(5):
                await self._outbox.flush()
                await self._producer.flush()
        await self._outbox.drop(self._s.kafka.state_topic, partitions)
        self._collect()
        mine = {tp: o for tp, o in self._committable.items() if tp.partition in partitions}
        if mine and self._consumer is not None:
            try:
                async with asyncio.timeout(5):
                    await self._consumer.commit(mine)
            except (KafkaError, IllegalStateError, TimeoutError) as exc:
                log.info("consumer.commit_on_revoke_failed", error=type(exc).__name__)
        for tp in list(self._committable):
            if tp.partition in partitions:
                del self._committable[tp]
        await self._cool_revoked(partitions)
        await self._lanes.drop(partitions)
        self._writer.drop(partitions)
        self._marks.drop(partitions)
        base = self._policy.bundle
        for p in partitions:
            records: dict[str, UeRecord] = self.records.pop(p, OrderedDict())
            kept = self._kept.pop(p, {})
            for cluster, app in reserved([*records.values(), *kept.values()]):
                self.ledger.release(base, cluster, app)
            for key in [k for k in self._armed if k[0] == p]:
                del self._armed[key]
            task = self._restoring.pop(p, None)
            if task is not None and not task.done():
                task.cancel()
        self._evacuate -= partitions

    async def ensure_restored(self, partitions: list[int]) -> None:
        """Restore each partition once per assignment; callers wait for the same restore."""
        for p in partitions:
            if p not in self._restoring:
                self._restoring[p] = asyncio.create_task(self._restore(p))
        await asyncio.gather(*(self._restoring[p] for p in partitions))
        self.ready = True

    async def _restore(self, partition: int) -> None:
        """Load the UE records of ``partition`` from the changelog, retrying while Kafka is away."""
        while True:
            try:
                restored = await self._read_changelog(partition)
                break
            except KafkaError as exc:
                log.warning("consumer.restore_retry", partition=partition, error=type(exc).__name__)
                await asyncio.sleep(_RESTORE_RETRY_S)
        records: OrderedDict[str, UeRecord] = OrderedDict()
        kept: dict[str, UeRecord] = {}
        # Least recently active first, as live records are kept: the order expiry walks.
        for ue, record in sorted(restored.items(), key=lambda kv: kv[1].touched_s):
            if record.state is None:
                kept[ue] = record
            else:
                records[ue] = record
                self._arm(partition, ue, record)
        self.records[partition] = records
        self._kept[partition] = kept
        base = self._policy.bundle
        for cluster, app in reserved(restored.values()):
            self.ledger.reserve(base, cluster, app)
        self._evacuate.add(partition)
        UES.set(self._tracked())
        # Restored records live long: keep the collector from rescanning them (docs/policy.md).
        gc.freeze()

    async def _read_changelog(self, partition: int) -> dict[str, UeRecord]:
        started = time.monotonic()
        kafka = self._s.kafka
        restored: dict[str, UeRecord] = {}
        if partition >= self._partitions:
            return restored
        tp = TopicPartition(kafka.state_topic, partition)
        reader = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers, enable_auto_commit=False
        )
        await reader.start()
        try:
            reader.assign([tp])
            await reader.seek_to_beginning(tp)
            end = (await reader.end_offsets([tp]))[tp]
            while end > 0 and await reader.position(tp) < end:
                batch = await reader.getmany(tp, timeout_ms=1000)
                for msg in batch.get(tp, []):
                    self._apply_changelog(restored, msg)
        finally:
            await reader.stop()
        log.info(
            "consumer.restored",
            partitions=[partition],
            ues=len(restored),
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )
        return restored

    @staticmethod
    def _apply_changelog(into: dict[str, UeRecord], msg: Any) -> None:
        if msg.key is None:
            return
        ue = msg.key.decode()
        if msg.value is None:
            into.pop(ue, None)
            return
        try:
            record = decode_record(msg.value)
        except UndecodableEvent:
            log.warning("consumer.bad_changelog_record", ue=pseudonym(ue))
            return
        # When it was written: the UE's last activity, as far as expiry is concerned.
        into[ue] = record.touched(msg.timestamp / 1000)

    # -- the loop -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; then finish what is in hand (within the shutdown grace)
        and commit it."""
        assert self._consumer is not None
        act = self._s.act
        try:
            while not stop.is_set():
                if self._marks.outstanding >= act.max_pending_records:
                    await asyncio.sleep(0.05)  # back-pressure: let signals and writes catch up
                else:
                    try:
                        batch = await self._consumer.getmany(
                            timeout_ms=100, max_records=act.max_batch
                        )
                    except KafkaError as exc:
                        log.warning("consumer.fetch_failed", error=type(exc).__name__)
                        await asyncio.sleep(0.5)
                        continue
                    if batch:
                        await self.process(batch)
                await self._housekeeping()
        finally:
            await self._drain()

    async def process(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """Handle one fetched batch, partition by partition, in offset order."""
        # Records can arrive before the assignment callback has restored their partition.
        await self.ensure_restored(sorted({tp.partition for tp in batch}))
        await self._sync_warming()
        outcomes = self._s.kafka.outcomes_topic
        generation = self._generation
        handled = 0
        for tp, msgs in batch.items():
            for msg in msgs:
                if self._generation != generation:
                    return  # a rebalance meanwhile: the partitions' owner reads these again
                handled += 1
                if handled % _YIELD_EVERY == 0:
                    # Sends are only queued while records are handled: let the producer put
                    # the first decisions on the wire before the rest of a large batch is done.
                    await asyncio.sleep(0)
                work = Work(self._marks.add(tp, msg.offset))
                structlog.contextvars.bind_contextvars(
                    topic=tp.topic, partition=tp.partition, offset=msg.offset
                )
                try:
                    if tp.topic == outcomes:
                        await self._on_outcome(tp, msg, work)
                    else:
                        await self._on_event(tp, msg, work)
                finally:
                    structlog.contextvars.unbind_contextvars("topic", "partition", "offset")
                work.finish()

    async def _sync_warming(self) -> None:
        """Pre-warming as the running policy has it: started, restarted with new rules, stopped.

        What an old pool held is cooled at once: its capacity, budget and owners go with it.
        """
        rules = self._policy.bundle.rules.prewarm
        old = self.warming
        if old is not None and old.pool.rules == rules:
            return
        self.warming = Prewarming(rules) if rules is not None else None
        if old is not None:
            await self._cool(old.pool.drain(time.time()))

    async def _housekeeping(self) -> None:
        self._notice_reloads()
        await self._run_due_rechecks()
        if self._evacuate:
            await self._run_evacuations()
        now = time.monotonic()
        if now - self._last_expiry >= _EXPIRE_EVERY_S:
            self._last_expiry = now
            await self._expire()
            await self._sync_warming()  # a policy that turned pre-warming off, with no records
            await self._expire_warm()
        if now - self._last_commit >= self._s.act.commit_interval_s:
            self._last_commit = now
            self._commit()
        self._update_gauges()

    async def _drain(self) -> None:
        """On stop: let lanes and writes finish within the grace period, then commit."""
        assert self._lanes is not None
        deadline = time.monotonic() + self._s.shutdown_grace_s
        # Polled: lanes and writes finish through callbacks, with nothing to wait on in between.
        while (self._lanes.signals_waiting or len(self._writer)) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        self._collect()
        if self._committing is not None:
            with contextlib.suppress(KafkaError, IllegalStateError, asyncio.CancelledError):
                await self._committing
        await self._commit_now()

    # -- records ------------------------------------------------------------------------------

    async def _on_event(self, tp: TopicPartition, msg: Any, work: Work) -> None:
        # The publisher's trace context: the decision span continues it, and the lane signals
        # inside it, so the trace goes on into the workflow (subscriber.tracing).
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
            started = time.monotonic()
            try:
                event = decode_event(msg.value or b"")
                ue = event.ue.key()
                p = tp.partition
                alias = pseudonym(ue)
                before = self._lookup(p, ue)
                handled = handle_event(
                    event,
                    before,
                    self._instances.current.of(ue),
                    self.ledger.applied(self._policy.bundle),
                    ue_alias=alias,
                    app_port=self._s.act.app_port,
                    dedup_window=self._s.act.dedup_window,
                    max_skew_s=self._s.act.max_event_time_skew_s,
                    partition=p,
                    warming=self.warming,
                )
            except Exception as exc:  # no record may stop the consumer
                await self._dead_letter(tp, msg, _why(exc), work.part())
                return
            await self._report_path(event)
            _annotate(event.event_id, alias, handled)
            if handled.duplicate:
                CONSUMED.labels("duplicate").inc()
                log.info("consumer.duplicate", event_id=event.event_id, ue=alias)
                return
            reserve(self.ledger, self._policy.bundle, before, handled)
            await self._carry_out(p, ue, handled, event.event_id, "event", alias, work)
        (_CLAMPED if handled.clamped else _HANDLED).inc()
        log.info(
            "consumer.event",
            event_id=event.event_id,
            ue=alias,
            decisions=[
                f"{a.decision.action.value}:{a.decision.reason.value}" for a in handled.audited
            ],
            signalled=[r.request_id for r in handled.requests],
            event_time_clamped=handled.clamped or None,
            duration_ms=round((time.monotonic() - started) * 1000, 2),
        )

    async def _on_outcome(self, tp: TopicPartition, msg: Any, work: Work) -> None:
        try:
            report = decode_report(msg.value or b"")
            ue = self._instances.current.owner(report.app, report.instance)
            record = self._lookup(tp.partition, ue) if ue is not None else None
            applied = apply_outcome(record, report) if record is not None else None
        except Exception as exc:  # no record may stop the consumer
            await self._dead_letter(tp, msg, _why(exc), work.part())
            return
        await self._prewarm_failed(report)
        if ue is None or applied is None:
            CONSUMED.labels("outcome_ignored").inc()
            return
        release(self.ledger, self._policy.bundle, applied)
        self._store(tp.partition, ue, applied.record)
        await self._lanes_submit((tp.partition, ue), (), applied.record, work.part())
        CONSUMED.labels("outcome").inc()
        log.info(
            "consumer.outcome",
            request_id=report.outcome.request_id,
            status=report.outcome.status.value,
            placement=report.placement,
        )

    async def _carry_out(
        self,
        partition: int,
        ue: str,
        handled: Handled,
        cause: str,
        trigger: str,
        alias: str,
        work: Work | None,
    ) -> None:
        """Audit the decisions now; queue the signals and then the record on the UE's lane."""
        assert self._outbox is not None
        for audited in handled.audited:
            _decided(audited.decision.action, audited.decision.reason).inc()
            key, value = audited.to_record(cause, trigger, alias, clamped=handled.clamped)
            self._outbox.send(
                self._s.kafka.decisions_topic,
                value,
                key=key,
                then=work.part() if work is not None else _nothing,
            )
        self._store(partition, ue, handled.record)
        warm = await self._prewarms(partition, ue, handled.prewarms, cause, work)
        await self._lanes_submit(
            (partition, ue),
            (*handled.requests, *warm),
            handled.record,
            work.part() if work is not None else _nothing,
        )

    async def _prewarms(
        self,
        partition: int,
        ue: str,
        prewarms: tuple[Prewarm, ...],
        cause: str,
        work: Work | None,
    ) -> list[RelocationRequest]:
        """Audit pre-warming's records, count them, hold the capacity warm instances take, and
        return the workflow requests that start or cool them."""
        assert self._outbox is not None
        bundle = self._policy.bundle
        hold(self.ledger, bundle, prewarms)
        for rec in prewarms:
            PREWARMS.labels(rec.verdict.value.lower()).inc()
            self._outbox.send(
                self._s.kafka.decisions_topic,
                orjson.dumps({"cause": cause, **rec.to_dict()}),
                key=rec.app.encode(),
                then=work.part() if work is not None else _nothing,
            )
            if rec.verdict is Verdict.PREWARM:
                self._warm_owners[(rec.ue, rec.app)] = (partition, ue)
            else:
                self._warm_owners.pop((rec.ue, rec.app), None)
                WARM_SECONDS.labels("used" if rec.verdict is Verdict.USED else "wasted").inc(
                    rec.warm_s or 0.0
                )
        if not prewarms:
            return []
        try:
            return warm_requests(
                prewarms,
                self._instances.current.of(ue),
                bundle,
                cause,
                app_port=self._s.act.app_port,
                partition=partition,
            )
        except UndecodableEvent as exc:
            log.warning("consumer.prewarm_failed", ue=pseudonym(ue), error=str(exc))
            return []

    async def _expire_warm(self) -> None:
        """Cool the warm instances whose TTL passed (by the wall clock, as rechecks fire)."""
        if self.warming is not None:
            await self._cool(self.warming.expire(time.time()))

    async def _cool(self, ended: Sequence[Prewarm]) -> None:
        """Audit and count the ends of warm instances, and send each cool to its UE's lane."""
        for rec in ended:
            owner = self._warm_owners.get((rec.ue, rec.app))
            if owner is None:
                continue
            partition, ue = owner
            cause = f"expired-{int(rec.at_s * 1000)}"
            cool = await self._prewarms(partition, ue, (rec,), cause, None)
            # The record goes again as it is (None: the UE was forgotten, its tombstone again).
            record = self._lookup(partition, ue)
            await self._lanes_submit((partition, ue), tuple(cool), record, _nothing)

    async def _prewarm_failed(self, report: OutcomeReport) -> None:
        """A prewarm the workflow did not carry out (it failed, or came too late) leaves no warm
        instance: the pool, its budget, the ledger and the owners let it go."""
        outcome = report.outcome
        if (
            self.warming is None
            or outcome.kind is not RequestKind.PREWARM
            or outcome.status not in _NOT_WARMED
        ):
            return
        warm = self.warming.pool.warm(report.ue_key, report.app)
        if warm is None or warm.cluster != outcome.target_cluster:
            return  # a newer prediction, or already ended
        rec = self.warming.pool.revoke(time.time(), report.ue_key, report.app)
        await self._cool([rec] if rec is not None else [])

    async def _cool_revoked(self, partitions: set[int]) -> None:
        """End the warm instances of UEs whose partitions go: their next owner does not know
        them. Their cools are signalled at once (a cool removes only a warm instance that is
        there), within a bound: a revocation must not wait long."""
        if self.warming is None:
            return
        now = time.time()
        pool = self.warming.pool
        ended = [
            rec
            for (alias, app), (p, _) in list(self._warm_owners.items())
            if p in partitions and (rec := pool.revoke(now, alias, app)) is not None
        ]
        owners = {(r.ue, r.app): self._warm_owners[(r.ue, r.app)] for r in ended}
        cools: list[RelocationRequest] = []
        for rec in ended:
            partition, ue = owners[(rec.ue, rec.app)]
            cause = f"revoked-{int(now * 1000)}"
            cools += await self._prewarms(partition, ue, (rec,), cause, None)
        queue = self._s.temporal.task_queue
        signals = [self._signaller(self._temporal, queue, req) for req in cools]
        try:
            async with asyncio.timeout(5):
                results = await asyncio.gather(*signals, return_exceptions=True)
        except TimeoutError as exc:
            results = [exc]
        for result in results:
            if isinstance(result, BaseException):  # it stays warm until its app's next move
                log.info("consumer.cool_on_revoke_failed", error=type(result).__name__)

    async def _lanes_submit(
        self,
        key: LaneKey,
        requests: tuple[RelocationRequest, ...],
        record: UeRecord | None,
        then: Callable[[], None],
    ) -> None:
        assert self._lanes is not None
        if key[0] not in self.records:
            return  # revoked meanwhile: the next owner replays and carries it out
        context = otel_context.get_current() if requests else None
        value = encode_record(record) if record is not None else None
        await self._lanes.submit(key, Job(requests, value, then, context))

    def _lookup(self, partition: int, ue: str) -> UeRecord | None:
        records = self.records.get(partition)
        found = records.get(ue) if records is not None else None
        if found is None:
            found = self._kept.get(partition, {}).get(ue)
        return found

    def _store(self, partition: int, ue: str, record: UeRecord) -> None:
        records = self.records.get(partition)
        if records is None:
            return  # the partition went to another member while this record was handled
        record = record.touched(time.time())
        if record.state is None:  # no event yet, only a placement: nothing to expire
            records.pop(ue, None)
            self._kept.setdefault(partition, {})[ue] = record
            return
        records[ue] = record
        records.move_to_end(ue)
        kept = self._kept.get(partition)
        if kept:
            kept.pop(ue, None)
        self._arm(partition, ue, record)

    async def _report_path(self, event: LocationEvent) -> None:
        """A path change on one of our traffic-influence subscriptions goes to the workflow of
        its instance, which may be waiting for it (:mod:`subscriber.act.steering`). Not
        delivered after a few tries, it is dropped with a warning: the move's confirmation
        deadline then undoes the move, which is the safe side."""
        change = event.dnai_change
        if change is None or not change.app or not change.instance:
            return
        path = PathChange(
            app=change.app,
            instance=change.instance,
            change_type=change.change_type,
            target_dnai=change.target_dnai,
            event_id=event.event_id,
        )
        delay = 0.2
        for attempt in range(5):
            try:
                delivered = await report_path_change(self._temporal, path)
            except SignalFailed as exc:
                if not exc.retryable or attempt == 4:
                    log.warning("consumer.path_change_lost", workflow=path.instance, error=str(exc))
                    return
                await asyncio.sleep(delay)
                delay *= 2
                continue
            log.info("consumer.path_change", workflow=path.instance, delivered=delivered)
            return

    async def _signal(self, request: RelocationRequest) -> None:
        receipt = await self._signaller(self._temporal, self._s.temporal.task_queue, request)
        log.info(
            "consumer.signalled", workflow_id=receipt.workflow_id, request_id=request.request_id
        )

    async def _dead_letter(
        self, tp: TopicPartition, msg: Any, reason: str, then: Callable[[], None]
    ) -> None:
        """Put a record that cannot be handled on the dead-letter topic, with its origin and
        reason; it counts as done once there."""
        assert self._outbox is not None
        CONSUMED.labels("dead_letter").inc()
        log.warning("consumer.dead_letter", error=reason)
        headers = [
            ("source_topic", tp.topic.encode()),
            ("source_partition", str(tp.partition).encode()),
            ("source_offset", str(msg.offset).encode()),
            ("reason", reason[:500].encode()),
        ]
        value = (msg.value or b"")[: self._s.receiver.dead_letter_max_bytes]
        self._outbox.send(
            self._s.kafka.dead_letter_topic, value, key=msg.key, headers=headers, then=then
        )

    async def _dead_letter_request(
        self, key: LaneKey, request: RelocationRequest, reason: str
    ) -> None:
        """A request Temporal refuses for good: kept on the dead-letter topic, not retried."""
        assert self._outbox is not None
        CONSUMED.labels("signal_rejected").inc()
        headers = [
            ("source_topic", b"temporal"),
            ("source_partition", str(key[0]).encode()),
            ("reason", reason[:500].encode()),
        ]
        self._outbox.send(
            self._s.kafka.dead_letter_topic,
            request.model_dump_json().encode(),
            key=key[1].encode(),
            headers=headers,
        )

    # -- rechecks, reloads, evacuations, expiry ------------------------------------------------

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
        while self._timers and self._timers[0][0] <= now:
            _, at_s, partition, ue = heapq.heappop(self._timers)
            if self._armed.get((partition, ue)) != at_s:
                continue  # superseded by a later arming
            del self._armed[(partition, ue)]
            records = self.records.get(partition)
            record = records.get(ue) if records is not None else None
            if record is None or record.recheck_at_s != at_s:
                continue  # partition moved away, or a newer event rescheduled it
            alias = pseudonym(ue)
            try:
                handled = handle_recheck(
                    at_s,
                    record,
                    self._instances.current.of(ue),
                    self.ledger.applied(self._policy.bundle),
                    ue_alias=alias,
                    app_port=self._s.act.app_port,
                    partition=partition,
                    warming=self.warming,
                )
            except UndecodableEvent as exc:
                log.warning("consumer.recheck_failed", ue=alias, error=str(exc))
                continue
            reserve(self.ledger, self._policy.bundle, record, handled)
            last_event = record.seen[-1] if record.seen else ""
            # A recheck has no record to inherit a trace from: it starts its own.
            with tracing.continue_trace("recheck", None):
                _annotate(last_event, alias, handled)
                await self._carry_out(partition, ue, handled, last_event, "recheck", alias, None)
            log.info(
                "consumer.recheck",
                ue=alias,
                decisions=[
                    f"{a.decision.action.value}:{a.decision.reason.value}" for a in handled.audited
                ],
                signalled=[r.request_id for r in handled.requests],
            )

    def _notice_reloads(self) -> None:
        """A new bundle or registry: recount capacity from a new load snapshot, and evacuate."""
        bundle, registry = self._policy.bundle, self._instances.current
        if bundle is not self._bundle_seen:
            old, self._bundle_seen = self._bundle_seen, bundle
            if old is not None:
                self._evacuate |= set(self.records)
            if new_load_snapshot(old, bundle):
                self.ledger.reset()
                for p in self.records:
                    recs = [*self.records[p].values(), *self._kept.get(p, {}).values()]
                    for cluster, app in reserved(recs):
                        self.ledger.reserve(bundle, cluster, app)
                # Like moves awaiting their outcome, warm instances hold their room until they end.
                if self.warming is not None:
                    for warm in self.warming.pool.instances():
                        self.ledger.reserve(bundle, warm.cluster, warm.app)
        if registry is not self._registry_seen:
            old_registry, self._registry_seen = self._registry_seen, registry
            self._by_partition = {}
            if self._partitions:
                for ue in registry.by_ue:
                    self._by_partition.setdefault(partition_of(ue, self._partitions), []).append(ue)
            if old_registry is not None:
                self._evacuate |= set(self.records)

    async def _run_evacuations(self) -> None:
        partitions, self._evacuate = self._evacuate, set()
        bundle = self._policy.bundle
        registry = self._instances.current
        now_s = time.time()
        for p in sorted(partitions):
            if p not in self.records:
                continue
            ues = [
                (ue, self._lookup(p, ue), registry.of(ue)) for ue in self._by_partition.get(p, [])
            ]
            moves = handle_evacuation(
                now_s,
                bundle,
                self.ledger,
                ues,
                alias=pseudonym,
                app_port=self._s.act.app_port,
                partition=p,
            )
            for ue, handled in moves:
                alias = pseudonym(ue)
                cause = f"evacuate-{bundle.version}"
                with tracing.continue_trace("evacuate", None):
                    _annotate(cause, alias, handled)
                    await self._carry_out(p, ue, handled, cause, "evacuate", alias, None)
                log.info(
                    "consumer.evacuate",
                    ue=alias,
                    decisions=[
                        f"{a.decision.action.value}:{a.decision.reason.value}"
                        for a in handled.audited
                    ],
                    signalled=[r.request_id for r in handled.requests],
                )

    async def _expire(self) -> None:
        """Forget UEs quiet for longer than ``act.ue_ttl_s`` (bounded work per call)."""
        assert self._lanes is not None
        horizon_s = time.time() - self._s.act.ue_ttl_s
        budget = _EXPIRE_BATCH
        for p, records in list(self.records.items()):
            while records and budget > 0:
                budget -= 1
                ue, record = next(iter(records.items()))
                if record.touched_s > horizon_s:
                    break
                if self._lanes.busy((p, ue)):
                    records.move_to_end(ue)  # still waiting on Temporal: not quiet
                    continue
                del records[ue]
                self._armed.pop((p, ue), None)
                remainder = quiet_remainder(record, self._instances.current.of(ue))
                if remainder is not None:
                    self._kept.setdefault(p, {})[ue] = remainder
                EXPIRED.inc()
                await self._lanes_submit((p, ue), (), remainder, _nothing)

    # -- commits and metrics ------------------------------------------------------------------

    def _collect(self) -> None:
        self._committable.update(self._marks.advance())

    def _commit(self) -> None:
        """Commit the watermarks in the background (one commit at a time)."""
        self._collect()
        if not self._committable or (self._committing is not None and not self._committing.done()):
            return
        self._committing = asyncio.create_task(self._commit_now())

    async def _commit_now(self) -> None:
        assert self._consumer is not None
        offsets = dict(self._committable)
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except (KafkaError, IllegalStateError) as exc:
            # Typically a rebalance while the broker was away: the partitions' next owner (this
            # member again, perhaps) replays from the last commit; duplicates are dropped.
            log.warning("consumer.commit_failed", error=type(exc).__name__)
            return
        for tp, offset in offsets.items():
            if self._committable.get(tp) == offset:
                del self._committable[tp]

    def _tracked(self) -> int:
        return sum(len(r) for r in self.records.values())

    def _update_gauges(self) -> None:
        assert self._consumer is not None
        assert self._lanes is not None
        SIGNALS_WAITING.set(self._lanes.signals_waiting)
        UES.set(self._tracked())
        for tp in self._consumer.assignment():
            highwater = self._consumer.highwater(tp)
            if highwater is None:
                continue
            position = self._consumer.last_stable_offset(tp) or highwater
            LAG.labels(str(tp.partition)).set(max(0, highwater - min(position, highwater)))


def _nothing() -> None:
    return None


def _why(exc: Exception) -> str:
    """The dead-letter reason: our own errors say what is wrong; anything else is a bug, logged
    with its traceback, and the record set aside rather than stop every partition."""
    if isinstance(exc, UndecodableEvent):
        return str(exc)
    log.exception("consumer.record_failed")
    return f"internal error: {type(exc).__name__}: {exc}"


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
