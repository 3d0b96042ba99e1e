"""Pre-warming: start an app where its UE goes next, before it gets there, within a budget.

Three pure pieces, used by whoever decides (the consumer, ``shadow``, the pre-warming study):

* :meth:`WarmPool.consider` turns a :class:`~subscriber.decide.predict.Prediction` into a
  :class:`Prewarm` record: ``PREWARM`` when the confidence and evidence pass the policy's
  thresholds; UEs from the same context were seen to stay at most ``ttl_s`` on average and this
  UE has not stayed longer than they do yet (otherwise the moment it leaves is anybody's guess
  and a warm instance would mostly expire); the predicted zone is served best by another cluster
  than the current one (capacity counted as the bundle has it: :func:`hold` keeps warm
  instances in the capacity ledger, :meth:`Prewarming.bundle_for` gives a UE's own back); and
  the budgets per cluster and per app have room. Otherwise a quiet verdict that says which test
  failed.
* :meth:`WarmPool.admit`, :meth:`WarmPool.arrive` and :meth:`WarmPool.expire` keep the warm
  instances: a move to a warm target is a hit (the instance is used), a move elsewhere a miss
  (the warm one is removed at once), an instance unused for ``ttl_s`` expires. Each end says how
  long the instance was warm, so the pool counts warm-instance-seconds used and wasted.
* :func:`relax` lets a move to a warm target skip the dwell rule (down to ``warm_dwell_s``): a
  warm instance costs only a steer to use, so waiting for the UE to settle buys little. Cooldown
  and ping-pong still apply.

Every record has a reason and the prediction's confidence, for the audit topic. No clock: time is
passed in; the pool is running state, like the capacity ledger. Warm instances live on the
caller's clock: a record's time is its decision time but never later than the report's ingest
time, so a report dated in the future neither keeps a warm instance alive longer nor ends one
early; the caller expires them with the same clock (the consumer's wall clock, on which it also
fires rechecks; the simulations' event time).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from subscriber.decide.bundle import Bundle
from subscriber.decide.ledger import Ledger
from subscriber.decide.policy import Action, Decision, Reason, _gate
from subscriber.decide.predict import Prediction, Transitions, zone_path
from subscriber.decide.rules import Gates, PrewarmDoc
from subscriber.decide.state import UeState, record


class Verdict(StrEnum):
    """What happened to a (possible) warm instance; the first one starts it."""

    PREWARM = "PREWARM"
    USED = "USED"
    MISSED = "MISSED"
    EXPIRED = "EXPIRED"
    NO_PREDICTION = "NO_PREDICTION"
    LOW_CONFIDENCE = "LOW_CONFIDENCE"
    LOW_EVIDENCE = "LOW_EVIDENCE"
    NOT_SOON = "NOT_SOON"
    SAME_CLUSTER = "SAME_CLUSTER"
    NO_CANDIDATE = "NO_CANDIDATE"
    ALREADY_WARM = "ALREADY_WARM"
    CLUSTER_BUDGET = "CLUSTER_BUDGET"
    APP_BUDGET = "APP_BUDGET"


QUIET = frozenset(Verdict) - {Verdict.PREWARM, Verdict.USED, Verdict.MISSED, Verdict.EXPIRED}


@dataclass(frozen=True, slots=True)
class Prewarm:
    """One pre-warming record: a decision to warm, a quiet refusal, or the end of a warm instance.

    Attributes:
        verdict: what happened.
        ue: the UE's pseudonym (never a SUPI).
        app: the application.
        source: where the app serves the UE now.
        target: the warm (or would-be warm) cluster; None when there is none.
        zone: the predicted zone.
        confidence: the prediction's confidence (0 without one).
        at_s: when.
        expires_at_s: for ``PREWARM``, when it expires unless used.
        warm_s: for an end, how long the instance was warm.
        prediction: the prediction, for explaining.
    """

    verdict: Verdict
    ue: str
    app: str
    source: str
    target: str | None
    zone: str | None
    confidence: float
    at_s: float
    expires_at_s: float | None = None
    warm_s: float | None = None
    prediction: Prediction | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the audit topic."""
        return {
            "kind": "prewarm",
            "verdict": self.verdict.value,
            "ue": self.ue,
            "app": self.app,
            "source": self.source,
            "target": self.target,
            "zone": self.zone,
            "confidence": round(self.confidence, 4),
            "at_s": self.at_s,
            "expires_at_s": self.expires_at_s,
            "warm_s": None if self.warm_s is None else round(self.warm_s, 3),
            "explain": self.prediction.explain() if self.prediction is not None else None,
            "prediction": self.prediction.to_dict() if self.prediction is not None else None,
        }


@dataclass(frozen=True, slots=True)
class Warm:
    """A warm instance: deployed and ready on ``cluster``, serving no one yet."""

    ue: str
    app: str
    cluster: str
    since_s: float
    expires_at_s: float
    confidence: float


@dataclass(slots=True)
class WarmStats:
    """Counters for metrics and reports."""

    prewarmed: int = 0
    hits: int = 0
    misses: int = 0
    expired: int = 0
    used_s: float = 0.0
    wasted_s: float = 0.0
    quiet: dict[str, int] = field(default_factory=dict)


class WarmPool:
    """The warm instances of every UE, at most one per (UE, app), within the budgets."""

    def __init__(self, rules: PrewarmDoc) -> None:
        """An empty pool under ``rules`` (the policy's ``prewarm`` section)."""
        self.rules = rules
        self.stats = WarmStats()
        self._warm: dict[tuple[str, str], Warm] = {}
        self._per_cluster: dict[str, int] = {}
        self._per_app: dict[str, int] = {}
        self._expiry: list[tuple[float, str, str, float]] = []

    def __len__(self) -> int:
        return len(self._warm)

    def warm(self, ue: str, app: str) -> Warm | None:
        """The warm instance of ``app`` for ``ue``, if any."""
        return self._warm.get((ue, app))

    def instances(self) -> list[Warm]:
        """Every warm instance (what a fresh capacity ledger must count again)."""
        return list(self._warm.values())

    def on_cluster(self, cluster: str) -> int:
        """How many warm instances ``cluster`` holds."""
        return self._per_cluster.get(cluster, 0)

    def _quiet(self, verdict: Verdict, **kw: Any) -> Prewarm:
        self.stats.quiet[verdict.value] = self.stats.quiet.get(verdict.value, 0) + 1
        return Prewarm(verdict, **kw)

    def consider(
        self,
        now_s: float,
        bundle: Bundle,
        ue: str,
        app: str,
        source: str,
        prediction: Prediction | None,
        in_zone_s: float = 0.0,
        clock_s: float | None = None,
    ) -> Prewarm:
        """Whether to warm ``app`` for ``ue`` on the cluster that serves the predicted zone.

        Nothing changes until the caller :meth:`admit` s a ``PREWARM`` (after deploying it).

        Args:
            now_s: decision time.
            bundle: topology and policy; pass the capacity-corrected one (warm instances held
                in the ledger by :func:`hold`, this UE's own given back) so warm instances
                count against capacity once, like moves do.
            ue: the UE's pseudonym.
            app: the application.
            source: the cluster serving the UE now.
            prediction: where the UE goes next, None if the predictor has no idea.
            in_zone_s: how long the UE has been in its zone already.
            clock_s: the pool's clock now (see the module); ``now_s`` when None.
        """
        rules = self.rules
        base: dict[str, Any] = {"ue": ue, "app": app, "source": source, "at_s": now_s}
        if prediction is None:
            return self._quiet(
                Verdict.NO_PREDICTION, target=None, zone=None, confidence=0.0, **base
            )
        base.update(zone=prediction.location, confidence=prediction.confidence)
        base["prediction"] = prediction
        if prediction.evidence < rules.min_evidence:
            return self._quiet(Verdict.LOW_EVIDENCE, target=None, **base)
        if prediction.confidence < rules.min_confidence:
            return self._quiet(Verdict.LOW_CONFIDENCE, target=None, **base)
        # UEs that stay longer than a warm instance lives leave at a time nobody can tell (the
        # end of a working day), and so do UEs whose stays were never seen, or a UE that has
        # stayed longer than they do (it is not passing through): warming ahead there mostly
        # expires, again and again.
        stay_s = prediction.stay_s
        if stay_s is None or stay_s > rules.ttl_s or in_zone_s > stay_s:
            return self._quiet(Verdict.NOT_SOON, target=None, **base)
        if app not in bundle.topology.apps or prediction.location not in bundle.topology.zones:
            return self._quiet(Verdict.NO_CANDIDATE, target=None, **base)
        ev = bundle.evaluation(prediction.location, app, source)
        if ev.current is not None and ev.current.rejected is None and bundle.rules.stay_if_ok:
            return self._quiet(Verdict.SAME_CLUSTER, target=source, **base)
        best = ev.best
        if best is None:
            return self._quiet(Verdict.NO_CANDIDATE, target=None, **base)
        target = best.cluster
        if target == source:
            return self._quiet(Verdict.SAME_CLUSTER, target=target, **base)
        held = self._warm.get((ue, app))
        if held is not None and held.cluster == target:
            return self._quiet(Verdict.ALREADY_WARM, target=target, **base)
        if self._per_cluster.get(target, 0) >= rules.max_per_cluster:
            return self._quiet(Verdict.CLUSTER_BUDGET, target=target, **base)
        if self._per_app.get(app, 0) >= rules.max_per_app and held is None:
            return self._quiet(Verdict.APP_BUDGET, target=target, **base)
        expires_at_s = (now_s if clock_s is None else clock_s) + rules.ttl_s
        return Prewarm(Verdict.PREWARM, target=target, expires_at_s=expires_at_s, **base)

    def admit(self, decision: Prewarm) -> list[Prewarm]:
        """Count a ``PREWARM`` as warm from then on (its expiry less the TTL: the pool's clock).

        Returns:
            the end of the UE's previous warm instance of that app, if it had one elsewhere
            (a ``MISSED``: the prediction changed).
        """
        if decision.verdict is not Verdict.PREWARM or decision.target is None:
            raise ValueError("only a PREWARM with a target is admitted")
        assert decision.expires_at_s is not None
        since_s = decision.expires_at_s - self.rules.ttl_s
        ended = []
        old = self._warm.get((decision.ue, decision.app))
        if old is not None:
            ended.append(self._end(old, Verdict.MISSED, since_s, decision.source))
        warm = Warm(
            decision.ue,
            decision.app,
            decision.target,
            since_s,
            decision.expires_at_s,
            decision.confidence,
        )
        self._warm[(warm.ue, warm.app)] = warm
        self._per_cluster[warm.cluster] = self._per_cluster.get(warm.cluster, 0) + 1
        self._per_app[warm.app] = self._per_app.get(warm.app, 0) + 1
        heapq.heappush(self._expiry, (warm.expires_at_s, warm.ue, warm.app, warm.since_s))
        self.stats.prewarmed += 1
        return ended

    def _end(self, warm: Warm, verdict: Verdict, now_s: float, source: str) -> Prewarm:
        del self._warm[(warm.ue, warm.app)]
        self._per_cluster[warm.cluster] -= 1
        if not self._per_cluster[warm.cluster]:
            del self._per_cluster[warm.cluster]
        self._per_app[warm.app] -= 1
        if not self._per_app[warm.app]:
            del self._per_app[warm.app]
        # A time before the warm start (a late event) counts as zero, never negative.
        warm_s = max(0.0, now_s - warm.since_s)
        stats = self.stats
        if verdict is Verdict.USED:
            stats.hits += 1
            stats.used_s += warm_s
        else:
            stats.wasted_s += warm_s
            if verdict is Verdict.MISSED:
                stats.misses += 1
            else:
                stats.expired += 1
        return Prewarm(
            verdict,
            warm.ue,
            warm.app,
            source,
            warm.cluster,
            None,
            warm.confidence,
            now_s,
            warm_s=warm_s,
        )

    def arrive(self, now_s: float, ue: str, app: str, source: str, target: str) -> Prewarm | None:
        """A move of ``app`` from ``source`` to ``target`` was decided: use or drop its warm one.

        Returns:
            ``USED`` when ``target`` was warm (the move needs no deploy and no readiness wait),
            ``MISSED`` when another cluster was (that instance is to be removed), else None.
        """
        warm = self._warm.get((ue, app))
        if warm is None:
            return None
        verdict = Verdict.USED if warm.cluster == target else Verdict.MISSED
        return self._end(warm, verdict, now_s, source)

    def expire(self, now_s: float) -> list[Prewarm]:
        """End every warm instance whose TTL passed by ``now_s``, oldest deadline first."""
        ended = []
        heap = self._expiry
        while heap and heap[0][0] <= now_s:
            at_s, ue, app, since_s = heapq.heappop(heap)
            warm = self._warm.get((ue, app))
            # The heap keeps entries of instances already used or replaced: skip those.
            if warm is not None and warm.since_s == since_s and warm.expires_at_s == at_s:
                ended.append(self._end(warm, Verdict.EXPIRED, at_s, warm.cluster))
        return ended

    def revoke(self, now_s: float, ue: str, app: str) -> Prewarm | None:
        """End ``ue``'s warm instance of ``app`` now, as expired: whoever decides for the UE
        from now on (another consumer, after a rebalance) does not know it."""
        warm = self._warm.get((ue, app))
        return None if warm is None else self._end(warm, Verdict.EXPIRED, now_s, warm.cluster)

    def drain(self, now_s: float) -> list[Prewarm]:
        """End every warm instance now, as expired: the pool is closing (or the run is over)."""
        return [self._end(w, Verdict.EXPIRED, now_s, w.cluster) for w in list(self._warm.values())]

    def next_expiry_s(self) -> float | None:
        """When :meth:`expire` next has something to do (it may find the entry already gone)."""
        return self._expiry[0][0] if self._expiry else None


def relax(decision: Decision, bundle: Bundle, warm_cluster: str | None) -> Decision:
    """A move deferred only by the dwell rule goes ahead when its target is warm (by policy).

    With ``prewarm.warm_dwell_s`` set, a move to the warm cluster needs that dwell instead of the
    dwell rule's; cooldown and ping-pong still hold. Any other decision is returned as is.
    """
    rules = bundle.rules.prewarm
    if (
        rules is None
        or rules.warm_dwell_s is None
        or warm_cluster is None
        or decision.action is not Action.DEFER
        or decision.reason is not Reason.DWELL_NOT_REACHED
        or decision.target != warm_cluster
    ):
        return decision
    state = decision.state
    now_s = decision.decided_at_s
    if now_s - state.zone_since_s < rules.warm_dwell_s:
        return decision._replace(recheck_at_s=state.zone_since_s + rules.warm_dwell_s)
    spec = bundle.topology.apps[decision.app]
    full = bundle.rules.stateful if spec.stateful else bundle.rules.stateless
    gates = Gates(None, None, full.cooldown_s, full.ping_pong_s)
    blocked = _gate(now_s, gates, state, state.track(decision.app), warm_cluster)
    if blocked is not None:
        reason, recheck_at_s = blocked
        return decision._replace(reason=reason, recheck_at_s=recheck_at_s)
    moved = record(
        state,
        decision.app,
        Action.RELOCATE,
        Reason.RELOCATE_PREWARMED,
        now_s,
        source=decision.source,
    )
    return decision._replace(
        action=Action.RELOCATE, reason=Reason.RELOCATE_PREWARMED, recheck_at_s=None, state=moved
    )


class Prewarming:
    """Pre-warming around the policy's decisions: one per deciding process, like the ledger.

    The caller decides as usual, then, for each UE:

    1. :meth:`observed` with the UE's state before and after the report (the predictor learns
       every zone change);
    2. per decision, :meth:`relax` (a warm target skips the dwell rule), then :meth:`moved` for a
       relocation (the warm instance is used, or dropped if the move went elsewhere), and
       :meth:`ahead` (whether to warm the app where the UE goes next);
    3. now and then, :meth:`expire`.

    Every record these return that is not quiet (see :data:`QUIET`) belongs on the audit topic;
    quiet ones are counted in ``pool.stats.quiet``.
    """

    def __init__(self, rules: PrewarmDoc) -> None:
        """Empty predictor and pool under ``rules`` (the policy's ``prewarm`` section)."""
        self.model = Transitions(half_life_s=rules.half_life_s, min_evidence=rules.min_evidence)
        self.pool = WarmPool(rules)

    def observed(self, before: UeState | None, after: UeState, at_s: float) -> None:
        """Learn from a report: counts a transition when it changed the UE's zone."""
        if before is None or after.zone is None or after.zone == before.zone:
            return
        path, stayed = zone_path(after.recent)
        self.model.learn(path, at_s, stayed)

    def relax(self, decision: Decision, bundle: Bundle, ue: str) -> Decision:
        """:func:`relax` with this UE's warm instance of the decision's app."""
        warm = self.pool.warm(ue, decision.app)
        return relax(decision, bundle, warm.cluster if warm is not None else None)

    def moved(self, decision: Decision, ue: str, clock_s: float | None = None) -> Prewarm | None:
        """A relocation was decided: ``USED`` if its target was warm, ``MISSED`` if another was.

        ``clock_s`` is the pool's clock (the decision time when None).
        """
        if decision.action is not Action.RELOCATE or decision.target is None:
            return None
        now_s = decision.decided_at_s if clock_s is None else clock_s
        return self.pool.arrive(now_s, ue, decision.app, decision.source, decision.target)

    def bundle_for(self, bundle: Bundle, ue: str, apps: Iterable[str]) -> Bundle:
        """``bundle`` with ``ue``'s own warm instances of ``apps`` given back.

        The ledger counts every warm instance against capacity (:func:`hold`); the move that
        uses one, or the prewarm that replaces it, must not find it in its own way: a cluster
        with room for one more takes the UE whose warm instance already holds that room.
        """
        own = Ledger()
        for app in apps:
            warm = self.pool.warm(ue, app)
            if warm is not None:
                own.release(bundle, warm.cluster, app)
        return own.applied(bundle)

    def ahead(
        self, decision: Decision, bundle: Bundle, ue: str, clock_s: float | None = None
    ) -> list[Prewarm]:
        """Whether to warm the app where the UE goes next, once it serves from the UE's zone.

        Returns:
            the verdict (a ``PREWARM`` is admitted: the caller deploys it), preceded by the end
            of a warm instance it replaces; nothing when the app does not serve from the zone
            yet (a warm instance for the zone after next would be dropped by the next move).
        """
        if decision.action is Action.RELOCATE and decision.target is not None:
            source = decision.target
        elif decision.reason is Reason.CURRENT_OK:
            source = decision.source
        else:
            return []
        state = decision.state
        at_s = decision.decided_at_s
        path, _ = zone_path(state.recent)
        offer = self.pool.consider(
            at_s,
            bundle,
            ue,
            decision.app,
            source,
            self.model.predict(path, at_s),
            at_s - state.zone_since_s,
            clock_s,
        )
        if offer.verdict is not Verdict.PREWARM:
            return [offer]
        return [*self.pool.admit(offer), offer]

    def expire(self, at_s: float) -> list[Prewarm]:
        """Warm instances whose TTL passed by ``at_s``: the caller removes them."""
        return self.pool.expire(at_s)


def hold(ledger: Ledger, bundle: Bundle, records: Sequence[Prewarm]) -> None:
    """Count warm instances against capacity in ``ledger``: a ``PREWARM`` takes its target's
    share, its end gives it back (a used one's share passes to the move, which the ledger counts
    as a move). Quiet records change nothing."""
    for rec in records:
        if rec.target is None or rec.verdict in QUIET:
            continue
        if rec.verdict is Verdict.PREWARM:
            ledger.reserve(bundle, rec.target, rec.app)
        else:
            ledger.release(bundle, rec.target, rec.app)
