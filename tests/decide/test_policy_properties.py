"""Properties of the decision function over generated topologies, policies and UE traces."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from subscriber.decide.bundle import Bundle, make_bundle
from subscriber.decide.policy import Action, Decision, Running, Tracked, evacuate
from subscriber.decide.rules import RulesDoc, compile_rules
from subscriber.decide.topology import ClusterState, TopologyDoc, compile_topology
from tests.support.policy import PLACES, example_doc, run_trace

CLUSTERS = [c["id"] for c in example_doc()["clusters"]]
APPS = [a["name"] for a in example_doc()["applications"]]
FAST = settings(max_examples=150, deadline=None, database=None)


@st.composite
def topologies(draw: st.DrawFn) -> dict[str, Any]:
    """The example topology with random cluster states, loads and app budgets."""
    doc = example_doc()
    for c in doc["clusters"]:
        cap = c["capacity"]
        c["state"] = draw(st.sampled_from([s.value for s in ClusterState]))
        c["load"] = {
            "cpu": draw(st.floats(0, cap["cpu"] * 1.1)),
            "memory_mib": draw(st.integers(0, int(cap["memory_mib"] * 1.1))),
            "apps": draw(st.integers(0, cap["app_slots"])),
        }
    for a in doc["applications"]:
        a["latency_budget_ms"] = draw(st.sampled_from([3, 5, 8, 10, 12, 20, 40]))
    return doc


policies = st.fixed_dictionaries(
    {
        "stay_if_ok": st.fixed_dictionaries({"enabled": st.booleans()}),
        "capacity": st.fixed_dictionaries(
            {"enabled": st.booleans(), "max_utilisation": st.sampled_from([0.5, 0.8, 0.95, 1.0])}
        ),
        "score": st.fixed_dictionaries(
            {"latency_weight": st.sampled_from([0.0, 0.5, 1.0]), "load_weight": st.just(0.5)}
        ),
        "improvement": st.fixed_dictionaries({"enabled": st.booleans()}),
        "dwell": st.fixed_dictionaries({"enabled": st.booleans()}),
        "ping_pong": st.fixed_dictionaries({"enabled": st.booleans()}),
        "cooldown": st.fixed_dictionaries({"enabled": st.booleans()}),
        "evacuate": st.fixed_dictionaries({"enabled": st.booleans()}),
    }
)

traces = st.lists(
    st.tuples(st.floats(0, 30), st.sampled_from(sorted(PLACES))), min_size=1, max_size=15
).map(lambda steps: [(sum(dt for dt, _ in steps[: i + 1]), p) for i, (_, p) in enumerate(steps)])

placements = st.builds(
    Running, st.sampled_from([*APPS, "unknown-app"]), st.sampled_from([*CLUSTERS, "edge-9"])
)


def _bundle(doc: dict[str, Any], policy: dict[str, Any]) -> Bundle:
    return make_bundle(
        compile_topology(TopologyDoc.model_validate(doc)),
        compile_rules(RulesDoc.model_validate(policy)),
    )


def _assert_target_valid(bundle: Bundle, d: Decision) -> None:
    """A proposed target is active, allowed, within budget, and under the capacity cap."""
    if d.target is None:
        return
    topo = bundle.topology
    cluster = topo.clusters[d.target]
    app = topo.apps[d.app]
    assert d.target != d.source
    assert cluster.state is ClusterState.ACTIVE
    assert app.allows(cluster)
    assert d.zone is not None
    assert topo.latency_ms[d.zone][d.target] <= app.latency_budget_ms
    cap = bundle.rules.max_utilisation
    if cap is not None:
        assert (cluster.cpu_used + app.cpu) / cluster.cpu <= cap
        assert (cluster.memory_used_mib + app.memory_mib) / cluster.memory_mib <= cap
        assert cluster.apps_used + 1 <= cluster.app_slots


@FAST
@given(topologies(), policies, placements, traces)
def test_targets_are_always_valid(
    doc: dict[str, Any], policy: dict[str, Any], placement: Running, trace: list[Any]
) -> None:
    """No decision ever targets a cluster in maintenance or draining, full, or over budget."""
    bundle = _bundle(doc, policy)
    for d in run_trace(bundle, placement, trace):
        _assert_target_valid(bundle, d)
        if d.action is Action.RELOCATE:
            assert d.target is not None
        assert d.version == bundle.version


@FAST
@given(topologies(), policies, placements, traces)
def test_same_inputs_same_decisions(
    doc: dict[str, Any], policy: dict[str, Any], placement: Running, trace: list[Any]
) -> None:
    """Two runs over independently built bundles give identical decisions and states."""
    first = run_trace(_bundle(doc, policy), placement, trace)
    second = run_trace(_bundle(doc, policy), placement, trace)
    assert first == second
    assert [d.to_dict() for d in first] == [d.to_dict() for d in second]


@FAST
@given(
    topologies(),
    policies,
    st.lists(st.tuples(st.sampled_from(APPS), st.sampled_from(CLUSTERS)), max_size=40),
)
def test_evacuation_respects_capacity_across_the_batch(
    doc: dict[str, Any], policy: dict[str, Any], apps: list[tuple[str, str]]
) -> None:
    """A drain never targets a disabled cluster and never fills one past the cap in total."""
    bundle = _bundle(doc, policy)
    topo = bundle.topology
    tracked = [Tracked(f"ue-{i}", Running(a, c), None) for i, (a, c) in enumerate(apps)]
    added: dict[str, list[float]] = {}
    for _, d in evacuate(0.0, bundle, tracked):
        assert topo.clusters[d.source].state is not ClusterState.ACTIVE
        assert d.action in (Action.RELOCATE, Action.STAY)
        if d.target is None:
            continue
        cluster, app = topo.clusters[d.target], topo.apps[d.app]
        assert cluster.state is ClusterState.ACTIVE
        assert topo.latency_ms[d.zone or ""][d.target] <= app.latency_budget_ms
        cpu, mem, n = added.setdefault(d.target, [0.0, 0.0, 0.0])
        added[d.target] = [cpu + app.cpu, mem + app.memory_mib, n + 1]
    cap = bundle.rules.max_utilisation
    for cid, (cpu, mem, n) in added.items():
        cluster = topo.clusters[cid]
        if cap is not None:
            assert (cluster.cpu_used + cpu) / cluster.cpu <= cap + 1e-9
            assert (cluster.memory_used_mib + mem) / cluster.memory_mib <= cap + 1e-9
            assert cluster.apps_used + n <= cluster.app_slots
