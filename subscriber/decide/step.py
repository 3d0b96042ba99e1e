"""What the consumer does with one event: pure, deterministic, and replayable.

:func:`handle_event` takes the UE's record, its instances, the policy bundle and the event, and
returns the decisions to audit, the relocation requests to signal and the UE's next record. The
Kafka and Temporal adapters (:mod:`subscriber.act.consumer`) only carry these out.

The UE record is what the consumer keeps per UE in its compacted changelog: the policy state, where
it believes each instance runs, which of those beliefs await confirmation by the workflow, and the
recent event ids that make redelivery a no-op.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from subscriber.decide.bundle import Bundle
from subscriber.decide.instances import InstanceDoc
from subscriber.decide.policy import Action, Decision, Running, decide_all, recheck
from subscriber.decide.prewarm import QUIET, Prewarm, Prewarming
from subscriber.decide.state import UeState, decode_state, encode_state
from subscriber.errors import UndecodableEvent
from subscriber.events import LocationEvent
from subscriber.relocation import ContextPolicy, Placement, RelocationRequest

RECORD_FORMAT = 1


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
    """

    state: UeState | None = None
    placements: tuple[tuple[str, str], ...] = ()
    unconfirmed: tuple[tuple[str, float, str], ...] = ()
    seen: tuple[str, ...] = ()
    recheck_at_s: float | None = None

    def placement_of(self, key: str) -> str | None:
        """The cluster ``key`` is believed to run on, None if never recorded."""
        for k, cluster in self.placements:
            if k == key:
                return cluster
        return None

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

    def to_record(self, event_id: str, trigger: str, ue_alias: str) -> tuple[bytes, bytes]:
        """Key (the application) and value of the audit record.

        Args:
            event_id: the event decided on (for a recheck: the UE's latest event).
            trigger: "event", or "recheck" for a deferred move looked at again.
            ue_alias: the UE's pseudonym.
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
        return self.instance.app.encode(), orjson.dumps(value)


@dataclass(frozen=True, slots=True)
class Handled:
    """The outcome of one event.

    ``prewarms`` are pre-warming's records for the audit topic (warm instances started, used,
    dropped), empty without pre-warming.
    """

    duplicate: bool
    audited: tuple[Audited, ...]
    record: UeRecord
    prewarms: tuple[Prewarm, ...] = ()

    @property
    def requests(self) -> list[RelocationRequest]:
        """The relocation requests to signal, in order."""
        return [a.request for a in self.audited if a.request is not None]


def _where(bundle: Bundle, cluster: str, port: int) -> Placement | None:
    found = bundle.topology.clusters.get(cluster)
    if found is None or found.address is None:
        return None
    return _placement(cluster, found.address, port)


@functools.lru_cache(maxsize=4096)
def _placement(cluster: str, address: str, port: int) -> Placement:
    # Validating a Placement costs more than the decision itself: share the frozen instances.
    return Placement(cluster=cluster, address=address, port=port)


def handle_event(
    event: LocationEvent,
    record: UeRecord | None,
    instances: Sequence[InstanceDoc],
    bundle: Bundle,
    *,
    ue_alias: str,
    app_port: int,
    dedup_window: int,
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
        warming: pre-warming's running state, when the policy has it on.
    """
    record = record or UeRecord()
    if event.event_id in record.seen:
        return Handled(duplicate=True, audited=(), record=record)
    placements = [
        Running(inst.app, record.placement_of(instance_key(inst)) or inst.cluster)
        for inst in instances
    ]
    at_s, before = event.event_time.timestamp(), record.state
    adjust = None if warming is None else _relaxer(warming, bundle, ue_alias)
    decisions, state = decide_all(at_s, bundle, placements, before, event, adjust)
    audited, record = _requests(
        instances, decisions, record, bundle, event.event_id, ue_alias=ue_alias, app_port=app_port
    )
    seen = (*record.seen, event.event_id)[-dedup_window:]
    return Handled(
        duplicate=False,
        audited=audited,
        record=replace(record, state=state, seen=seen, recheck_at_s=_recheck_at(audited)),
        prewarms=_warm(warming, bundle, ue_alias, before, state, decisions, at_s),
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
) -> tuple[Prewarm, ...]:
    if warming is None:
        return ()
    if after is not None:
        warming.observed(before, after, at_s)
    out = []
    for decision in decisions:
        ended = warming.moved(decision, ue)
        if ended is not None:
            out.append(ended)
        out += [r for r in warming.ahead(decision, bundle, ue) if r.verdict not in QUIET]
    return tuple(out)


def handle_recheck(
    at_s: float,
    record: UeRecord,
    instances: Sequence[InstanceDoc],
    bundle: Bundle,
    *,
    ue_alias: str,
    app_port: int,
    warming: Prewarming | None = None,
) -> Handled:
    """Look again at deferred moves at ``at_s`` (the record's ``recheck_at_s``), with no new event.

    The decision time is the scheduled time, not the wall clock, so a recheck decides the same
    on every replay; its request ids derive from the UE's latest event and the time.
    """
    state = record.state
    if state is None or not record.seen:
        return Handled(duplicate=False, audited=(), record=replace(record, recheck_at_s=None))
    decisions = []
    for inst in instances:
        placement = Running(inst.app, record.placement_of(instance_key(inst)) or inst.cluster)
        decision = recheck(at_s, bundle, placement, state)
        if warming is not None:
            decision = warming.relax(decision, bundle, ue_alias)
        decisions.append(decision)
        state = decision.state
    cause = f"{record.seen[-1]}.recheck-{int(at_s * 1000)}"
    audited, record = _requests(
        instances, decisions, record, bundle, cause, ue_alias=ue_alias, app_port=app_port
    )
    return Handled(
        duplicate=False,
        audited=audited,
        record=replace(record, state=state, recheck_at_s=_recheck_at(audited)),
        prewarms=_warm(warming, bundle, ue_alias, state, state, decisions, at_s),
    )


def _recheck_at(audited: Sequence[Audited]) -> float | None:
    times = [
        a.decision.recheck_at_s
        for a in audited
        if a.decision.action is Action.DEFER and a.decision.recheck_at_s is not None
    ]
    return min(times) if times else None


def _requests(
    instances: Sequence[InstanceDoc],
    decisions: Sequence[Decision],
    record: UeRecord,
    bundle: Bundle,
    cause: str,
    *,
    ue_alias: str,
    app_port: int,
) -> tuple[tuple[Audited, ...], UeRecord]:
    audited = []
    for inst, decision in zip(instances, decisions, strict=True):
        request = None
        source = _where(bundle, decision.source, app_port)
        target = _where(bundle, decision.target, app_port) if decision.target else None
        if decision.action is Action.RELOCATE and target is not None:
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
                context_policy=_context_policy(bundle, inst.app),
            )
            record = record.with_placement(
                instance_key(inst),
                target.cluster,
                confirmed=False,
                at_s=decision.decided_at_s,
                request_id=request.request_id,
            )
        audited.append(Audited(inst, decision, request))
    return tuple(audited), record


def _context_policy(bundle: Bundle, app: str) -> ContextPolicy | None:
    spec = bundle.topology.apps.get(app)
    return spec.context if spec is not None else None


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
