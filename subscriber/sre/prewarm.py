"""Pre-warming measured: how long after a roam the app serves from the new edge, with and without.

:func:`study` runs a mobility timeline through the policy engine the consumer uses
(:func:`~subscriber.decide.policy.evaluate_placement`, deferrals rechecked at their time), one
instance of one app per UE, moves taking effect at once as in ``shadow``. With pre-warming, the
same predictor and warm pool the policy defines learn online from the UEs' own moves, and a move
to a warm target costs only the steer.

A **roam** is a zone change after which the app's current cluster no longer qualifies. It is
**served** when the move to the new zone's cluster has finished: decided, then deployed and ready
(unless warm and ready already) and steered. A UE that leaves before then leaves the roam
unserved. Move costs default to the demo's measured steps (docs/performance.md): deploy 40 ms,
readiness 1 s, DNS switch and confirmation 40 ms.

:func:`grid_topology` builds the study's network: a grid of zones, each with its own edge cluster,
and an app whose latency budget only its own zone's edge meets, so every zone change is a roam.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from subscriber.decide.bundle import Bundle, load_bundle
from subscriber.decide.policy import Action, Decision, Running, evaluate_placement, recheck
from subscriber.decide.prewarm import Prewarm, Prewarming, Verdict, WarmStats
from subscriber.decide.state import UeState, observe
from subscriber.sre.simulate import Mobility, Move, simulate

STUDY_APP = "video"

# The example policy's rules, with a 10 s cooldown (20 s for the stateful app): commuters cross a
# zone in about 90 s, and the default minute (two for a stateful app) would hold most moves back
# with or without pre-warming. Budgets sized so they do not bind (tests show them binding).
STUDY_POLICY: dict[str, Any] = {
    "label": "prewarm study",
    "cooldown": {"cooldown_s": 10},
    "prewarm": {"enabled": True, "max_per_cluster": 32, "max_per_app": 400},
}
# Both models on an 8 x 8 grid: UEs report every minute (periodic AMF location reporting) and
# stay at least 20 s in a zone; eight routes of at least five zones for the commuters.
STUDY_MOBILITY: dict[str, dict[str, Any]] = {
    "commute": {"model": "commute", "routes": 8, "min_route_zones": 5},
    "commute-exp": {
        "model": "commute",
        "routes": 8,
        "min_route_zones": 5,
        "commute_dwell_shape": 1.0,
    },
    "walk": {"model": "walk"},
}


def study_inputs(model: str, ues: int, duration_s: float, seed: int) -> tuple[Bundle, list[Move]]:
    """The study's network and policy, and a timeline of ``model`` (of :data:`STUDY_MOBILITY`)."""
    bundle = load_bundle(grid_topology(8, 8), yaml.safe_dump(STUDY_POLICY))
    params = Mobility(
        ues=ues,
        duration_s=duration_s,
        report_interval_s=60.0,
        oscillation_p=0.0,
        min_dwell_s=20.0,
        **STUDY_MOBILITY[model],
    )
    return bundle, simulate(bundle.topology, params, seed)


@dataclass(frozen=True, slots=True)
class Timing:
    """What a move costs, in seconds."""

    deploy_s: float = 0.04
    ready_s: float = 1.0
    steer_s: float = 0.04

    @property
    def cold_s(self) -> float:
        """A move without a warm instance."""
        return self.deploy_s + self.ready_s + self.steer_s


@dataclass
class Result:
    """What one run measured."""

    served_s: list[float] = field(default_factory=list)
    unserved: int = 0
    prewarmed: int = 0
    audit: dict[str, int] = field(default_factory=dict)
    stats: WarmStats | None = None

    def summary(self) -> dict[str, Any]:
        """The figures docs/performance.md reports."""
        served = sorted(self.served_s)
        stats = self.stats or WarmStats()
        return {
            "roams": len(served) + self.unserved,
            "served": len(served),
            "unserved": self.unserved,
            "median_s": _quantile(served, 0.5),
            "p90_s": _quantile(served, 0.9),
            "prewarmed_share": self.prewarmed / len(served) if served else 0.0,
            "prewarms": stats.prewarmed,
            "hits": stats.hits,
            "misses": stats.misses,
            "expired": stats.expired,
            "warm_used_s": round(stats.used_s, 1),
            "warm_wasted_s": round(stats.wasted_s, 1),
            "waste_ratio": stats.wasted_s / stats.used_s if stats.used_s else None,
            "audit": dict(sorted(self.audit.items())),
        }


def _quantile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, math.floor(q * len(values)))]


@dataclass
class _Ue:
    state: UeState | None
    cluster: str
    roam_since_s: float | None = None
    recheck_at_s: float | None = None
    warm_ready_s: float = 0.0


class _Study:
    """One run: the UEs, pre-warming (or not) and what was measured."""

    def __init__(self, bundle: Bundle, prewarm: bool, timing: Timing) -> None:
        rules = bundle.rules.prewarm
        if prewarm and rules is None:
            raise ValueError("the policy has prewarm.enabled: false")
        self.bundle, self.timing = bundle, timing
        self.warming = Prewarming(rules) if prewarm and rules is not None else None
        self.result = Result(stats=self.warming.pool.stats if self.warming else None)
        self.ues: dict[int, _Ue] = {}
        self.queue: list[tuple[float, int, int, int, str | None]] = []
        self.seq = 0

    def _audit(self, ended: Sequence[Prewarm | None]) -> None:
        for e in ended:
            if e is not None:
                self.result.audit[e.verdict.value] = self.result.audit.get(e.verdict.value, 0) + 1

    def _moved(self, n: int, t: float, zone: str) -> tuple[_Ue, Decision] | None:
        bundle, ue = self.bundle, self.ues.get(n)
        if ue is None:
            best = bundle.evaluation(zone, STUDY_APP, None).best
            if best is None:
                return None
            ue = self.ues[n] = _Ue(None, best.cluster)
        before = ue.state
        state = observe(before, t, zone)
        if before is not None and zone != before.zone:
            if self.warming is not None:
                self.warming.observed(before, state, t)
            if ue.roam_since_s is not None:
                self.result.unserved += 1
            current = bundle.evaluation(zone, STUDY_APP, ue.cluster).current
            roams = current is None or current.rejected is not None
            ue.roam_since_s = t if roams else None
        return ue, evaluate_placement(t, bundle, Running(STUDY_APP, ue.cluster), state, zone)

    def _relocate(self, ue: _Ue, d: Decision, key: str) -> None:
        assert d.target is not None
        t, took = d.decided_at_s, self.timing.cold_s
        if self.warming is not None:
            ended = self.warming.moved(d, key)
            self._audit([ended])
            if ended is not None and ended.verdict is Verdict.USED:
                took = max(0.0, ue.warm_ready_s - t) + self.timing.steer_s
                self.result.prewarmed += ue.roam_since_s is not None
        if ue.roam_since_s is not None:
            self.result.served_s.append(t + took - ue.roam_since_s)
            ue.roam_since_s = None
        ue.cluster = d.target

    def step(self, t: float, kind: int, n: int, zone: str | None) -> None:
        """Handle one report (kind 1) or recheck (kind 0) of UE ``n`` at ``t``."""
        warming, key = self.warming, f"ue-{n}"
        if warming is not None:
            self._audit(warming.expire(t))
        if kind == 0:
            ue = self.ues.get(n)
            if ue is None or ue.state is None or ue.recheck_at_s != t:
                return  # superseded by a later decision
            ue.recheck_at_s = None
            d = recheck(t, self.bundle, Running(STUDY_APP, ue.cluster), ue.state)
        else:
            assert zone is not None
            found = self._moved(n, t, zone)
            if found is None:
                return
            ue, d = found
        if warming is not None:
            d = warming.relax(d, self.bundle, key)
        ue.state = d.state
        if d.action is Action.RELOCATE and d.target is not None:
            self._relocate(ue, d, key)
        elif d.action is Action.DEFER and d.recheck_at_s is not None and d.recheck_at_s > t:
            ue.recheck_at_s = d.recheck_at_s
            self.seq += 1
            heapq.heappush(self.queue, (d.recheck_at_s, 0, self.seq, n, None))
        if warming is not None:
            records = warming.ahead(d, self.bundle, key)
            self._audit(records)
            if records and records[-1].verdict is Verdict.PREWARM:
                ue.warm_ready_s = t + self.timing.deploy_s + self.timing.ready_s


def study(
    bundle: Bundle, moves: Sequence[Move], *, prewarm: bool, timing: Timing = Timing()
) -> Result:
    """Run ``moves`` (time order) for one instance of :data:`STUDY_APP` per UE.

    Warm instances are considered whenever the app serves from the UE's zone (it just moved
    there, or it stays because it is fine there), from the UE's own distinct-zone path.

    Args:
        bundle: topology and policy; its ``prewarm`` section is used when ``prewarm`` is true.
        moves: the timeline, e.g. from :func:`subscriber.sre.simulate.simulate`.
        prewarm: predict and pre-warm, or not (the baseline).
        timing: what a move costs.

    Raises:
        ValueError: ``prewarm`` asked of a policy without a ``prewarm`` section enabled.
    """
    run = _Study(bundle, prewarm, timing)
    run.queue = [(m.t_s, 1, i, m.ue, m.cell.zone) for i, m in enumerate(moves)]
    heapq.heapify(run.queue)
    run.seq = len(moves)
    while run.queue:
        t, kind, _, n, zone = heapq.heappop(run.queue)
        run.step(t, kind, n, zone)
    if run.warming is not None:
        run._audit(run.warming.pool.drain(moves[-1].t_s if moves else 0.0))
    return run.result


def grid_topology(cols: int, rows: int) -> str:
    """A ``cols`` x ``rows`` grid of zones, one edge cluster each, and :data:`STUDY_APP`.

    Neighbouring zones are joined by 4 ms links (the radio neighbourhood the simulator moves
    over), each zone to its own edge by 2 ms, neighbouring edges by 4 ms; the app's 5 ms budget
    is met by its zone's edge alone.
    """
    zones, areas, clusters, links = [], [], [], []
    for r in range(rows):
        for c in range(cols):
            k = r * cols + c + 1
            zone, edge = f"zone-{r}-{c}", f"edge-{r}-{c}"
            zones.append({"id": zone})
            areas.append({"tac": f"{k:06x}", "cells": [{"cell_id": f"{k:09x}", "zone": zone}]})
            clusters.append(
                {
                    "id": edge,
                    "site": f"site-{r}-{c}",
                    "zone": zone,
                    "capacity": {"cpu": 4096, "memory_mib": 4194304, "app_slots": 4096},
                    "load": {"cpu": 0, "memory_mib": 0, "apps": 0},
                    "address": f"10.{r}.{c}.1",
                }
            )
            links.append({"a": zone, "b": edge, "latency_ms": 2})
            for dr, dc in ((0, 1), (1, 0)):
                if r + dr < rows and c + dc < cols:
                    links.append({"a": zone, "b": f"zone-{r + dr}-{c + dc}", "latency_ms": 4})
                    links.append({"a": edge, "b": f"edge-{r + dr}-{c + dc}", "latency_ms": 4})
    doc = {
        "plmn": {"mcc": "208", "mnc": "93"},
        "zones": zones,
        "tracking_areas": areas,
        "clusters": clusters,
        "links": links,
        "applications": [
            {
                "name": STUDY_APP,
                "latency_budget_ms": 5,
                "needs": {"cpu": 1, "memory_mib": 1024},
                "stateful": True,
            }
        ],
    }
    return yaml.safe_dump(doc, sort_keys=False)
