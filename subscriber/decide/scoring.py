"""Candidate clusters for an app seen from a zone: which qualify, how they score, why others don't.

The score is ``latency_weight * latency/budget + load_weight * utilisation`` (lower is better),
where utilisation is the larger of the CPU and memory shares the cluster would use with the app
placed on it. Ties break on the cluster id, so the ranking is a total order. Rejected clusters
follow the accepted ones, nearest first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from subscriber.decide.rules import Rules
from subscriber.decide.topology import App, Cluster, ClusterState, Topology


class Rejection(StrEnum):
    """Why a cluster is not a candidate (or why the current one no longer qualifies)."""

    NOT_ALLOWED = "NOT_ALLOWED"
    MAINTENANCE = "MAINTENANCE"
    DRAINING = "DRAINING"
    UNREACHABLE = "UNREACHABLE"
    OVER_BUDGET = "OVER_BUDGET"
    OVER_CAPACITY = "OVER_CAPACITY"
    NO_SLOTS = "NO_SLOTS"


@dataclass(frozen=True, slots=True)
class Extra:
    """Load added to a cluster by decisions not yet reflected in the topology."""

    cpu: float = 0.0
    memory_mib: int = 0
    apps: int = 0


def _round(value: float | None) -> float | None:
    return round(value, 6) if value is not None else None


@dataclass(frozen=True, slots=True)
class Candidate:
    """One cluster's evaluation for one app from one zone.

    Attributes:
        cluster: the cluster id.
        latency_ms: shortest-path latency from the zone; None when unreachable.
        utilisation: the larger of CPU and memory shares with the app placed (as is, if current).
        latency_score: ``latency_weight * latency / budget``; None when unreachable.
        load_score: ``load_weight * utilisation``.
        score: their sum, lower is better; None when unreachable.
        rejected: why it is not a candidate; None when it is one.
        current: whether the app runs there now.
    """

    cluster: str
    latency_ms: float | None
    utilisation: float
    latency_score: float | None
    load_score: float
    score: float | None
    rejected: Rejection | None
    current: bool

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form for decision records."""
        return {
            "cluster": self.cluster,
            "latency_ms": self.latency_ms,
            "utilisation": round(self.utilisation, 4),
            "latency_score": _round(self.latency_score),
            "load_score": _round(self.load_score),
            "score": _round(self.score),
            "rejected": self.rejected.value if self.rejected is not None else None,
            "current": self.current,
        }


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The ranking for (zone, app) and the current cluster's own evaluation.

    ``ranked`` evaluates every cluster as a new home (the current one included, as if placed
    again); ``current`` evaluates the current cluster as it is, without re-checking capacity.
    ``best`` is the better of the two views; ``best_other`` the best cluster that is not current.
    """

    current: Candidate | None
    ranked: tuple[Candidate, ...]
    best: Candidate | None
    best_other: Candidate | None


_NO_EXTRA = Extra()


def _rejection(
    cluster: Cluster, app: App, latency: float | None, rules: Rules, current: bool, extra: Extra
) -> tuple[Rejection | None, float]:
    cpu_used = cluster.cpu_used + extra.cpu + (0.0 if current else app.cpu)
    mem_used = cluster.memory_used_mib + extra.memory_mib + (0 if current else app.memory_mib)
    utilisation = max(cpu_used / cluster.cpu, mem_used / cluster.memory_mib)
    if not app.allows(cluster):
        return Rejection.NOT_ALLOWED, utilisation
    if cluster.state is ClusterState.MAINTENANCE:
        return Rejection.MAINTENANCE, utilisation
    if cluster.state is ClusterState.DRAINING:
        return Rejection.DRAINING, utilisation
    if latency is None:
        return Rejection.UNREACHABLE, utilisation
    if latency > app.latency_budget_ms:
        return Rejection.OVER_BUDGET, utilisation
    # The current cluster already carries the app: its capacity is not re-checked.
    if not current and rules.max_utilisation is not None:
        if cluster.apps_used + extra.apps + 1 > cluster.app_slots:
            return Rejection.NO_SLOTS, utilisation
        if utilisation > rules.max_utilisation:
            return Rejection.OVER_CAPACITY, utilisation
    return None, utilisation


def score_cluster(
    cluster: Cluster,
    app: App,
    latency: float | None,
    rules: Rules,
    *,
    current: bool,
    extra: Extra = _NO_EXTRA,
) -> Candidate:
    """Evaluate one cluster for one app at the given latency (None: unreachable)."""
    rejected, utilisation = _rejection(cluster, app, latency, rules, current, extra)
    load_score = rules.load_weight * utilisation
    latency_score = score = None
    if latency is not None:
        latency_score = rules.latency_weight * latency / app.latency_budget_ms
        score = latency_score + load_score
    return Candidate(
        cluster.id, latency, utilisation, latency_score, load_score, score, rejected, current
    )


def _rank_key(c: Candidate) -> tuple[int, float, str]:
    if c.rejected is None and c.score is not None:
        return (0, c.score, c.cluster)
    # Rejected clusters nearest first: the closest misses explain a decision best.
    return (1, c.latency_ms if c.latency_ms is not None else math.inf, c.cluster)


def rank(
    topology: Topology,
    rules: Rules,
    zone: str,
    app: App,
    extra: Mapping[str, Extra] | None = None,
) -> tuple[Candidate, ...]:
    """Every cluster evaluated as a new home for ``app`` seen from ``zone``, best first.

    Args:
        topology: the compiled topology.
        rules: the compiled policy.
        zone: where the UE is.
        app: the application to place.
        extra: load already promised to clusters by earlier decisions of the same batch.
    """
    latencies = topology.latency_ms.get(zone, {})
    candidates = []
    for cid, cluster in topology.clusters.items():
        more = extra.get(cid, _NO_EXTRA) if extra else _NO_EXTRA
        candidates.append(
            score_cluster(cluster, app, latencies.get(cid), rules, current=False, extra=more)
        )
    return tuple(sorted(candidates, key=_rank_key))


def assess(
    topology: Topology,
    rules: Rules,
    zone: str,
    app: App,
    current: str | None,
    ranked: tuple[Candidate, ...],
) -> Evaluation:
    """Combine a ranking with the current cluster as it is (its load already counts the app)."""
    now = None
    cluster = topology.clusters.get(current) if current is not None else None
    if cluster is not None:
        latency = topology.latency_ms.get(zone, {}).get(cluster.id)
        now = score_cluster(cluster, app, latency, rules, current=True)
    best_other = next((c for c in ranked if c.rejected is None and c.cluster != current), None)
    best = best_other
    if (
        now is not None
        and now.rejected is None
        and (best is None or _rank_key(now) < _rank_key(best))
    ):
        best = now
    return Evaluation(current=now, ranked=ranked, best=best, best_other=best_other)


def evaluate(
    topology: Topology,
    rules: Rules,
    zone: str,
    app: App,
    current: str | None,
    extra: Mapping[str, Extra] | None = None,
) -> Evaluation:
    """Rank every cluster for ``app`` seen from ``zone`` while it runs on ``current``."""
    return assess(topology, rules, zone, app, current, rank(topology, rules, zone, app, extra))
