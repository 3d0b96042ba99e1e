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
  of the recording; time in an unmapped zone is not counted.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from subscriber.decide.bundle import Bundle
from subscriber.decide.instances import InstanceDoc, Instances
from subscriber.decide.policy import Action, Reason
from subscriber.decide.prewarm import Prewarming, WarmStats
from subscriber.decide.step import Audited, UeRecord, handle_event, handle_recheck, instance_key
from subscriber.events import LocationEvent

_PING_PONG = Reason.PING_PONG_SUPPRESSED


class Relocation(dict[str, Any]):
    """One move: ``t``, ``instance``, ``source``, ``target``, ``reason`` (a dict, for JSON)."""


@dataclass(slots=True)
class _Ue:
    """One UE's books; per-instance lists are indexed like its instances."""

    alias: str
    since_s: float
    instances: tuple[InstanceDoc, ...] | None = None
    record: UeRecord | None = None
    zone: str | None = None
    keys: tuple[str, ...] = ()
    apps: tuple[str, ...] = ()
    serving: list[str] = field(default_factory=list)
    out_s: list[float] = field(default_factory=list)
    last_reason: list[Reason | None] = field(default_factory=list)
    moves: list[Relocation] = field(default_factory=list)


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


def _label(ue: str) -> str:
    return "u" + hashlib.blake2b(ue.encode(), digest_size=6).hexdigest()


def auto_instances(bundle: Bundle, apps: Sequence[str]) -> InstancesFor:
    """One instance of each app per UE, on the cluster ``bundle`` ranks best at its first zone.

    Apps with no candidate from that zone are left out for that UE. The instance name is a
    short hash of the UE key (a DNS label, and no identity in clear).
    """
    best: dict[tuple[str, str], str | None] = {}

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
                out.append(InstanceDoc(ue=ue, app=app, instance=_label(ue), cluster=cluster))
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

    def _account(self, ue: _Ue, audited: Sequence[Audited], t: float) -> None:
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
            if item.request is not None:
                self._moved(ue, i, item.request.target.cluster, reason, t)

    def _moved(self, ue: _Ue, i: int, target: str, reason: Reason, t: float) -> None:
        outcome = self.outcome
        key = ue.keys[i]
        for prev in reversed(ue.moves):
            if prev["instance"] == key:
                if prev["source"] == target and t - prev["t"] <= self._flip_window_s:
                    outcome.flips += 1
                break
        ue.moves.append(
            Relocation(t=t, instance=key, source=ue.serving[i], target=target, reason=reason.value)
        )
        ue.serving[i] = target
        outcome.relocations += 1
        outcome.relocation_times.append(t)

    def _rechecks_until(self, ue: _Ue, t: float) -> None:
        record = ue.record
        while record is not None and record.recheck_at_s is not None and record.recheck_at_s <= t:
            at = record.recheck_at_s
            self._advance(ue, at)
            handled = handle_recheck(
                at,
                record,
                ue.instances or (),
                self.bundle,
                ue_alias=ue.alias,
                app_port=self._app_port,
                warming=self._warming,
            )
            self.outcome.rechecks += 1
            if ue.instances:
                self._account(ue, handled.audited, at)
            record = ue.record = handled.record

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
        self.outcome.start_by_ue[key] = dict(zip(ue.keys, ue.serving, strict=True))

    def feed(self, event: LocationEvent) -> None:
        """Decide on one event (and on the UE's deferred moves due before it)."""
        key = event.ue.key()
        t = event.event_time.timestamp()
        ue = self.ues.get(key)
        if ue is None:
            ue = self.ues[key] = _Ue(alias=self._alias(key), since_s=t)
        record = ue.record
        if record is not None and record.recheck_at_s is not None and record.recheck_at_s <= t:
            self._rechecks_until(ue, t)
            record = ue.record
        if ue.instances is None:
            self._start(key, ue, self._zone_of(event))
        if self._warming is not None:
            self._warming.expire(t)
        handled = handle_event(
            event,
            record,
            ue.instances or (),
            self.bundle,
            ue_alias=ue.alias,
            app_port=self._app_port,
            dedup_window=self._dedup,
            warming=self._warming,
        )
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
        if audited:
            self._account(ue, audited, t)
        ue.record = handled.record

    def finish(self, end_s: float) -> Outcome:
        """Run the rechecks due by ``end_s``, count budget time up to it, return the outcome."""
        outcome = self.outcome
        for key, ue in self.ues.items():
            self._rechecks_until(ue, end_s)
            self._advance(ue, end_s)
            for inst, out_s in zip(ue.keys, ue.out_s, strict=True):
                outcome.out_of_budget_s[f"{key}|{inst}"] = out_s
            if ue.out_s:
                outcome.out_of_budget_by_ue[key] = sum(ue.out_s)
            if ue.moves:
                outcome.moves_by_ue[key] = ue.moves
        # Rechecks run when their UE is next seen, so their moves arrive late: put them in order.
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


def merge_outcomes(parts: Sequence[Outcome]) -> Outcome:
    """One outcome from runs of one policy over disjoint sets of UEs (shards)."""
    first = parts[0]
    merged = Outcome(label=first.label, version=first.version)
    for part in parts:
        merged.events += part.events
        merged.duplicates += part.duplicates
        merged.rechecks += part.rechecks
        merged.relocations += part.relocations
        merged.relocation_times += part.relocation_times
        merged.reasons.update(part.reasons)
        merged.actions.update(part.actions)
        merged.ping_pong_suppressed += part.ping_pong_suppressed
        merged.ping_pong_episodes += part.ping_pong_episodes
        merged.flips += part.flips
        merged.out_of_budget_s.update(part.out_of_budget_s)
        merged.out_of_budget_by_ue.update(part.out_of_budget_by_ue)
        merged.moves_by_ue.update(part.moves_by_ue)
        merged.start_by_ue.update(part.start_by_ue)
        if part.prewarm is not None:
            merged.prewarm = merged.prewarm or WarmStats()
            merged.prewarm.add(part.prewarm)
    merged.relocation_times.sort()
    return merged
