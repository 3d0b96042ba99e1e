"""The decision function: every rule and reason code, traces, drains and full clusters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from subscriber.decide.bundle import Bundle, make_bundle
from subscriber.decide.policy import (
    Action,
    Reason,
    Running,
    Tracked,
    decide,
    decide_all,
    evacuate,
    recheck,
)
from subscriber.decide.scoring import Rejection
from subscriber.decide.topology import ClusterState, Load, with_cluster
from tests.support.policy import at, build, example_doc, run_trace, set_cluster, up_path

VA = "video-analytics"  # stateful, 10 ms: dwell 10 s or 6 reports, cooldown 120 s, ping-pong 600 s


@dataclass
class Case:
    """One row: a UE's reports, the policy and topology tweaks, and the final decision wanted."""

    name: str
    trace: list[tuple[float, str]]
    want: tuple[Action, Reason, str | None]
    placement: tuple[str, str] = (VA, "edge-1")
    policy: dict[str, Any] = field(default_factory=dict)
    clusters: dict[str, dict[str, Any]] = field(default_factory=dict)
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    recheck_at_s: float | None = None


CASES = [
    Case("current cluster within budget", [(0, "tower-1")], (Action.STAY, Reason.CURRENT_OK, None)),
    Case(
        "stay-if-OK keeps a looser app where it is",
        [(0, "tower-1"), (1, "tower-2")],
        (Action.STAY, Reason.CURRENT_OK, None),
        placement=("ar-guide", "edge-1"),
    ),
    Case(
        "first report in a new zone waits for dwell",
        [(0, "tower-1"), (1, "tower-2")],
        (Action.DEFER, Reason.DWELL_NOT_REACHED, "edge-2"),
        recheck_at_s=11.0,
    ),
    Case(
        "dwell time reached: relocate to the best candidate",
        [(0, "tower-1"), (1, "tower-2"), (11, "tower-2")],
        (Action.RELOCATE, Reason.RELOCATE_BEST_CANDIDATE, "edge-2"),
    ),
    Case(
        "enough consecutive reports before the dwell time: relocate",
        [(0, "tower-1")] + [(1 + i * 0.5, "tower-2") for i in range(6)],
        (Action.RELOCATE, Reason.RELOCATE_BEST_CANDIDATE, "edge-2"),
    ),
    Case(
        "stateless apps need fewer reports (3, not 6)",
        [(0, "tower-1")] + [(1 + i * 0.5, "tower-2") for i in range(3)],
        (Action.RELOCATE, Reason.RELOCATE_BEST_CANDIDATE, "edge-2"),
        placement=("ar-guide", "edge-1"),
        apps={"ar-guide": {"latency_budget_ms": 10}},
    ),
    Case(
        "a stateful app with 3 reports still waits",
        [(0, "tower-1")] + [(1 + i * 0.5, "tower-2") for i in range(3)],
        (Action.DEFER, Reason.DWELL_NOT_REACHED, "edge-2"),
        recheck_at_s=11.0,
    ),
    Case(
        "dwell off: move on the first report",
        [(0, "tower-1"), (1, "tower-2")],
        (Action.RELOCATE, Reason.RELOCATE_BEST_CANDIDATE, "edge-2"),
        policy={"dwell": {"enabled": False}},
    ),
    Case(
        "dwell by reports only: no time to recheck at",
        [(0, "tower-1"), (1, "tower-2")],
        (Action.DEFER, Reason.DWELL_NOT_REACHED, "edge-2"),
        policy={"dwell": {"min_dwell_s": None, "min_reports": 2}},
    ),
    Case(
        "cooldown after a relocation holds the next move",
        [(0, "tower-1"), (1, "tower-2"), (11, "tower-2"), (12, "tower-1"), (40, "tower-1")],
        (Action.DEFER, Reason.COOLDOWN, "edge-1"),
        recheck_at_s=131.0,
    ),
    Case(
        "moving straight back after the cooldown is a ping-pong",
        [(0, "tower-1"), (1, "tower-2"), (11, "tower-2"), (12, "tower-1"), (200, "tower-1")],
        (Action.DEFER, Reason.PING_PONG_SUPPRESSED, "edge-1"),
        recheck_at_s=611.0,
    ),
    Case(
        "after the ping-pong window the move back is allowed",
        [(0, "tower-1"), (1, "tower-2"), (11, "tower-2"), (12, "tower-1"), (700, "tower-1")],
        (Action.RELOCATE, Reason.RELOCATE_BEST_CANDIDATE, "edge-1"),
    ),
    Case(
        "cooldown and ping-pong off: flip back at once",
        [(0, "tower-1"), (1, "tower-2"), (2, "tower-1")],
        (Action.RELOCATE, Reason.RELOCATE_BEST_CANDIDATE, "edge-1"),
        policy={
            "dwell": {"enabled": False},
            "cooldown": {"enabled": False},
            "ping_pong": {"enabled": False},
        },
    ),
    Case(
        "maintenance evacuates without movement or dwell",
        [(0, "tower-1")],
        (Action.RELOCATE, Reason.CLUSTER_MAINTENANCE, "regional-1"),
        clusters={"edge-1": {"state": "maintenance"}},
    ),
    Case(
        "draining evacuates too",
        [(0, "tower-1")],
        (Action.RELOCATE, Reason.CLUSTER_DRAINING, "regional-1"),
        clusters={"edge-1": {"state": "draining"}},
    ),
    Case(
        "evacuation off: maintenance only disqualifies the cluster, hysteresis applies",
        [(0, "tower-1")],
        (Action.DEFER, Reason.DWELL_NOT_REACHED, "regional-1"),
        clusters={"edge-1": {"state": "maintenance"}},
        policy={"evacuate": {"enabled": False}},
        recheck_at_s=10.0,
    ),
    Case(
        "draining ignored when only maintenance evacuates",
        [(0, "tower-1")],
        (Action.DEFER, Reason.DWELL_NOT_REACHED, "regional-1"),
        clusters={"edge-1": {"state": "draining"}},
        policy={"evacuate": {"on_draining": False}},
        recheck_at_s=10.0,
    ),
    Case(
        "a cluster gone from the topology is evacuated",
        [(0, "tower-1")],
        (Action.RELOCATE, Reason.CLUSTER_UNKNOWN, "edge-1"),
        placement=(VA, "edge-9"),
    ),
    Case(
        "evacuation with nowhere to go stays",
        [(0, "highway")],
        (Action.STAY, Reason.NO_CANDIDATE, None),
        clusters={"edge-1": {"state": "maintenance"}},
    ),
    Case(
        "no cluster within budget: stay, never an error",
        [(0, "tower-1"), (1, "highway"), (30, "highway")],
        (Action.STAY, Reason.NO_CANDIDATE, None),
    ),
    Case(
        "unmapped cell: stay",
        [(0, "tower-1"), (1, "nowhere")],
        (Action.STAY, Reason.UNKNOWN_CELL, None),
    ),
    Case(
        "unknown application: stay",
        [(0, "tower-1")],
        (Action.STAY, Reason.UNKNOWN_APP, None),
        placement=("no-such-app", "edge-1"),
    ),
    Case(
        "an event older than the last one is stale",
        [(10, "tower-1"), (5, "tower-2")],
        (Action.STAY, Reason.STALE_EVENT, None),
    ),
    Case(
        "stay-if-OK off: the current cluster still ranks first",
        [(0, "tower-1")],
        (Action.STAY, Reason.CURRENT_BEST, None),
        policy={"stay_if_ok": {"enabled": False}},
    ),
    Case(
        "stay-if-OK off: a better cluster wins",
        [(0, "tower-1")],
        (Action.RELOCATE, Reason.RELOCATE_BEST_CANDIDATE, "edge-1"),
        placement=(VA, "regional-1"),
        policy={"stay_if_ok": {"enabled": False}, "dwell": {"enabled": False}},
    ),
    Case(
        "stay-if-OK off: too small a gain is not worth a move",
        [(0, "tower-1")],
        (Action.STAY, Reason.IMPROVEMENT_TOO_SMALL, None),
        placement=(VA, "regional-1"),
        policy={
            "stay_if_ok": {"enabled": False},
            "improvement": {"enabled": True, "min_score_gain": 0.5},
        },
    ),
    Case(
        "a full cluster sends the app to the next best",
        [(0, "tower-1"), (1, "tower-2"), (11, "tower-2")],
        (Action.RELOCATE, Reason.RELOCATE_BEST_CANDIDATE, "regional-1"),
        clusters={"edge-2": {"load": {"cpu": 13, "memory_mib": 8192, "apps": 4}}},
    ),
    Case(
        "exactly at the capacity cap qualifies (at most, not under: docs/policy.md)",
        [(0, "tower-1"), (1, "tower-2"), (11, "tower-2")],
        (Action.RELOCATE, Reason.RELOCATE_BEST_CANDIDATE, "edge-2"),
        clusters={"edge-2": {"load": {"cpu": 10.8, "memory_mib": 8192, "apps": 4}}},
    ),
    Case(
        "just over the capacity cap does not",
        [(0, "tower-1"), (1, "tower-2"), (11, "tower-2")],
        (Action.RELOCATE, Reason.RELOCATE_BEST_CANDIDATE, "regional-1"),
        clusters={"edge-2": {"load": {"cpu": 10.81, "memory_mib": 8192, "apps": 4}}},
    ),
    Case(
        "the stateful factor multiplies min_reports too: 5 of 6 reports still wait",
        [(0, "tower-1")] + [(1 + i * 0.5, "tower-2") for i in range(5)],
        (Action.DEFER, Reason.DWELL_NOT_REACHED, "edge-2"),
        recheck_at_s=11.0,
    ),
    Case(
        "no free application slot counts as full",
        [(0, "tower-1"), (1, "tower-2"), (11, "tower-2")],
        (Action.RELOCATE, Reason.RELOCATE_BEST_CANDIDATE, "regional-1"),
        clusters={"edge-2": {"load": {"cpu": 1, "memory_mib": 1024, "apps": 12}}},
    ),
    Case(
        "capacity rule off: a busy cluster is still a candidate",
        [(0, "tower-1"), (1, "tower-2"), (11, "tower-2")],
        (Action.RELOCATE, Reason.RELOCATE_BEST_CANDIDATE, "edge-2"),
        clusters={"edge-2": {"load": {"cpu": 13, "memory_mib": 8192, "apps": 4}}},
        policy={"capacity": {"enabled": False}},
    ),
    Case(
        "required labels rule out a cluster (edge-3 has no GPU)",
        [(0, "tower-1"), (1, "tower-3"), (11, "tower-3")],
        (Action.RELOCATE, Reason.RELOCATE_BEST_CANDIDATE, "regional-1"),
    ),
    Case(
        "an allow-list rules out a cluster",
        [(0, "tower-1"), (1, "tower-2"), (11, "tower-2")],
        (Action.RELOCATE, Reason.RELOCATE_BEST_CANDIDATE, "regional-1"),
        apps={VA: {"allowed_clusters": ["edge-1", "regional-1"]}},
    ),
    Case(
        "a whole tracking area maps to a zone",
        [(0, "tower-1"), (1, "suburb"), (11, "suburb")],
        (Action.RELOCATE, Reason.RELOCATE_BEST_CANDIDATE, "regional-1"),
    ),
    Case(
        "a second cell of the same tower is the same zone",
        [(0, "tower-1"), (1, "tower-1b")],
        (Action.STAY, Reason.CURRENT_OK, None),
    ),
]


def _bundle(case: Case) -> Bundle:
    doc = example_doc()
    for cluster, changes in case.clusters.items():
        set_cluster(doc, cluster, **changes)
    for app in doc["applications"]:
        app.update(case.apps.get(app["name"], {}))
    return build(doc, case.policy)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_decision_table(case: Case) -> None:
    """Each row's trace ends in the expected action, reason, target and recheck time."""
    decisions = run_trace(_bundle(case), Running(*case.placement), case.trace)
    last = decisions[-1]
    assert (last.action, last.reason, last.target) == case.want
    if case.recheck_at_s is not None or last.action is Action.DEFER:
        assert last.recheck_at_s == case.recheck_at_s


def test_every_reason_code_is_covered() -> None:
    """The table exercises every reason code at least once."""
    # RELOCATE_PREWARMED comes from pre-warming's relax(), tested in test_prewarm.py.
    assert {c.want[1] for c in CASES} == set(Reason) - {Reason.RELOCATE_PREWARMED}


def test_decision_explains_itself(example: Bundle) -> None:
    """A decision carries the version, the current cluster's evaluation and ranked candidates."""
    d = run_trace(example, Running(VA, "edge-1"), [(0, "tower-1"), (1, "tower-2")])[-1]
    assert d.version == example.version
    assert d.zone == "zone-tower-2"
    assert d.current is not None
    assert d.current.rejected is Rejection.OVER_BUDGET
    assert d.current.latency_ms == 11.0
    accepted = [c.cluster for c in d.candidates if c.rejected is None]
    assert accepted == ["edge-2", "regional-1"]
    why = {c.cluster: c.rejected for c in d.candidates if c.rejected is not None}
    assert why == {
        "central-1": Rejection.NOT_ALLOWED,
        "edge-1": Rejection.OVER_BUDGET,
        "edge-3": Rejection.NOT_ALLOWED,
    }
    first = d.candidates[0]
    assert first.latency_score == pytest.approx(0.7 * 2 / 10)
    assert first.load_score == pytest.approx(0.3 * 0.5)
    assert first.score == pytest.approx(0.7 * 2 / 10 + 0.3 * 0.5)
    record = d.to_dict()
    assert record["action"] == "defer"
    assert record["reason"] == "DWELL_NOT_REACHED"
    assert record["candidates"][0] == {
        "cluster": "edge-2",
        "latency_ms": 2.0,
        "utilisation": 0.5,
        "latency_score": 0.14,
        "load_score": 0.15,
        "score": 0.29,
        "rejected": None,
        "current": False,
    }
    assert record["current"]["rejected"] == "OVER_BUDGET"


def test_ties_break_on_cluster_id() -> None:
    """Two identical clusters score the same; the smaller id wins."""
    doc = example_doc()
    twin = dict(next(c for c in doc["clusters"] if c["id"] == "edge-2"), id="edge-0", dnais=[])
    doc["clusters"].append(twin)
    doc["links"].append({"a": "zone-tower-2", "b": "edge-0", "latency_ms": 2})
    bundle = build(doc, {"dwell": {"enabled": False}})
    d = run_trace(bundle, Running(VA, "edge-1"), [(0, "tower-2")])[-1]
    assert d.candidates[0].score == d.candidates[1].score
    assert d.target == "edge-0"


def test_up_path_change_maps_dnai_to_zone(example: Bundle) -> None:
    """An SMF UP_PATH_CH event locates the UE by its target DNAI."""
    d = decide(5.0, example, Running(VA, "edge-1"), None, up_path("mec-tower-2", 5.0))
    assert d.zone == "zone-tower-2"
    assert (d.action, d.reason) == (Action.DEFER, Reason.DWELL_NOT_REACHED)


def test_border_oscillation_makes_one_relocation(example: Bundle) -> None:
    """A UE flapping between two towers for a minute, then settling, is relocated exactly once."""
    # As a 1 s poll-and-diff would record it: the serving cell flips every 1-3 s on the border.
    flaps = "1122121112212211121221211221112122121121221211212212112211212112"
    trace = [(float(t), "tower-1" if c == "1" else "tower-2") for t, c in enumerate(flaps)]
    trace += [(float(len(flaps) + t), "tower-2") for t in range(30)]
    decisions = run_trace(example, Running(VA, "edge-1"), trace)
    moves = [(d.decided_at_s, d.target) for d in decisions if d.action is Action.RELOCATE]
    assert len(moves) == 1
    assert moves[0][1] == "edge-2"
    assert moves[0][0] >= len(flaps)


def test_slow_oscillation_makes_one_relocation(example: Bundle) -> None:
    """Long stays on each side of the border still give one move: cooldown, then ping-pong hold."""
    trace = []
    t = 0.0
    for leg in range(8):
        place = "tower-2" if leg % 2 == 0 else "tower-1"
        for _ in range(15):  # 15 reports, 2 s apart: every leg passes the dwell on its own
            trace.append((t, place))
            t += 2.0
    decisions = run_trace(example, Running(VA, "edge-1"), trace)
    moves = [d for d in decisions if d.action is Action.RELOCATE]
    assert len(moves) == 1
    held = {d.reason for d in decisions if d.action is Action.DEFER}
    assert {Reason.COOLDOWN, Reason.PING_PONG_SUPPRESSED} <= held


def test_duplicate_report_is_not_counted_twice(example: Bundle) -> None:
    """The same report delivered twice counts once toward the dwell."""
    first = decide(1.0, example, Running(VA, "edge-1"), None, at("tower-2", 1.0))
    again = decide(1.0, example, Running(VA, "edge-1"), first.state, at("tower-2", 1.0))
    assert again.state.zone_reports == 1
    assert again.state == first.state


def test_decide_all_observes_once(example: Bundle) -> None:
    """Several apps of one UE share one observation of the event."""
    placements = [Running(VA, "edge-1"), Running("ar-guide", "edge-1")]
    decisions, state = decide_all(0.0, example, placements, None, at("tower-2", 0.0))
    assert [d.reason for d in decisions] == [Reason.DWELL_NOT_REACHED, Reason.CURRENT_OK]
    assert state is not None
    assert state.zone_reports == 1
    assert {t.app for t in state.apps} == {VA, "ar-guide"}
    stale, same = decide_all(-1.0, example, placements, state, at("tower-1", -1.0))
    assert {d.reason for d in stale} == {Reason.STALE_EVENT}
    assert same is state


def test_maintenance_drain_moves_every_app_off(example: Bundle) -> None:
    """Putting edge-1 in maintenance relocates every app on it, and no other app."""
    drained = with_cluster(example.topology, "edge-1", state=ClusterState.MAINTENANCE)
    bundle = make_bundle(drained, example.rules)
    tracked = [Tracked(f"ue-{i}", Running(VA, "edge-1"), None) for i in range(20)]
    tracked += [Tracked(f"ue-{i}", Running("ar-guide", "edge-1"), None) for i in range(20, 25)]
    tracked.append(Tracked("ue-other", Running(VA, "edge-2"), None))
    out = evacuate(100.0, bundle, tracked)
    assert len(out) == 25
    assert all(d.action is Action.RELOCATE for _, d in out)
    assert all(d.reason is Reason.CLUSTER_MAINTENANCE for _, d in out)
    assert all(d.target not in (None, "edge-1") for _, d in out)
    assert "ue-other" not in {ue for ue, _ in out}


def test_drain_does_not_overfill_the_target(example: Bundle) -> None:
    """A large drain fills regional-1 up to the cap, then reports NO_CANDIDATE for the rest."""
    drained = with_cluster(example.topology, "edge-1", state=ClusterState.DRAINING)
    bundle = make_bundle(drained, example.rules)
    tracked = [Tracked(f"ue-{i}", Running(VA, "edge-1"), None) for i in range(40)]
    out = evacuate(100.0, bundle, tracked)
    moved = [d for _, d in out if d.action is Action.RELOCATE]
    # regional-1: 48 of 128 CPUs used, 2 per app, cap 80 % = 102.4 CPUs -> 27 more apps.
    assert len(moved) == 27
    assert {d.target for d in moved} == {"regional-1"}
    assert [d.reason for _, d in out[27:]] == [Reason.NO_CANDIDATE] * 13


def test_evacuate_uses_the_ues_last_zone(example: Bundle) -> None:
    """An evacuated app goes where its UE is, not where the drained cluster stands."""
    seen = decide(0.0, example, Running(VA, "edge-1"), None, at("tower-2", 0.0)).state
    drained = with_cluster(example.topology, "edge-1", state=ClusterState.MAINTENANCE)
    bundle = make_bundle(drained, example.rules)
    [(ue, d)] = evacuate(1.0, bundle, [Tracked("ue", Running(VA, "edge-1"), seen)])
    assert ue == "ue"
    assert d.target == "edge-2"
    assert d.state.track(VA) is not None


def test_with_cluster_load_changes_the_version(example: Bundle) -> None:
    """New load figures make a new topology, so decisions record a new version."""
    busy = with_cluster(example.topology, "edge-2", load=Load(cpu=15, memory_mib=1024, apps=1))
    bundle = make_bundle(busy, example.rules)
    assert bundle.version != example.version
    d = run_trace(bundle, Running(VA, "edge-1"), [(0, "tower-1"), (1, "tower-2"), (11, "tower-2")])[
        -1
    ]
    assert d.target == "regional-1"
    assert d.version == bundle.version


def test_recheck_moves_a_ue_that_went_quiet(example: Bundle) -> None:
    """A deferral's recheck time, reached without new reports, lets the move happen."""
    placement = Running(VA, "edge-1")
    deferred = run_trace(example, placement, [(0, "tower-1"), (1, "tower-2")])[-1]
    assert deferred.recheck_at_s == 11.0
    early = recheck(10.0, example, placement, deferred.state)
    assert (early.action, early.reason) == (Action.DEFER, Reason.DWELL_NOT_REACHED)
    due = recheck(deferred.recheck_at_s, example, placement, deferred.state)
    assert (due.action, due.reason, due.target) == (
        Action.RELOCATE,
        Reason.RELOCATE_BEST_CANDIDATE,
        "edge-2",
    )
    assert recheck(0.5, example, placement, deferred.state).reason is Reason.STALE_EVENT


def test_rejected_candidates_nearest_first_and_trimmed(example: Bundle) -> None:
    """The ranking lists accepted clusters by score, then rejected ones by latency."""
    d = run_trace(example, Running(VA, "edge-1"), [(0, "tower-1"), (1, "tower-2")])[-1]
    assert [c.cluster for c in d.candidates] == [
        "edge-2",
        "regional-1",
        "edge-1",
        "edge-3",
        "central-1",
    ]
    record = d.to_dict(max_candidates=2)
    assert [c["cluster"] for c in record["candidates"]] == ["edge-2", "regional-1"]
    assert record["candidates_total"] == 5


def test_a_ranking_is_formatted_once_and_each_decision_lists_its_own(example: Bundle) -> None:
    """Decisions from the same ranking share its JSON form; a decision from another bundle (a
    cluster in maintenance) lists its own ranking, not one cached for the first."""
    path = [(0.0, "tower-1"), (1.0, "tower-2")]
    other = build(set_cluster(example_doc(), "edge-2", state="maintenance"))
    first = run_trace(example, Running(VA, "edge-1"), path)[-1]
    changed = run_trace(other, Running(VA, "edge-1"), path)[-1]
    again = run_trace(example, Running(VA, "edge-1"), path)[-1]
    assert first.to_dict()["candidates"] is again.to_dict()["candidates"]
    for d in (first, changed, again):
        assert d.to_dict()["candidates"] == [c.to_dict() for c in d.candidates[:8]]
    assert first.to_dict()["candidates"] != changed.to_dict()["candidates"]
