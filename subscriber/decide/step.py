"""What the consumer does with one UE: pure, deterministic, and replayable.

:func:`handle_event` takes the UE's record, its instances, the policy bundle and the event, and
returns the decisions to audit, the relocation requests to signal and the UE's next record.
:func:`handle_recheck` does the same for a deferred move whose time has come, and
:func:`handle_evacuation` for instances on a cluster a new topology puts into maintenance or
drain. :func:`apply_outcome` folds a workflow's :class:`~subscriber.relocation.OutcomeReport` back
into the record, :func:`reserve` and :func:`release` keep the capacity
:class:`~subscriber.decide.ledger.Ledger` in step with the moves, and :func:`quiet_remainder` says
what is left of a record once its UE went quiet. The Kafka and Temporal adapters
(:mod:`subscriber.act.consumer`) only carry these out.

The UE record is what the consumer keeps per UE in its compacted changelog: the policy state, where
it believes each instance runs, which of those beliefs await the workflow's outcome, and the
recent event ids that make redelivery a no-op.

Times: decisions are made at the event time, so a replay decides the same. An event time more than
``max_skew_s`` after the event's ingest time (a gNB or core with a wrong clock, or a forged
record) is not believed: the event is decided at its ingest time instead, and the audit record
says so (``event_time_clamped``). A stored state whose last report lies that far beyond the event's
ingest time (written before this rule, or by a wrong clock) is dropped, as if the UE were new,
rather than make every later report stale.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from subscriber.decide.bundle import Bundle
from subscriber.decide.instances import InstanceDoc
from subscriber.decide.ledger import Ledger
from subscriber.decide.policy import (
    Action,
    Decision,
    Running,
    Tracked,
    decide_all,
    evacuate,
    recheck,
)
from subscriber.decide.prewarm import QUIET, Prewarm, Prewarming, Verdict
from subscriber.decide.state import UeState, decode_state, encode_state
from subscriber.errors import UndecodableEvent
from subscriber.events import LocationEvent
from subscriber.relocation import (
    ContextPolicy,
    OutcomeReport,
    Placement,
    RelocationRequest,
    RequestKind,
    SteeringPolicy,
)

RECORD_FORMAT = 1
DEFAULT_MAX_SKEW_S = 60.0
"""How far an event time may lie after its ingest time and still be believed (the default of
``act.max_event_time_skew_s``)."""


@dataclass(frozen=True, slots=True)
class UeRecord:
    """The consumer's memory of one UE.

    Attributes:
        state: the policy's hysteresis state.
        placements: ``(instance key, cluster)`` where each instance is believed to run.
        unconfirmed: ``(instance key, requested at, request id)`` for moves the workflow has not yet
            confirmed, the time being the decision's (event) time.
        seen: the latest event ids, newest last (bounded).
        recheck_at_s: when a deferred move should be looked at again, though no event comes
            (a free5GC poller reports a UE only when it moves).
        touched_s: when the consumer last changed the record, by its wall clock (not in the
            changelog, whose record timestamps say the same); what expiry goes by, so a replay
            of old events is not forgotten at once.
    """

    state: UeState | None = None
    placements: tuple[tuple[str, str], ...] = ()
    unconfirmed: tuple[tuple[str, float, str], ...] = ()
    seen: tuple[str, ...] = ()
    recheck_at_s: float | None = None
    touched_s: float = field(default=0.0, compare=False)

    def placement_of(self, key: str) -> str | None:
        """The cluster ``key`` is believed to run on, None if never recorded."""
        for k, cluster in self.placements:
            if k == key:
                return cluster
        return None

    def after_event(
        self, state: UeState | None, seen: tuple[str, ...], recheck_at_s: float | None
    ) -> UeRecord:
        """A copy with a new state, seen ids and recheck time: what each event changes.

        Made field by field: ``dataclasses.replace`` here and in :meth:`touched` was 4 % of the
        consumer's CPU (docs/performance.md).
        """
        return UeRecord(
            state, self.placements, self.unconfirmed, seen, recheck_at_s, self.touched_s
        )

    def touched(self, at_s: float) -> UeRecord:
        """A copy last changed at ``at_s``."""
        return UeRecord(
            self.state, self.placements, self.unconfirmed, self.seen, self.recheck_at_s, at_s
        )

    def with_placement(
        self, key: str, cluster: str, *, confirmed: bool, at_s: float = 0.0, request_id: str = ""
    ) -> UeRecord:
        """A copy with ``key`` on ``cluster``; unless ``confirmed``, unconfirmed since ``at_s``."""
        placements = (*(p for p in self.placements if p[0] != key), (key, cluster))
        unconfirmed = tuple(u for u in self.unconfirmed if u[0] != key)
        if not confirmed:
            unconfirmed += ((key, at_s, request_id),)
        return replace(self, placements=tuple(sorted(placements)), unconfirmed=unconfirmed)


def instance_key(inst: InstanceDoc) -> str:
    """The key of an instance inside a record."""
    return f"{inst.app}/{inst.instance}"


@dataclass(frozen=True, slots=True)
class Audited:
    """One decision with what the audit topic needs to explain it."""

    instance: InstanceDoc
    decision: Decision
    request: RelocationRequest | None

    def to_record(
        self, event_id: str, trigger: str, ue_alias: str, *, clamped: bool = False
    ) -> tuple[bytes, bytes]:
        """Key (the application) and value of the audit record.

        Args:
            event_id: the event decided on (for a recheck: the UE's latest event; for an
                evacuation: the evacuation's cause).
            trigger: "event", "recheck" for a deferred move looked at again, or "evacuate".
            ue_alias: the UE's pseudonym.
            clamped: the event time was not believed; the decision used the ingest time.
        """
        value: dict[str, Any] = {
            "schema": "decision.v1",
            "event_id": event_id,
            "trigger": trigger,
            "ue": ue_alias,
            "app": self.instance.app,
            "instance": self.instance.instance,
            **self.decision.to_dict(),
        }
        if self.request is not None:
            value["request_id"] = self.request.request_id
        if clamped:
            value["event_time_clamped"] = True
        return self.instance.app.encode(), orjson.dumps(value)


@dataclass(frozen=True, slots=True)
class Handled:
    """The outcome of one event (or recheck, or evacuation).

    Attributes:
        duplicate: the event was seen before; nothing else changed.
        audited: one decision per instance, with its request when it moves.
        record: the UE's next record.
        clamped: the event time was not believed and the ingest time was used.
        prewarms: pre-warming's records for the audit topic (warm instances started, used,
            dropped); empty without pre-warming.
    """

    duplicate: bool
    audited: tuple[Audited, ...]
    record: UeRecord
    clamped: bool = False
    prewarms: tuple[Prewarm, ...] = ()

    @property
    def requests(self) -> list[RelocationRequest]:
        """The relocation requests to signal, in order."""
        return [a.request for a in self.audited if a.request is not None]


def _where(bundle: Bundle, cluster: str, port: int) -> Placement | None:
    found = bundle.topology.clusters.get(cluster)
    if found is None:
        return None
    # No address: a Kubernetes cluster (the topology requires one of the two), whose API tells
    # the address at deploy; the move goes ahead all the same.
    return _placement(cluster, found.address, port)


@functools.lru_cache(maxsize=4096)
def _placement(cluster: str, address: str | None, port: int) -> Placement:
    # Validating a Placement costs more than the decision itself: share the frozen instances.
    return Placement(cluster=cluster, address=address, port=port)


def decision_time(event: LocationEvent, max_skew_s: float) -> tuple[float, bool]:
    """The time to decide ``event`` at: its event time, or its ingest time when the event time
    lies more than ``max_skew_s`` after it; and whether it was clamped so."""
    event_s = event.event_time.timestamp()
    ingest_s = event.ingest_time.timestamp()
    if event_s > ingest_s + max_skew_s:
        return ingest_s, True
    return event_s, False


def handle_event(
    event: LocationEvent,
    record: UeRecord | None,
    instances: Sequence[InstanceDoc],
    bundle: Bundle,
    *,
    ue_alias: str,
    app_port: int,
    dedup_window: int,
    max_skew_s: float = DEFAULT_MAX_SKEW_S,
    partition: int | None = None,
    warming: Prewarming | None = None,
) -> Handled:
    """Decide for every instance of the event's UE.

    Args:
        event: the normalized event.
        record: the UE's record, None for a UE never seen.
        instances: the instances serving this UE.
        bundle: topology and policy.
        ue_alias: a pseudonym of the UE, the only UE name that leaves this function.
        app_port: the port clients reach an instance at.
        dedup_window: how many recent event ids to remember.
        max_skew_s: how far the event time may lie after the ingest time (see the module).
        partition: the UE's partition, carried by its requests to route their outcomes.
        warming: pre-warming's running state, when the policy has it on.

    Raises:
        UndecodableEvent: the event cannot be turned into a relocation request (an id too long
            for one, for instance); nothing changed.
    """
    record = record or UeRecord()
    if event.event_id in record.seen:
        return Handled(duplicate=True, audited=(), record=record)
    at_s, clamped = decision_time(event, max_skew_s)
    state = record.state
    if state is not None and state.last_seen_s > event.ingest_time.timestamp() + max_skew_s:
        # Poisoned by a report from the future: believing it would make every report stale.
        state = None
        record = replace(record, state=None, recheck_at_s=None)
    stale = state is not None and at_s < state.last_seen_s
    placements = [
        Running(inst.app, record.placement_of(instance_key(inst)) or inst.cluster)
        for inst in instances
    ]
    before = state
    adjust = None
    if warming is not None:
        bundle = warming.bundle_for(bundle, ue_alias, (i.app for i in instances))
        adjust = _relaxer(warming, bundle, ue_alias)
    decisions, state = decide_all(at_s, bundle, placements, before, event, adjust)
    audited, record = _requests(
        list(zip(instances, decisions, strict=True)),
        record,
        bundle,
        event.event_id,
        ue_alias=ue_alias,
        app_port=app_port,
        partition=partition,
    )
    seen = (*record.seen, event.event_id)[-dedup_window:]
    # A late report changes nothing the policy knows: a move it deferred stays due.
    recheck_at_s = record.recheck_at_s if stale else _recheck_at(audited)
    if audited and all(a.decision.zone is None for a in audited):
        # An unmapped report says nothing about where the UE is: a move deferred before it
        # stays deferred, to be looked at when it was due (docs/policy.md).
        recheck_at_s = record.recheck_at_s
    return Handled(
        duplicate=False,
        audited=audited,
        record=record.after_event(state, seen, recheck_at_s),
        clamped=clamped,
        # The pool's clock never runs ahead of ours: see subscriber.decide.prewarm.
        prewarms=_warm(
            warming,
            bundle,
            ue_alias,
            before,
            state,
            decisions,
            at_s,
            min(at_s, event.ingest_time.timestamp()),
        ),
    )


def _relaxer(warming: Prewarming, bundle: Bundle, ue: str) -> Callable[[Decision], Decision]:
    return lambda decision: warming.relax(decision, bundle, ue)


def _warm(
    warming: Prewarming | None,
    bundle: Bundle,
    ue: str,
    before: UeState | None,
    after: UeState | None,
    decisions: Sequence[Decision],
    at_s: float,
    clock_s: float,
) -> tuple[Prewarm, ...]:
    if warming is None:
        return ()
    if after is not None:
        warming.observed(before, after, at_s)
    out = []
    for decision in decisions:
        ended = warming.moved(decision, ue, clock_s)
        if ended is not None:
            out.append(ended)
        ahead = warming.ahead(decision, bundle, ue, clock_s)
        out += [r for r in ahead if r.verdict not in QUIET]
    return tuple(out)


def handle_recheck(
    at_s: float,
    record: UeRecord,
    instances: Sequence[InstanceDoc],
    bundle: Bundle,
    *,
    ue_alias: str,
    app_port: int,
    partition: int | None = None,
    warming: Prewarming | None = None,
) -> Handled:
    """Look again at deferred moves at ``at_s`` (the record's ``recheck_at_s``), with no new event.

    The decision time is the scheduled time, not the wall clock, so a recheck decides the same
    on every replay; its request ids derive from the UE's latest event and the time.

    Raises:
        UndecodableEvent: a request cannot be built; nothing changed.
    """
    state = record.state
    if state is None or not record.seen:
        return Handled(duplicate=False, audited=(), record=replace(record, recheck_at_s=None))
    decisions = []
    if warming is not None:
        bundle = warming.bundle_for(bundle, ue_alias, (i.app for i in instances))
    for inst in instances:
        placement = Running(inst.app, record.placement_of(instance_key(inst)) or inst.cluster)
        decision = recheck(at_s, bundle, placement, state)
        if warming is not None:
            decision = warming.relax(decision, bundle, ue_alias)
        decisions.append(decision)
        state = decision.state
    cause = f"{record.seen[-1]}.recheck-{int(at_s * 1000)}"
    audited, record = _requests(
        list(zip(instances, decisions, strict=True)),
        record,
        bundle,
        cause,
        ue_alias=ue_alias,
        app_port=app_port,
        partition=partition,
    )
    return Handled(
        duplicate=False,
        audited=audited,
        record=replace(record, state=state, recheck_at_s=_recheck_at(audited)),
        prewarms=_warm(warming, bundle, ue_alias, state, state, decisions, at_s, at_s),
    )


def _recheck_at(audited: Sequence[Audited]) -> float | None:
    times = [
        a.decision.recheck_at_s
        for a in audited
        if a.decision.action is Action.DEFER and a.decision.recheck_at_s is not None
    ]
    return min(times) if times else None


def _requests(
    pairs: Sequence[tuple[InstanceDoc, Decision]],
    record: UeRecord,
    bundle: Bundle,
    cause: str,
    *,
    ue_alias: str,
    app_port: int,
    partition: int | None,
) -> tuple[tuple[Audited, ...], UeRecord]:
    audited = []
    for inst, decision in pairs:
        request = None
        source = _where(bundle, decision.source, app_port)
        target = _where(bundle, decision.target, app_port) if decision.target else None
        if decision.action is Action.RELOCATE and target is not None:
            try:
                request = RelocationRequest(
                    request_id=f"{cause}.{inst.app}.{inst.instance}",
                    app=inst.app,
                    instance=inst.instance,
                    ue_key=ue_alias,
                    source=source,
                    target=target,
                    event_id=cause,
                    decided_at=datetime.fromtimestamp(decision.decided_at_s, UTC),
                    policy_version=decision.version,
                    reasons=(decision.reason.value,),
                    partition=partition,
                    context_policy=_context_policy(bundle, inst.app),
                    steering=_steering(bundle, inst.app, decision.source, decision.target),
                )
            except ValidationError as exc:
                raise UndecodableEvent(
                    f"cannot build the relocation request of {inst.app}/{inst.instance}: "
                    f"{exc.error_count()} errors: "
                    + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                ) from exc
            record = record.with_placement(
                instance_key(inst),
                target.cluster,
                confirmed=False,
                at_s=decision.decided_at_s,
                request_id=request.request_id,
            )
        audited.append(Audited(inst, decision, request))
    return tuple(audited), record


_WARM_KINDS = {Verdict.PREWARM: RequestKind.PREWARM, Verdict.EXPIRED: RequestKind.COOL}


def warm_requests(
    prewarms: Sequence[Prewarm],
    instances: Sequence[InstanceDoc],
    bundle: Bundle,
    cause: str,
    *,
    app_port: int,
    partition: int | None,
) -> list[RelocationRequest]:
    """The workflow requests of pre-warming's records: a ``PREWARM`` deploys its target without
    steering, an ``EXPIRED`` cools it. A ``USED`` needs none (the move uses the warm instance),
    nor a ``MISSED`` (the move elsewhere, or the warm instance replacing it, removes it).

    Raises:
        UndecodableEvent: a request cannot be built; nothing changed.
    """
    out = []
    for rec in prewarms:
        kind = _WARM_KINDS.get(rec.verdict)
        target = _where(bundle, rec.target, app_port) if rec.target is not None else None
        if kind is None or target is None:
            continue
        for inst in instances:
            if inst.app != rec.app:
                continue
            try:
                out.append(
                    RelocationRequest(
                        request_id=f"{cause}.{inst.app}.{inst.instance}.{kind.value}",
                        app=inst.app,
                        instance=inst.instance,
                        ue_key=rec.ue,
                        source=_where(bundle, rec.source, app_port),
                        target=target,
                        event_id=cause,
                        decided_at=datetime.fromtimestamp(rec.at_s, UTC),
                        reasons=(rec.verdict.value,),
                        partition=partition,
                        kind=kind,
                    )
                )
            except ValidationError as exc:
                raise UndecodableEvent(
                    f"cannot build the {kind.value} request of {inst.app}/{inst.instance}: "
                    f"{exc.error_count()} errors"
                ) from exc
    return out


def handle_evacuation(
    now_s: float,
    bundle: Bundle,
    ledger: Ledger,
    ues: Iterable[tuple[str, UeRecord | None, Sequence[InstanceDoc]]],
    *,
    alias: Callable[[str], str],
    app_port: int,
    partition: int | None = None,
) -> list[tuple[str, Handled]]:
    """Move instances off clusters that are gone, in maintenance or draining, whatever their UEs do.

    Call it with a new bundle and every UE (with its record and instances) whose instances might
    run on such a cluster. Each move is counted in ``ledger`` before the next is placed, so a
    drain cannot overfill its targets, and the moves count for the decisions that follow (so
    do not :func:`reserve` them again); an
    instance with nowhere to go stays (``NO_CANDIDATE``). No hysteresis: the cluster is going.
    Request ids derive from the bundle's version, so evacuating again with the same bundle (after
    a restart) asks for the same moves, which the workflows drop as already seen.

    Args:
        now_s: the decision time (the wall clock: an evacuation has no event).
        bundle: the new topology and policy, without the ledger applied (it is counted here).
        ledger: the running capacity ledger.
        ues: ``(ue key, record, instances)``.
        alias: the UE's pseudonym.
        app_port: the port clients reach an instance at.
        partition: the UEs' partition, for their requests' outcomes.

    Returns:
        ``(ue key, handled)`` for every UE with an instance to evacuate.
    """
    out = []
    cause = f"evacuate-{bundle.version}"
    for ue, record, instances in ues:
        record = record or UeRecord()
        state = record.state
        pairs = []
        for inst in instances:
            running = Running(inst.app, record.placement_of(instance_key(inst)) or inst.cluster)
            for _, decision in evacuate(now_s, bundle, [Tracked(ue, running, state)], ledger):
                key = instance_key(inst)
                if decision.action is Action.RELOCATE and any(
                    u[0] == key for u in record.unconfirmed
                ):
                    ledger.release(bundle, running.cluster, inst.app)  # a move it replaces
                pairs.append((inst, decision))
                state = decision.state
        if not pairs:
            continue
        audited, new = _requests(
            pairs, record, bundle, cause, ue_alias=alias(ue), app_port=app_port,
            partition=partition,
        )  # fmt: skip
        out.append((ue, Handled(False, audited, replace(new, state=state))))
    return out


def reserve(ledger: Ledger, bundle: Bundle, before: UeRecord | None, handled: Handled) -> None:
    """Count the capacity each new move takes on its target, at once; a move it replaces that
    was still unconfirmed gives its own target back."""
    for request in handled.requests:
        key = f"{request.app}/{request.instance}"
        if before is not None and any(u[0] == key for u in before.unconfirmed):
            earlier = before.placement_of(key)
            if earlier is not None:
                ledger.release(bundle, earlier, request.app)
        ledger.reserve(bundle, request.target.cluster, request.app)


def new_load_snapshot(old: Bundle | None, new: Bundle) -> bool:
    """Whether ``new`` brings other load figures than ``old``: a fresh snapshot that already
    counts the moves made so far, so the ledger starts again from the moves still in flight."""
    if old is None:
        return True

    def load(bundle: Bundle) -> dict[str, tuple[float, int, int]]:
        clusters = bundle.topology.clusters
        return {c: (v.cpu_used, v.memory_used_mib, v.apps_used) for c, v in clusters.items()}

    return load(old) != load(new)


def reserved(records: Iterable[UeRecord]) -> Iterable[tuple[str, str]]:
    """``(cluster, app)`` of every move still awaiting its outcome: what a fresh ledger must
    count again (after a restart, or a new load snapshot)."""
    for record in records:
        for key, _, _ in record.unconfirmed:
            cluster = record.placement_of(key)
            if cluster is not None:
                yield cluster, key.partition("/")[0]


@dataclass(frozen=True, slots=True)
class Applied:
    """What an outcome changed: the UE's next record and the capacity to give back.

    Attributes:
        record: the record with the workflow's placement adopted.
        release: ``(cluster, app)`` to give back to the ledger: the source a completed move
            left, or the target of a move that did not happen.
    """

    record: UeRecord
    release: tuple[tuple[str, str], ...]


def apply_outcome(record: UeRecord, report: OutcomeReport) -> Applied | None:
    """Adopt the workflow's word on where an instance runs, once the move we asked for is done.

    The report counts when it is settled (nothing pending or in flight after it) and is the
    outcome of the move the record awaits, or of a later one. Anything else (a report already
    applied, an older request's, one with more to come) changes nothing: None.
    """
    key = f"{report.app}/{report.instance}"
    awaited = next((u for u in record.unconfirmed if u[0] == key), None)
    if awaited is None or not report.settled:
        return None
    _, at_s, request_id = awaited
    if report.outcome.request_id != request_id and report.decided_at.timestamp() < at_s:
        return None
    believed = record.placement_of(key)
    app = report.app
    release: tuple[tuple[str, str], ...] = ()
    if believed is not None and report.placement == believed:
        source = report.outcome.source_cluster
        if source is not None:
            # Moved: the source is gone. Already there (no-op): our reservation counted it twice.
            release = ((source, app),)
    elif believed is not None:
        release = ((believed, app),)  # the move did not happen: its target is free again
    return Applied(confirm(record, key, report.placement), release)


def release(ledger: Ledger, bundle: Bundle, applied: Applied) -> None:
    """Give back the capacity an applied outcome frees."""
    for cluster, app in applied.release:
        ledger.release(bundle, cluster, app)


def quiet_remainder(record: UeRecord, instances: Sequence[InstanceDoc]) -> UeRecord | None:
    """What is left of a record once its UE went quiet for longer than the TTL.

    The policy's memory and the seen event ids go. What cannot be found again goes only with
    them: where an instance runs when that is not where the registry starts it, and moves still
    awaiting their outcome. None: nothing is left (write a tombstone).
    """
    starts = {instance_key(i): i.cluster for i in instances}
    waiting = {u[0] for u in record.unconfirmed}
    placements = tuple(p for p in record.placements if p[0] in waiting or starts.get(p[0]) != p[1])
    if not placements and not record.unconfirmed:
        return None
    return UeRecord(placements=placements, unconfirmed=record.unconfirmed)


def _context_policy(bundle: Bundle, app: str) -> ContextPolicy | None:
    spec = bundle.topology.apps.get(app)
    return spec.context if spec is not None else None


def _steering(
    bundle: Bundle, app: str, source: str | None, target: str | None
) -> SteeringPolicy | None:
    spec = bundle.topology.apps.get(app)
    if spec is None or spec.steering is None:
        return None
    if not spec.steering.via.uses_traffic_influence:
        return spec.steering
    return spec.steering.model_copy(
        update={
            "source_dnai": _first_dnai(bundle, source),
            "target_dnai": _first_dnai(bundle, target),
        }
    )


def _first_dnai(bundle: Bundle, cluster: str | None) -> str | None:
    found = bundle.topology.clusters.get(cluster) if cluster else None
    return found.dnais[0] if found is not None and found.dnais else None


def confirm(record: UeRecord, key: str, actual_cluster: str | None) -> UeRecord:
    """Adopt the workflow's word on where an instance runs, once it has no move in hand."""
    if actual_cluster is None:
        return replace(record, unconfirmed=tuple(u for u in record.unconfirmed if u[0] != key))
    return record.with_placement(key, actual_cluster, confirmed=True)


def encode_record(record: UeRecord) -> bytes:
    """The changelog value of a UE record."""
    return orjson.dumps(
        {
            "v": RECORD_FORMAT,
            "s": orjson.Fragment(encode_state(record.state)) if record.state else None,
            "p": [list(p) for p in record.placements],
            "u": [list(u) for u in record.unconfirmed],
            "e": list(record.seen),
            "r": record.recheck_at_s,
        }
    )


def decode_record(data: bytes) -> UeRecord:
    """Parse a changelog value.

    Raises:
        UndecodableEvent: not a UE record of a known format.
    """
    try:
        doc = orjson.loads(data)
        if doc.get("v") != RECORD_FORMAT:
            raise ValueError(f"format {doc.get('v')!r}")
        state = decode_state(orjson.dumps(doc["s"])) if doc.get("s") is not None else None
        return UeRecord(
            state=state,
            placements=tuple((str(k), str(c)) for k, c in doc.get("p", [])),
            unconfirmed=tuple(
                (str(u[0]), float(u[1]), str(u[2]) if len(u) > 2 else "") for u in doc.get("u", [])
            ),
            seen=tuple(str(e) for e in doc.get("e", [])),
            recheck_at_s=float(doc["r"]) if doc.get("r") is not None else None,
        )
    except (orjson.JSONDecodeError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise UndecodableEvent(f"not a UE record v{RECORD_FORMAT}: {exc}") from exc
