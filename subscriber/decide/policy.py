"""The decision function: stay, relocate or defer, with a reason code and the evidence.

Pure and deterministic: time, the bundle (topology + policy), where the app runs and the UE's state
are passed in; nothing is read from the clock or the outside. The same inputs give the same
:class:`Decision`, including the next UE state it carries.

Order of the rules (docs/policy.md explains each):

1. unknown app or unmapped location: stay (``UNKNOWN_APP``, ``UNKNOWN_CELL``);
2. the current cluster is gone, in maintenance or draining: evacuate to the best candidate at once,
   without hysteresis (``CLUSTER_UNKNOWN``, ``CLUSTER_MAINTENANCE``, ``CLUSTER_DRAINING``);
3. stay-if-OK: the current cluster is active, allowed and within budget (``CURRENT_OK``); with
   the rule off, stay when it still ranks first (``CURRENT_BEST``) or the gain is too small
   (``IMPROVEMENT_TOO_SMALL``);
4. no candidate: stay (``NO_CANDIDATE``), never an error;
5. hysteresis: dwell (``DWELL_NOT_REACHED``), cooldown (``COOLDOWN``), ping-pong
   (``PING_PONG_SUPPRESSED``) defer the move and say when to look again;
6. otherwise relocate to the best candidate (``RELOCATE_BEST_CANDIDATE``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from subscriber.decide.bundle import Bundle
from subscriber.decide.ledger import Ledger
from subscriber.decide.rules import Gates
from subscriber.decide.scoring import Candidate, Evaluation, evaluate
from subscriber.decide.state import AppTrack, UeState, observe, record
from subscriber.decide.topology import ClusterState
from subscriber.events import LocationEvent


class Action(StrEnum):
    """What to do with the app."""

    STAY = "stay"
    RELOCATE = "relocate"
    DEFER = "defer"


class Reason(StrEnum):
    """Why: one machine-readable code per decision."""

    CURRENT_OK = "CURRENT_OK"
    CURRENT_BEST = "CURRENT_BEST"
    IMPROVEMENT_TOO_SMALL = "IMPROVEMENT_TOO_SMALL"
    RELOCATE_BEST_CANDIDATE = "RELOCATE_BEST_CANDIDATE"
    RELOCATE_PREWARMED = "RELOCATE_PREWARMED"
    CLUSTER_MAINTENANCE = "CLUSTER_MAINTENANCE"
    CLUSTER_DRAINING = "CLUSTER_DRAINING"
    CLUSTER_UNKNOWN = "CLUSTER_UNKNOWN"
    DWELL_NOT_REACHED = "DWELL_NOT_REACHED"
    COOLDOWN = "COOLDOWN"
    PING_PONG_SUPPRESSED = "PING_PONG_SUPPRESSED"
    NO_CANDIDATE = "NO_CANDIDATE"
    UNKNOWN_CELL = "UNKNOWN_CELL"
    UNKNOWN_APP = "UNKNOWN_APP"
    STALE_EVENT = "STALE_EVENT"


@dataclass(frozen=True, slots=True)
class Running:
    """One application serving a UE, and the cluster it runs on now.

    Only the cluster matters to the policy; where clients reach the instance on that cluster is
    the relocation contract's :class:`subscriber.relocation.Placement`.
    """

    app: str
    cluster: str


class Decision(NamedTuple):
    """The outcome for one app of one UE, with everything needed to explain or replay it.

    Attributes:
        action: stay, relocate or defer.
        reason: why.
        app: the application.
        source: the cluster it runs on now.
        target: where to move (relocate), or where it would move (defer); else None.
        zone: the zone the UE is in, None when unmapped.
        current: the current cluster's evaluation (None when unknown or not evaluated).
        candidates: every cluster ranked: accepted by score, then rejected, each with why.
        version: content hash of the topology and policy used.
        decided_at_s: the time passed in.
        recheck_at_s: for a deferral, when the blocking gate lifts (None if it lifts on events).
        state: the UE state after this decision; store it.
    """

    action: Action
    reason: Reason
    app: str
    source: str
    target: str | None
    zone: str | None
    current: Candidate | None
    candidates: tuple[Candidate, ...]
    version: str
    decided_at_s: float
    recheck_at_s: float | None
    state: UeState

    def to_dict(self, max_candidates: int = 8) -> dict[str, Any]:
        """JSON-ready form for the decisions topic and for explaining; the state is left out.

        Args:
            max_candidates: keep the first this many of the ranking (accepted ones first, then
                the nearest rejected); ``candidates_total`` says how many there were.
        """
        return {
            "action": self.action.value,
            "reason": self.reason.value,
            "app": self.app,
            "source": self.source,
            "target": self.target,
            "zone": self.zone,
            "current": self.current.to_dict() if self.current is not None else None,
            "candidates": _candidates_json(self.candidates, max_candidates),
            "candidates_total": len(self.candidates),
            "version": self.version,
            "decided_at_s": self.decided_at_s,
            "recheck_at_s": self.recheck_at_s,
        }


_CANDIDATES_JSON: dict[tuple[int, int], tuple[tuple[Candidate, ...], list[dict[str, object]]]] = {}
_CANDIDATES_JSON_SIZE = 4096


def _candidates_json(
    candidates: tuple[Candidate, ...], max_candidates: int
) -> list[dict[str, object]]:
    """The JSON form of a ranking, made once per ranking.

    Rankings come from the bundle's memo, shared by every decision for the same zone, app and
    cluster; formatting each decision's again was about 3 % of the consumer's CPU
    (docs/performance.md). Keyed by identity (the entry holds the ranking, so its id is not
    reused while cached); callers must not change the list.
    """
    key = (id(candidates), max_candidates)
    hit = _CANDIDATES_JSON.get(key)
    if hit is not None and hit[0] is candidates:
        return hit[1]
    if len(_CANDIDATES_JSON) >= _CANDIDATES_JSON_SIZE:
        _CANDIDATES_JSON.clear()
    out = [c.to_dict() for c in candidates[:max_candidates]]
    _CANDIDATES_JSON[key] = (candidates, out)
    return out


_new = tuple.__new__
_STAY = Action.STAY
_RELOCATE = Action.RELOCATE
_DEFER = Action.DEFER


class _Plan(NamedTuple):
    """The part of a decision that depends only on the bundle, zone, app and current cluster."""

    action: Action | None  # None: a move, subject to the hysteresis gates
    reason: Reason
    current: Candidate | None
    candidates: tuple[Candidate, ...]
    target: str | None
    gates: Gates | None


def _done(
    action: Action,
    reason: Reason,
    now_s: float,
    bundle: Bundle,
    placement: Running,
    state: UeState,
    zone: str | None,
    plan: _Plan,
    target: str | None,
    recheck_at_s: float | None = None,
) -> Decision:
    app = placement.app
    for track in state.apps:
        if track.app == app:
            # A repeated outcome leaves the state as it is: fewer allocations and changelog writes.
            if action is _RELOCATE or track.last_action != action or track.last_reason != reason:
                state = record(state, app, action, reason, now_s, source=placement.cluster)
            break
    else:
        state = record(state, app, action, reason, now_s, source=placement.cluster)
    # tuple.__new__ skips the named tuple's generated __new__: this runs once per decision.
    return _new(
        Decision,
        (
            action,
            reason,
            app,
            placement.cluster,
            target,
            zone,
            plan.current,
            plan.candidates,
            bundle.version,
            now_s,
            recheck_at_s,
            state,
        ),
    )


def _evacuation(bundle: Bundle, cluster: str) -> Reason | None:
    found = bundle.topology.clusters.get(cluster)
    if found is None:
        return Reason.CLUSTER_UNKNOWN
    rules = bundle.rules
    if found.state is ClusterState.MAINTENANCE and rules.evacuate_maintenance:
        return Reason.CLUSTER_MAINTENANCE
    if found.state is ClusterState.DRAINING and rules.evacuate_draining:
        return Reason.CLUSTER_DRAINING
    return None


def _stay(bundle: Bundle, evaluation: Evaluation) -> Reason | None:
    current = evaluation.current
    if current is None or current.rejected is not None:
        return None
    rules = bundle.rules
    if rules.stay_if_ok:
        return Reason.CURRENT_OK
    best = evaluation.best
    if best is None or best.current:
        return Reason.CURRENT_BEST
    gain = rules.min_score_gain
    if (
        gain is not None
        and current.score is not None
        and best.score is not None
        and current.score - best.score < gain
    ):
        return Reason.IMPROVEMENT_TOO_SMALL
    return None


def _plan(bundle: Bundle, zone: str | None, app_name: str, cluster: str) -> _Plan:
    app = bundle.topology.apps.get(app_name)
    if app is None:
        return _Plan(_STAY, Reason.UNKNOWN_APP, None, (), None, None)
    if zone is None:
        return _Plan(_STAY, Reason.UNKNOWN_CELL, None, (), None, None)
    ev = bundle.evaluation(zone, app_name, cluster)
    target = ev.best_other.cluster if ev.best_other is not None else None
    evacuate_reason = _evacuation(bundle, cluster)
    if evacuate_reason is not None:
        if target is None:
            return _Plan(_STAY, Reason.NO_CANDIDATE, ev.current, ev.ranked, None, None)
        return _Plan(_RELOCATE, evacuate_reason, ev.current, ev.ranked, target, None)
    stay_reason = _stay(bundle, ev)
    if stay_reason is not None:
        return _Plan(_STAY, stay_reason, ev.current, ev.ranked, None, None)
    if target is None:
        return _Plan(_STAY, Reason.NO_CANDIDATE, ev.current, ev.ranked, None, None)
    gates = bundle.rules.stateful if app.stateful else bundle.rules.stateless
    return _Plan(None, Reason.RELOCATE_BEST_CANDIDATE, ev.current, ev.ranked, target, gates)


def _gate(
    now_s: float, gates: Gates, state: UeState, track: AppTrack | None, target: str
) -> tuple[Reason, float | None] | None:
    if gates.dwell_s is not None or gates.dwell_reports is not None:
        by_time = gates.dwell_s is not None and now_s - state.zone_since_s >= gates.dwell_s
        by_count = gates.dwell_reports is not None and state.zone_reports >= gates.dwell_reports
        if not (by_time or by_count):
            at = state.zone_since_s + gates.dwell_s if gates.dwell_s is not None else None
            return Reason.DWELL_NOT_REACHED, at
    if track is None:
        return None
    last = track.last_relocation_s
    if gates.cooldown_s is not None and last is not None and now_s - last < gates.cooldown_s:
        return Reason.COOLDOWN, last + gates.cooldown_s
    if gates.ping_pong_s is not None:
        for cluster, left_at_s in reversed(track.left):
            if cluster == target and now_s - left_at_s < gates.ping_pong_s:
                return Reason.PING_PONG_SUPPRESSED, left_at_s + gates.ping_pong_s
    return None


def evaluate_placement(
    now_s: float, bundle: Bundle, placement: Running, state: UeState, zone: str | None
) -> Decision:
    """Decide for one app of a UE whose latest report is already in ``state`` (see :func:`observe`).

    Args:
        now_s: decision time; pass the event time so replays decide the same.
        bundle: topology and policy.
        placement: where the app runs now.
        state: the UE's state, including the report being decided on.
        zone: the zone that report maps to (None: unmapped).
    """
    key = (zone, placement.app, placement.cluster)
    plan = bundle.memo.get(key)
    if plan is None:
        plan = bundle.memo[key] = _plan(bundle, zone, placement.app, placement.cluster)
    action = plan.action
    if action is not None:
        return _done(action, plan.reason, now_s, bundle, placement, state, zone, plan, plan.target)
    target, gates = plan.target, plan.gates
    assert gates is not None  # a move plan always has gates and a target
    assert target is not None
    blocked = _gate(now_s, gates, state, state.track(placement.app), target)
    if blocked is not None:
        reason, recheck_at_s = blocked
        return _done(
            _DEFER, reason, now_s, bundle, placement, state, zone, plan, target, recheck_at_s
        )
    return _done(_RELOCATE, plan.reason, now_s, bundle, placement, state, zone, plan, target)


def _stale(now_s: float, bundle: Bundle, placement: Running, state: UeState) -> Decision:
    return Decision(
        Action.STAY,
        Reason.STALE_EVENT,
        placement.app,
        placement.cluster,
        None,
        state.zone,
        None,
        (),
        bundle.version,
        now_s,
        None,
        state,
    )


def decide(
    now_s: float,
    bundle: Bundle,
    placement: Running,
    state: UeState | None,
    event: LocationEvent,
) -> Decision:
    """Account for one event of a UE and decide for one of its apps.

    An event older than the UE's latest report is stale: the decision is ``STALE_EVENT`` and the
    state is returned unchanged.

    Args:
        now_s: decision time; pass the event time (``event.event_time.timestamp()``).
        bundle: topology and policy.
        placement: where the app runs now.
        state: the UE's state before the event, None for a UE never seen.
        event: the normalized location event.
    """
    if state is not None and now_s < state.last_seen_s:
        return _stale(now_s, bundle, placement, state)
    zone = bundle.topology.zone_of(event)
    return evaluate_placement(now_s, bundle, placement, observe(state, now_s, zone), zone)


def recheck(now_s: float, bundle: Bundle, placement: Running, state: UeState) -> Decision:
    """Decide again without a new report: at a deferral's ``recheck_at_s``, or on a new bundle.

    A UE that stops reporting after it moved must still be followed once its dwell is over; the
    caller schedules this call at ``recheck_at_s`` (a timer, not an event).

    Args:
        now_s: decision time, e.g. the deferral's ``recheck_at_s``.
        bundle: topology and policy.
        placement: where the app runs now.
        state: the UE's stored state; its zone is taken as the UE's location.
    """
    if now_s < state.last_seen_s:
        return _stale(now_s, bundle, placement, state)
    return evaluate_placement(now_s, bundle, placement, state, state.zone)


def decide_all(
    now_s: float,
    bundle: Bundle,
    placements: Sequence[Running],
    state: UeState | None,
    event: LocationEvent,
    adjust: Callable[[Decision], Decision] | None = None,
) -> tuple[list[Decision], UeState | None]:
    """Account for one event of a UE once and decide for each of its apps.

    Args:
        adjust: applied to each decision before the next app is decided from its state (e.g.
            :meth:`subscriber.decide.prewarm.Prewarming.relax`).

    Returns:
        one decision per placement, in order, and the UE's state after all of them.
    """
    if state is not None and now_s < state.last_seen_s:
        return [_stale(now_s, bundle, p, state) for p in placements], state
    zone = bundle.topology.zone_of(event)
    current = observe(state, now_s, zone)
    decisions = []
    for placement in placements:
        decision = evaluate_placement(now_s, bundle, placement, current, zone)
        if adjust is not None:
            decision = adjust(decision)
        decisions.append(decision)
        current = decision.state
    return decisions, current


@dataclass(frozen=True, slots=True)
class Tracked:
    """One app instance of one UE, as :func:`evacuate` sees it."""

    ue: str
    placement: Running
    state: UeState | None


def _reference_zone(bundle: Bundle, item: Tracked) -> str | None:
    if item.state is not None and item.state.zone in bundle.topology.latency_ms:
        return item.state.zone
    cluster = bundle.topology.clusters.get(item.placement.cluster)
    return cluster.zone if cluster is not None else None


def evacuate(
    now_s: float, bundle: Bundle, tracked: Iterable[Tracked], ledger: Ledger | None = None
) -> list[tuple[str, Decision]]:
    """Move apps off clusters that are gone, in maintenance or draining, whatever their UEs do.

    Call it when a new topology arrives. Each app is placed from its UE's last known zone (else
    from the zone of the cluster it runs on), in the order given, and the capacity each move
    takes is counted before the next (in ``ledger``, the caller's if given, so the moves also
    count for the decisions that follow), so a drain does not overfill one target.

    Returns:
        ``(ue, decision)`` for every app that had to be evacuated (relocate or ``NO_CANDIDATE``).
    """
    ledger = ledger if ledger is not None else Ledger()
    out: list[tuple[str, Decision]] = []
    topology = bundle.topology
    for item in tracked:
        placement = item.placement
        reason = _evacuation(bundle, placement.cluster)
        app = topology.apps.get(placement.app)
        if reason is None or app is None:
            continue
        zone = _reference_zone(bundle, item)
        state = item.state or UeState(zone, now_s, 0, now_s)
        plan = _Plan(_STAY, Reason.NO_CANDIDATE, None, (), None, None)
        if zone is not None:
            ev = evaluate(topology, bundle.rules, zone, app, placement.cluster, ledger.extra)
            target = ev.best_other.cluster if ev.best_other is not None else None
            if target is None:
                plan = _Plan(_STAY, Reason.NO_CANDIDATE, ev.current, ev.ranked, None, None)
            else:
                plan = _Plan(_RELOCATE, reason, ev.current, ev.ranked, target, None)
                ledger.reserve(bundle, target, app.name)
        assert plan.action is not None
        decision = _done(
            plan.action, plan.reason, now_s, bundle, placement, state, zone, plan, plan.target
        )
        out.append((item.ue, decision))
    return out
