"""What-if: run one or two policies over a recording with the consumer's own pure core.

Each event goes through :func:`subscriber.decide.step.handle_event`, exactly as the consumer
calls it, with an in-memory UE record per UE; deferred moves are looked at again with
:func:`~subscriber.decide.step.handle_recheck` at their ``recheck_at_s``, as the consumer's
timers do (before the UE's next event, or at the end of the recording). No workflow runs: a
relocation is assumed to take effect at once, where the policy sent it.

Which instances serve which UE: an instances file (``--instances``) as the consumer reads it;
without one, every UE runs one instance of each application listed (``--app``, default all the
topology's applications), started, at the UE's first mapped location, on the cluster that policy
A ranks best from there. Both policies start from the same placements.

What is measured per policy (:class:`Outcome`):

* relocations (the requests the consumer would signal) and when they happen;
* decisions by reason; ping-pongs avoided: ``PING_PONG_SUPPRESSED`` decisions, and episodes
  (a run of them for one instance counts once);
* flips that did happen: a relocation back to the cluster the instance left with its previous
  relocation, within ``flip_window_s`` of it (A→B→A);
* latency-budget violations: for each instance, the time its UE spent in a zone from which the
  serving cluster's path latency (topology latency graph) exceeds the app's budget, up to the end
  of the recording; time in an unmapped zone is not counted;
* each move in detail (:class:`Relocation`): when, which UE and instance, from and to, why,
  what triggered it, and how the candidates scored or why they were rejected;
* decisions that cannot be carried out: ``NO_CANDIDATE`` (the app stays where the policy found
  it wanting, nowhere qualifies) and a relocation the consumer would not signal;
* a per-UE trail: where the UE was, and each decision that was not a plain stay.

Capacity: the topology's load is the starting point; each move then takes the app's needs on its
target and gives them back on its source, through the same :class:`~subscriber.decide.ledger.
Ledger` the consumer and ``evacuate`` use, so later decisions see clusters filling up. The
instances serving the UEs at the start are taken to be in the topology's load already (as a
production instances file is).
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from subscriber.decide.bundle import Bundle
from subscriber.decide.instances import InstanceDoc, Instances
from subscriber.decide.ledger import Ledger
from subscriber.decide.policy import Action, Decision, Reason
from subscriber.decide.prewarm import Prewarming, WarmStats, hold
from subscriber.decide.scoring import Candidate
from subscriber.decide.step import Audited, UeRecord, handle_event, handle_recheck, instance_key
from subscriber.events import LocationEvent

_PING_PONG = Reason.PING_PONG_SUPPRESSED
_NO_CANDIDATE = Reason.NO_CANDIDATE
_STAY = Action.STAY
CANDIDATES_KEPT = 4
"""Candidates kept per move and per un-actionable decision: the best, then the nearest misses."""
EXAMPLES_KEPT = 3
"""Un-actionable decisions kept in full per kind (reason, app, zone); all are counted."""


class Relocation(dict[str, Any]):
    """One move (a dict, for JSON): ``t``, ``ue``, ``instance`` (``app/name``), ``app``,
    ``source``, ``target``, ``reason``, ``trigger`` (``event`` or ``recheck``), ``zone`` and
    ``candidates`` (each: ``cluster``, ``score``, ``latency_ms``, ``utilisation``,
    ``rejected``)."""


def candidates_of(candidates: Sequence[Candidate], kept: int = CANDIDATES_KEPT) -> list[Any]:
    """The first ``kept`` candidates of a decision, compact: accepted by score, then rejected."""
    return [
        {
            "cluster": c.cluster,
            "score": round(c.score, 4) if c.score is not None else None,
            "latency_ms": c.latency_ms,
            "utilisation": round(c.utilisation, 3),
            "rejected": c.rejected.value if c.rejected is not None else None,
        }
        for c in candidates[:kept]
    ]


def why_not_actionable(decision: Decision, requested: bool) -> str | None:
    """Why the consumer could not carry out ``decision``, or None when it can."""
    if decision.reason is _NO_CANDIDATE:
        return "no cluster qualifies" if decision.candidates else "the topology has no cluster"
    if decision.action is Action.RELOCATE and not requested:
        return f"cluster {decision.target!r} cannot be acted on: the topology has no such cluster"
    return None


@dataclass(slots=True)
class _Ue:
    """One UE's books; per-instance lists are indexed like its instances."""

    alias: str
    since_s: float
    instances: tuple[InstanceDoc, ...] | None = None
    record: UeRecord | None = None
    zone: str | None = None
    cell: str | None = None
    keys: tuple[str, ...] = ()
    apps: tuple[str, ...] = ()
    serving: list[str] = field(default_factory=list)
    out_s: list[float] = field(default_factory=list)
    last_reason: list[Reason | None] = field(default_factory=list)
    last_told: list[tuple[Action, Reason, str | None] | None] = field(default_factory=list)
    moves: list[Relocation] = field(default_factory=list)
    trail: list[list[Any]] = field(default_factory=list)


@dataclass
class Outcome:
    """What one policy did over a recording."""

    label: str
    version: str
    events: int = 0
    duplicates: int = 0
    rechecks: int = 0
    relocations: int = 0
    relocation_times: list[float] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    ping_pong_suppressed: int = 0
    ping_pong_episodes: int = 0
    flips: int = 0
    out_of_budget_s: dict[str, float] = field(default_factory=dict)
    out_of_budget_by_ue: dict[str, float] = field(default_factory=dict)
    moves_by_ue: dict[str, list[Relocation]] = field(default_factory=dict)
    start_by_ue: dict[str, dict[str, str]] = field(default_factory=dict)
    mapped_events: int = 0
    unactionable: Counter[str] = field(default_factory=Counter)
    unactionable_examples: list[dict[str, Any]] = field(default_factory=list)
    trails: dict[str, list[list[Any]]] = field(default_factory=dict)
    prewarm: WarmStats | None = None

    def summary(self) -> dict[str, Any]:
        """JSON-ready totals."""
        out = self.out_of_budget_s
        return {
            "label": self.label,
            "version": self.version,
            "events": self.events,
            "duplicates": self.duplicates,
            "rechecks": self.rechecks,
            "relocations": self.relocations,
            "ping_pong_suppressed": self.ping_pong_suppressed,
            "ping_pong_episodes": self.ping_pong_episodes,
            "flips": self.flips,
            "decisions_by_reason": dict(sorted(self.reasons.items())),
            "decisions_by_action": dict(sorted(self.actions.items())),
            "instances": len(out),
            "instances_out_of_budget": sum(1 for v in out.values() if v > 0),
            "out_of_budget_s_total": round(sum(out.values()), 3),
            "events_in_a_zone": self.mapped_events,
            "unactionable": sum(self.unactionable.values()),
            **({"prewarm": _prewarm_summary(self.prewarm)} if self.prewarm else {}),
        }


def _prewarm_summary(stats: WarmStats) -> dict[str, Any]:
    return {
        "prewarmed": stats.prewarmed,
        "hits": stats.hits,
        "misses": stats.misses,
        "expired": stats.expired,
        "warm_used_s": round(stats.used_s, 3),
        "warm_wasted_s": round(stats.wasted_s, 3),
        "quiet": dict(sorted(stats.quiet.items())),
    }


InstancesFor = Callable[[str, str | None], tuple[InstanceDoc, ...] | None]
"""``(ue key, zone of its event)`` -> its instances, or None to ask again at the next event."""


def registry_instances(instances: Instances) -> InstancesFor:
    """Instances from a registry (the consumer's instances file)."""

    def of(ue: str, zone: str | None) -> tuple[InstanceDoc, ...]:
        return instances.of(ue)

    return of


def auto_instances(bundle: Bundle, apps: Sequence[str]) -> InstancesFor:
    """One instance of each app per UE, on the cluster ``bundle`` ranks best at its first zone.

    Apps with no candidate from that zone are left out for that UE. The instance name is
    ``ue<n>``, the UE's rank in order of first appearance: a DNS label that carries nothing of
    the identity (a hash of a SUPI could be reversed by trying every SUPI), the same in every
    process that reads the same recording.
    """
    best: dict[tuple[str, str], str | None] = {}
    labels: dict[str, str] = {}

    def of(ue: str, zone: str | None) -> tuple[InstanceDoc, ...] | None:
        if zone is None:
            return None
        out = []
        for app in apps:
            key = (zone, app)
            if key not in best:
                found = bundle.evaluation(zone, app, None).best
                best[key] = found.cluster if found is not None else None
            cluster = best[key]
            if cluster is not None:
                label = labels.setdefault(ue, f"ue{len(labels) + 1}")
                out.append(InstanceDoc(ue=ue, app=app, instance=label, cluster=cluster))
        return tuple(out)

    return of


class _Budget:
    """Memoized: is ``cluster`` outside ``app``'s latency budget from ``zone``?"""

    def __init__(self, bundle: Bundle) -> None:
        self._topology = bundle.topology
        self._memo: dict[tuple[str, str, str], bool] = {}

    def out(self, zone: str, app: str, cluster: str) -> bool:
        key = (zone, app, cluster)
        found = self._memo.get(key)
        if found is None:
            spec = self._topology.apps.get(app)
            latency = self._topology.latency_ms.get(zone, {}).get(cluster)
            found = spec is not None and (latency is None or latency > spec.latency_budget_ms)
            self._memo[key] = found
        return found


class ShadowEngine:
    """Runs one policy over events fed in order; :meth:`finish` closes the books.

    Args:
        bundle: the policy (and topology) to evaluate.
        instances_for: which instances serve a UE.
        label: the policy's name in reports.
        alias: the UE name handed to the core (a pseudonym).
        flip_window_s: an A→B→A relocation within this many seconds counts as a flip.
        dedup_window: as the consumer's ``act.dedup_window``.
        app_port: as the consumer's ``act.app_port`` (only shapes the requests).
    """

    def __init__(
        self,
        bundle: Bundle,
        instances_for: InstancesFor,
        *,
        label: str,
        alias: Callable[[str], str],
        flip_window_s: float = 600.0,
        dedup_window: int = 32,
        app_port: int = 8080,
    ) -> None:
        self.bundle = bundle
        self.ledger = Ledger()
        self._app_port = app_port
        self.outcome = Outcome(label=label, version=bundle.version)
        self._instances_for = instances_for
        self._alias = alias
        self._flip_window_s = flip_window_s
        self._dedup = dedup_window
        self._out = _Budget(bundle).out
        self._zone_of = bundle.topology.zone_of
        # Counted by enum member on the hot path; turned into names once, in finish().
        self._reasons: dict[Reason, int] = {}
        self._actions: dict[Action, int] = {}
        self.ues: dict[str, _Ue] = {}
        self._due: list[tuple[float, str]] = []
        # The policy's pre-warming, run as the consumer would (moves take effect at once).
        rules = bundle.rules.prewarm
        self._warming = Prewarming(rules) if rules is not None else None
        self.outcome.prewarm = self._warming.pool.stats if self._warming else None

    def _advance(self, ue: _Ue, t: float) -> None:
        """Count the time since the UE's last change as out of budget where it was."""
        since = ue.since_s
        if t <= since:
            return
        zone = ue.zone
        if zone is not None:
            out = self._out
            serving = ue.serving
            for i, app in enumerate(ue.apps):
                if out(zone, app, serving[i]):
                    ue.out_s[i] += t - since
        ue.since_s = t

    def _account(
        self, key: str, ue: _Ue, audited: Sequence[Audited], t: float, trigger: str
    ) -> None:
        reasons, actions = self._reasons, self._actions
        last_reason = ue.last_reason
        for i, item in enumerate(audited):
            decision = item.decision
            reason = decision.reason
            reasons[reason] = reasons.get(reason, 0) + 1
            actions[decision.action] = actions.get(decision.action, 0) + 1
            if reason is _PING_PONG:
                self.outcome.ping_pong_suppressed += 1
                if last_reason[i] is not reason:
                    self.outcome.ping_pong_episodes += 1
            last_reason[i] = reason
            if decision.action is not _STAY or reason is _NO_CANDIDATE:
                self._noted(key, ue, i, item, t, trigger)
            if item.request is not None:
                self._moved(key, ue, i, decision, t, trigger)

    def _noted(self, key: str, ue: _Ue, i: int, item: Audited, t: float, trigger: str) -> None:
        """A decision other than a plain stay: on the UE's trail (once per change), and
        counted if it cannot be carried out."""
        decision = item.decision
        told = (decision.action, decision.reason, decision.target)
        why = why_not_actionable(decision, item.request is not None)
        if ue.last_told[i] != told:
            ue.last_told[i] = told
            ue.trail.append(
                [
                    t,
                    "decision",
                    ue.keys[i],
                    decision.action.value,
                    decision.reason.value,
                    decision.source,
                    decision.target,
                    trigger,
                    why,
                ]
            )
        if why is None:
            return
        outcome = self.outcome
        kind = f"{decision.reason.value} {ue.apps[i]} in {decision.zone}"
        outcome.unactionable[kind] += 1
        if outcome.unactionable[kind] <= EXAMPLES_KEPT:
            outcome.unactionable_examples.append(
                {
                    "t": t,
                    "ue": key,
                    "instance": ue.keys[i],
                    "action": decision.action.value,
                    "reason": decision.reason.value,
                    "zone": decision.zone,
                    "source": decision.source,
                    "target": decision.target,
                    "why": why,
                    "candidates": candidates_of(decision.candidates),
                }
            )

    def _moved(self, key: str, ue: _Ue, i: int, decision: Decision, t: float, trigger: str) -> None:
        outcome = self.outcome
        instance = ue.keys[i]
        target = decision.target
        assert target is not None  # a request always has a target
        for prev in reversed(ue.moves):
            if prev["instance"] == instance:
                if prev["source"] == target and t - prev["t"] <= self._flip_window_s:
                    outcome.flips += 1
                break
        source = ue.serving[i]
        ue.moves.append(
            Relocation(
                t=t,
                ue=key,
                instance=instance,
                app=ue.apps[i],
                source=source,
                target=target,
                reason=decision.reason.value,
                trigger=trigger,
                zone=decision.zone,
                candidates=candidates_of(decision.candidates),
            )
        )
        ue.serving[i] = target
        # The move takes effect at once: its target fills up, its source frees up.
        self.ledger.moved(self.bundle, ue.apps[i], source, target)
        outcome.relocations += 1
        outcome.relocation_times.append(t)

    def _run_due(self, t: float) -> None:
        """Run every UE's rechecks due by ``t``, in time order, as the consumer's timers would:
        with capacity shared, a recheck must see exactly the moves made before it."""
        due = self._due
        while due and due[0][0] <= t:
            at, key = heapq.heappop(due)
            ue = self.ues[key]
            record = ue.record
            if record is None or record.recheck_at_s != at:
                continue  # superseded by a later event of the UE
            self._advance(ue, at)
            handled = handle_recheck(
                at,
                record,
                ue.instances or (),
                self.ledger.applied(self.bundle),
                ue_alias=ue.alias,
                app_port=self._app_port,
                warming=self._warming,
            )
            hold(self.ledger, self.bundle, handled.prewarms)
            self.outcome.rechecks += 1
            if ue.instances:
                self._account(key, ue, handled.audited, at, "recheck")
            ue.record = handled.record
            self._schedule(key, handled.record, after=at)

    def _schedule(self, key: str, record: UeRecord, *, after: float) -> None:
        at = record.recheck_at_s
        if at is not None and at > after:
            heapq.heappush(self._due, (at, key))

    def _start(self, key: str, ue: _Ue, zone: str | None) -> None:
        found = self._instances_for(key, zone)
        if found is None:
            return
        ue.instances = found
        ue.keys = tuple(instance_key(i) for i in found)
        ue.apps = tuple(i.app for i in found)
        ue.serving = [i.cluster for i in found]
        ue.out_s = [0.0] * len(found)
        ue.last_reason = [None] * len(found)
        ue.last_told = [None] * len(found)
        self.outcome.start_by_ue[key] = dict(zip(ue.keys, ue.serving, strict=True))

    def feed(self, event: LocationEvent) -> None:
        """Decide on one event (and on the UE's deferred moves due before it)."""
        key = event.ue.key()
        t = event.event_time.timestamp()
        ue = self.ues.get(key)
        if ue is None:
            ue = self.ues[key] = _Ue(alias=self._alias(key), since_s=t)
        due = self._due
        if due and due[0][0] <= t:
            self._run_due(t)
        record = ue.record
        if ue.instances is None:
            self._start(key, ue, self._zone_of(event))
        if self._warming is not None:
            # The pool's clock is the step's: never ahead of the report's ingest.
            hold(
                self.ledger,
                self.bundle,
                self._warming.expire(min(t, event.ingest_time.timestamp())),
            )
        handled = handle_event(
            event,
            record,
            ue.instances or (),
            self.ledger.applied(self.bundle),
            ue_alias=ue.alias,
            app_port=self._app_port,
            dedup_window=self._dedup,
            warming=self._warming,
        )
        hold(self.ledger, self.bundle, handled.prewarms)
        self.outcome.events += 1
        if handled.duplicate:
            self.outcome.duplicates += 1
            return
        audited = handled.audited
        if t >= ue.since_s:  # a stale event changes nothing (the policy says STALE_EVENT)
            if ue.zone is not None:
                self._advance(ue, t)
            else:
                ue.since_s = t
            # Each decision carries the zone the policy placed the event in.
            ue.zone = audited[0].decision.zone if audited else self._zone_of(event)
            self._where(ue, event, t)
        if ue.zone is not None:
            self.outcome.mapped_events += 1
        if audited:
            self._account(key, ue, audited, t, "event")
        ue.record = handled.record
        self._schedule(key, handled.record, after=t - 1e-9)

    def _where(self, ue: _Ue, event: LocationEvent, t: float) -> None:
        """Put a change of cell on the UE's trail."""
        cell = event.location
        name = (cell.cell_id or f"TAC {cell.tac}") if cell is not None else "no cell"
        if event.dnai_change is not None and event.dnai_change.target_dnai is not None:
            name = f"DNAI {event.dnai_change.target_dnai}"
        if name != ue.cell:
            ue.cell = name
            ue.trail.append([t, "where", name, ue.zone])

    def finish(self, end_s: float) -> Outcome:
        """Run the rechecks due by ``end_s``, count budget time up to it, return the outcome."""
        outcome = self.outcome
        self._run_due(end_s)
        for key, ue in self.ues.items():
            self._advance(ue, end_s)
            for inst, out_s in zip(ue.keys, ue.out_s, strict=True):
                outcome.out_of_budget_s[f"{key}|{inst}"] = out_s
            if ue.out_s:
                outcome.out_of_budget_by_ue[key] = sum(ue.out_s)
            if ue.moves:
                outcome.moves_by_ue[key] = ue.moves
            outcome.trails[key] = ue.trail
        outcome.relocation_times.sort()
        outcome.reasons = Counter({r.value: n for r, n in self._reasons.items()})
        outcome.actions = Counter({a.value: n for a, n in self._actions.items()})
        return outcome


def run_policy(
    events: Iterable[LocationEvent],
    bundle: Bundle,
    instances_for: InstancesFor,
    *,
    label: str,
    end_s: float,
    alias: Callable[[str], str] = str,
    flip_window_s: float = 600.0,
) -> Outcome:
    """Feed every event to a fresh engine and close its books at ``end_s``."""
    engine = ShadowEngine(
        bundle, instances_for, label=label, alias=alias, flip_window_s=flip_window_s
    )
    feed = engine.feed
    for event in events:
        feed(event)
    return engine.finish(end_s)


def _signature(moves: Sequence[Relocation]) -> list[tuple[float, str, str]]:
    return [(m["t"], m["instance"], m["target"]) for m in moves]


def differing_ues(a: Outcome, b: Outcome) -> list[str]:
    """UEs whose relocations (time, instance, target) differ between two runs, sorted."""
    ues = set(a.moves_by_ue) | set(b.moves_by_ue)
    return sorted(
        ue
        for ue in ues
        if _signature(a.moves_by_ue.get(ue, [])) != _signature(b.moves_by_ue.get(ue, []))
    )


def ue_out_of_budget(outcome: Outcome, ue: str) -> float:
    """Seconds a UE's instances spent out of budget, summed."""
    return outcome.out_of_budget_by_ue.get(ue, 0.0)


def compare(a: Outcome, b: Outcome, names: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The UEs whose outcome differs, with each side's relocations and out-of-budget time.

    Args:
        a: policy A's outcome.
        b: policy B's outcome.
        names: how to show each UE key (a pseudonym); the key itself when absent.
    """
    rows = []
    for ue in differing_ues(a, b):
        rows.append(
            {
                "ue": (names or {}).get(ue, ue),
                "relocations_a": len(a.moves_by_ue.get(ue, [])),
                "relocations_b": len(b.moves_by_ue.get(ue, [])),
                "out_of_budget_s_a": round(ue_out_of_budget(a, ue), 3),
                "out_of_budget_s_b": round(ue_out_of_budget(b, ue), 3),
            }
        )
    return {"differing_ues": len(rows), "ues": rows}
