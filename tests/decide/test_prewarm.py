"""Pre-warming decisions: thresholds, budgets, TTL, hits and misses, and the relaxed dwell."""

from __future__ import annotations

import pytest

from subscriber.decide.bundle import Bundle
from subscriber.decide.ledger import Ledger
from subscriber.decide.policy import Action, Decision, Reason, Running, decide
from subscriber.decide.predict import Prediction
from subscriber.decide.prewarm import (
    QUIET,
    Prewarm,
    Prewarming,
    Verdict,
    WarmPool,
    hold,
    relax,
)
from subscriber.decide.rules import PrewarmDoc
from tests.support.policy import at, build, example_doc, run_trace, set_cluster

VA = "video-analytics"  # stateful, 10 ms: only the tower's own edge serves it
ON = {"prewarm": {"enabled": True, "max_per_cluster": 2, "max_per_app": 3, "ttl_s": 60}}
UE = "ue-7f3a"  # a pseudonym, as the consumer passes


def _to(zone: str, confidence: float = 0.9, evidence: float = 10.0) -> Prediction:
    return Prediction(zone, confidence, evidence, ("zone-tower-3", "zone-tower-1"), stay_s=60.0)


@pytest.fixture
def bundle() -> Bundle:
    """The example topology with pre-warming on."""
    return build(policy=ON)


def _pool(bundle: Bundle) -> WarmPool:
    assert bundle.rules.prewarm is not None
    return WarmPool(bundle.rules.prewarm)


def test_confident_prediction_warms_the_predicted_zones_cluster(bundle: Bundle) -> None:
    """Tower 1 -> tower 2 at 90 % warms edge-2, with reason, confidence and TTL on the record."""
    pool = _pool(bundle)
    p = pool.consider(100.0, bundle, UE, VA, "edge-1", _to("zone-tower-2"))
    assert (p.verdict, p.target, p.expires_at_s) == (Verdict.PREWARM, "edge-2", 160.0)
    doc = p.to_dict()
    assert doc["verdict"] == "PREWARM"
    assert doc["confidence"] == 0.9
    assert doc["explain"].startswith("after zone-tower-3 -> zone-tower-1: 90% of")
    assert len(pool) == 0  # considering changes nothing until admitted


@pytest.mark.parametrize(
    ("prediction", "source", "app", "want"),
    [
        (None, "edge-1", VA, Verdict.NO_PREDICTION),
        (_to("zone-tower-2", confidence=0.5), "edge-1", VA, Verdict.LOW_CONFIDENCE),
        (_to("zone-tower-2", evidence=1.0), "edge-1", VA, Verdict.LOW_EVIDENCE),
        (_to("zone-tower-1"), "edge-1", VA, Verdict.SAME_CLUSTER),
        (_to("zone-tower-2"), "edge-1", "ar-guide", Verdict.SAME_CLUSTER),  # edge-1 still OK
        (_to("zone-nowhere"), "edge-1", VA, Verdict.NO_CANDIDATE),
        (_to("zone-tower-2"), "edge-1", "no-such-app", Verdict.NO_CANDIDATE),
    ],
)
def test_quiet_verdicts(
    bundle: Bundle, prediction: Prediction | None, source: str, app: str, want: Verdict
) -> None:
    """Each failed test has its own verdict, counted, and nothing is warmed."""
    pool = _pool(bundle)
    p = pool.consider(0.0, bundle, UE, app, source, prediction)
    assert p.verdict is want
    assert want in QUIET
    assert pool.stats.quiet == {want.value: 1}


def test_a_long_expected_stay_waits(bundle: Bundle) -> None:
    """Where UEs stay half an hour (at work), a warm instance would expire first: quiet."""
    pool = _pool(bundle)
    at_work = Prediction("zone-tower-2", 0.95, 20.0, ("zone-tower-1",), stay_s=1800.0)
    assert pool.consider(0.0, bundle, UE, VA, "edge-1", at_work).verdict is Verdict.NOT_SOON
    on_the_way = Prediction("zone-tower-2", 0.95, 20.0, ("zone-tower-1",), stay_s=59.0)
    assert pool.consider(0.0, bundle, UE, VA, "edge-1", on_the_way).verdict is Verdict.PREWARM
    stayed_on = pool.consider(120.0, bundle, UE, VA, "edge-1", on_the_way, in_zone_s=60.0)
    assert stayed_on.verdict is Verdict.NOT_SOON  # longer than passers-by: not passing through
    never_left = Prediction("zone-tower-2", 0.95, 20.0, ("zone-tower-1",), stay_s=None)
    assert pool.consider(0.0, bundle, UE, VA, "edge-1", never_left).verdict is Verdict.NOT_SOON


def test_a_full_cluster_is_not_warmed() -> None:
    """Capacity counts: a target with no app slot left is not warmed; the next best one is."""
    doc = set_cluster(example_doc(), "edge-2", load={"cpu": 6, "memory_mib": 12288, "apps": 12})
    bundle = build(doc, policy=ON)
    pool = _pool(bundle)
    p = pool.consider(0.0, bundle, UE, VA, "edge-1", _to("zone-tower-2"))
    assert (p.verdict, p.target) == (Verdict.PREWARM, "regional-1")


def test_budgets_per_cluster_and_per_app(bundle: Bundle) -> None:
    """Two warm on edge-2 fill its budget; three warm of one app fill the app's."""
    pool = _pool(bundle)
    for ue in ("u1", "u2"):
        pool.admit(pool.consider(0.0, bundle, ue, VA, "edge-1", _to("zone-tower-2")))
    third = pool.consider(0.0, bundle, "u3", VA, "edge-1", _to("zone-tower-2"))
    assert third.verdict is Verdict.CLUSTER_BUDGET
    pool.admit(pool.consider(0.0, bundle, "u3", VA, "edge-2", _to("zone-tower-1")))
    fourth = pool.consider(0.0, bundle, "u4", VA, "edge-2", _to("zone-tower-3"))
    assert fourth.verdict is Verdict.APP_BUDGET
    assert (pool.on_cluster("edge-2"), pool.on_cluster("edge-1"), len(pool)) == (2, 1, 3)


def test_hit_miss_and_expiry_account_warm_seconds(bundle: Bundle) -> None:
    """A used instance counts as useful time, a missed or expired one as waste."""
    pool = _pool(bundle)
    pool.admit(pool.consider(0.0, bundle, "hit", VA, "edge-1", _to("zone-tower-2")))
    pool.admit(pool.consider(0.0, bundle, "miss", VA, "edge-1", _to("zone-tower-2")))
    pool.admit(pool.consider(10.0, bundle, "idle", VA, "edge-2", _to("zone-tower-1")))
    used = pool.arrive(30.0, "hit", VA, "edge-1", "edge-2")
    missed = pool.arrive(40.0, "miss", VA, "edge-1", "edge-3")
    assert used is not None
    assert (used.verdict, used.warm_s) == (Verdict.USED, 30.0)
    assert missed is not None
    assert (missed.verdict, missed.warm_s) == (Verdict.MISSED, 40.0)
    assert pool.arrive(41.0, "nobody", VA, "edge-1", "edge-2") is None
    assert pool.expire(69.0) == []
    (expired,) = pool.expire(1000.0)
    assert (expired.verdict, expired.warm_s, expired.at_s) == (Verdict.EXPIRED, 60.0, 70.0)
    s = pool.stats
    assert (s.prewarmed, s.hits, s.misses, s.expired) == (3, 1, 1, 1)
    assert (s.used_s, s.wasted_s) == (30.0, 100.0)
    assert len(pool) == 0
    assert pool.on_cluster("edge-2") == 0


def test_used_instance_does_not_expire_later(bundle: Bundle) -> None:
    """The expiry heap's entry of a used instance is skipped, even if warmed again since."""
    pool = _pool(bundle)
    pool.admit(pool.consider(0.0, bundle, UE, VA, "edge-1", _to("zone-tower-2")))
    pool.arrive(5.0, UE, VA, "edge-1", "edge-2")
    pool.admit(pool.consider(10.0, bundle, UE, VA, "edge-2", _to("zone-tower-1")))
    assert pool.expire(60.0) == []  # the first one's deadline
    assert [e.target for e in pool.expire(70.0)] == ["edge-1"]


def test_a_new_target_replaces_the_old_as_a_miss(bundle: Bundle) -> None:
    """A changed prediction ends the old warm instance (waste) before warming the new one."""
    pool = _pool(bundle)
    pool.admit(pool.consider(0.0, bundle, UE, VA, "edge-1", _to("zone-tower-2")))
    again = pool.consider(5.0, bundle, UE, VA, "edge-1", _to("zone-tower-2"))
    assert again.verdict is Verdict.ALREADY_WARM
    (ended,) = pool.admit(pool.consider(8.0, bundle, UE, VA, "edge-1", _to("zone-tower-3")))
    assert (ended.verdict, ended.target, ended.warm_s) == (Verdict.MISSED, "edge-2", 8.0)
    assert pool.warm(UE, VA) is not None
    assert pool.warm(UE, VA).cluster == "regional-1"


def test_only_a_prewarm_is_admitted(bundle: Bundle) -> None:
    """Admitting a quiet verdict is a programming error, not a silent warm instance."""
    pool = _pool(bundle)
    with pytest.raises(ValueError, match="only a PREWARM"):
        pool.admit(pool.consider(0.0, bundle, UE, VA, "edge-1", None))


def test_max_length_ue_and_late_times(bundle: Bundle) -> None:
    """A 4 KiB UE key and an arrival before the warm start count zero seconds, not negative."""
    pool = _pool(bundle)
    ue = "x" * 4096
    pool.admit(pool.consider(100.0, bundle, ue, VA, "edge-1", _to("zone-tower-2")))
    used = pool.arrive(50.0, ue, VA, "edge-1", "edge-2")
    assert used is not None
    assert used.warm_s == 0.0
    assert pool.stats.used_s == 0.0


def test_relaxed_dwell_moves_at_once_to_a_warm_target(bundle: Bundle) -> None:
    """The first report in tower 2 defers for dwell, unless edge-2 is warm: then it relocates."""
    (*_, first) = run_trace(bundle, Running(VA, "edge-1"), [(0, "tower-1"), (1, "tower-2")])
    assert (first.action, first.reason) == (Action.DEFER, Reason.DWELL_NOT_REACHED)
    assert relax(first, bundle, None) is first
    assert relax(first, bundle, "edge-3") is first
    moved = relax(first, bundle, "edge-2")
    assert (moved.action, moved.reason, moved.target) == (
        Action.RELOCATE,
        Reason.RELOCATE_PREWARMED,
        "edge-2",
    )
    track = moved.state.track(VA)
    assert track is not None
    assert track.last_relocation_s == 1.0


def test_relaxed_dwell_keeps_cooldown_and_its_own_dwell() -> None:
    """warm_dwell_s still waits; a recent move still cools down; off by policy means no relax."""
    waits = build(policy={"prewarm": {"enabled": True, "warm_dwell_s": 3}})
    (*_, first) = run_trace(waits, Running(VA, "edge-1"), [(0, "tower-1"), (1, "tower-2")])
    held = relax(first, waits, "edge-2")
    assert (held.action, held.recheck_at_s) == (Action.DEFER, 4.0)
    strict = build(policy={"prewarm": {"enabled": True, "warm_dwell_s": None}})
    (*_, first) = run_trace(strict, Running(VA, "edge-1"), [(0, "tower-1"), (1, "tower-2")])
    assert relax(first, strict, "edge-2") is first
    off = build()
    (*_, first) = run_trace(off, Running(VA, "edge-1"), [(0, "tower-1"), (1, "tower-2")])
    assert relax(first, off, "edge-2") is first


def test_relaxed_dwell_respects_cooldown(bundle: Bundle) -> None:
    """Moved to edge-2 at 11 s, back towards tower 3 at 20 s: cooldown holds even when warm."""
    trace = [(0, "tower-1"), (1, "tower-2"), (11, "tower-2"), (20, "tower-3")]
    decisions = run_trace(bundle, Running(VA, "edge-1"), trace)
    assert decisions[2].action is Action.RELOCATE
    last = decisions[-1]
    assert last.reason is Reason.DWELL_NOT_REACHED
    held = relax(last._replace(source="edge-2"), bundle, last.target)
    assert (held.action, held.reason) == (Action.DEFER, Reason.COOLDOWN)


def test_policy_version_unchanged_while_off() -> None:
    """Adding the option keeps every existing policy's version; turning it on changes it."""
    assert build().version == build(policy={"prewarm": {"enabled": False, "ttl_s": 5}}).version
    assert build().version != build(policy=ON).version
    assert build().rules.prewarm is None


def test_bad_prewarm_settings_are_refused() -> None:
    """A confidence above 1 or a zero TTL is a policy error naming the field."""
    from subscriber.errors import PolicyUnavailable

    with pytest.raises(PolicyUnavailable, match=r"prewarm\.min_confidence"):
        build(policy={"prewarm": {"min_confidence": 1.5}})
    with pytest.raises(PolicyUnavailable, match=r"prewarm\.ttl_s"):
        build(policy={"prewarm": {"ttl_s": 0}})
    assert PrewarmDoc().enabled is False


def _commute(
    warming: Prewarming, bundle: Bundle, ue: str, t0: float, places: list[str]
) -> list[tuple[Decision, list[Prewarm], Prewarm | None]]:
    """One UE's reports at ``places``, 200 s apart (past the cooldown), through pre-warming."""
    state, cluster, out = None, "edge-3", []
    for i, place in enumerate(places):
        t = t0 + 200.0 * i
        d = decide(t, bundle, Running(VA, cluster), state, at(place, t, ue=f"imsi-{ue}"))
        warming.observed(state, d.state, t)
        d = warming.relax(d, bundle, ue)
        used = warming.moved(d, ue)
        out.append((d, warming.ahead(d, bundle, ue), used))
        state = d.state
        if d.action is Action.RELOCATE and d.target is not None:
            cluster = d.target
    return out


def test_prewarming_learns_warms_and_uses(bundle: Bundle) -> None:
    """After commuters went tower 3, 1, 2, the next one is warmed on edge-2 and moves at once."""
    warming = Prewarming(PrewarmDoc(enabled=True, min_evidence=3, half_life_s=86400, ttl_s=1000))
    route = ["tower-3", "tower-1", "tower-1", "tower-2", "tower-2"]
    for k in range(6):
        _commute(warming, bundle, f"20893000000000{k}", 1000.0 * k, route)
    steps = _commute(warming, bundle, "208930000000009", 10_000.0, route)
    (d1, ahead1, _), (d2, ahead2, _), (d3, _, used) = steps[1], steps[2], steps[3]
    assert (d1.action, d1.reason) == (Action.DEFER, Reason.DWELL_NOT_REACHED)
    assert ahead1 == []  # the app does not serve from tower 1 yet
    assert d2.action is Action.RELOCATE
    (offer,) = ahead2
    assert (offer.verdict, offer.target, offer.zone) == (
        Verdict.PREWARM,
        "edge-2",
        "zone-tower-2",
    )
    assert offer.to_dict()["explain"].startswith("after zone-tower-3 -> zone-tower-1: 100% of")
    assert (d3.action, d3.reason, d3.target) == (
        Action.RELOCATE,
        Reason.RELOCATE_PREWARMED,
        "edge-2",
    )
    assert used is not None
    assert (used.verdict, used.warm_s) == (Verdict.USED, 200.0)
    assert "imsi" not in str(offer.to_dict())  # the pool only ever sees the pseudonym


def test_prewarming_expires_unused(bundle: Bundle) -> None:
    """A warm instance whose UE never comes expires after the TTL, as waste."""
    warming = Prewarming(PrewarmDoc(enabled=True, min_evidence=3, ttl_s=500, half_life_s=86400))
    route = ["tower-3", "tower-1", "tower-1", "tower-2", "tower-2"]
    for k in range(6):
        _commute(warming, bundle, f"20893000000000{k}", 1000.0 * k, route)
    _commute(warming, bundle, "208930000000009", 10_000.0, route[:3])
    (gone,) = warming.expire(20_000.0)
    assert (gone.verdict, gone.warm_s) == (Verdict.EXPIRED, 500.0)
    assert warming.pool.stats.wasted_s == 500.0


def test_warm_instances_count_against_capacity() -> None:
    """edge-2 with room for two more apps: two warm instances held in the ledger fill it, the
    third UE's app is warmed on the next best cluster; a used one's room passes to its move."""
    doc = set_cluster(example_doc(), "edge-2", load={"cpu": 6, "memory_mib": 12288, "apps": 10})
    base = build(doc, policy={"prewarm": {"enabled": True, "max_per_cluster": 10}})
    pool, ledger = _pool(base), Ledger()

    def offer(ue: str, t: float) -> Prewarm:
        p = pool.consider(t, ledger.applied(base), ue, VA, "edge-1", _to("zone-tower-2"))
        if p.verdict is Verdict.PREWARM:
            pool.admit(p)
            hold(ledger, base, [p])
        return p

    assert [offer(ue, 0.0).target for ue in ("u1", "u2")] == ["edge-2", "edge-2"]
    assert ledger.extra["edge-2"].apps == 2
    assert offer("u3", 0.0).target == "regional-1"
    used = pool.arrive(5.0, "u1", VA, "edge-1", "edge-2")
    assert used is not None
    hold(ledger, base, [used])
    ledger.moved(base, VA, "edge-1", "edge-2")  # the move takes the room the warm one held
    assert ledger.extra["edge-2"].apps == 2
