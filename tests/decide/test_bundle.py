"""Bundles: the content-hash version and memoized evaluations."""

from __future__ import annotations

from subscriber.decide.bundle import load_bundle
from tests.support.policy import EXAMPLE_POLICY, EXAMPLE_TOPOLOGY


def test_version_ignores_comments_and_formatting() -> None:
    """Reformatting or commenting the files keeps the version."""
    topology = EXAMPLE_TOPOLOGY.read_text()
    a = load_bundle(topology, EXAMPLE_POLICY.read_text())
    b = load_bundle("# a comment\n" + topology + "\n\n", EXAMPLE_POLICY.read_text() + "# end\n")
    assert a.version == b.version
    assert len(a.version) == 16


def test_version_changes_with_substance() -> None:
    """Any change of a value, in either file, changes the version."""
    topology = EXAMPLE_TOPOLOGY.read_text()
    base = load_bundle(topology).version
    assert load_bundle(topology.replace("latency_ms: 9", "latency_ms: 8")).version != base
    assert load_bundle(topology, "cooldown: {cooldown_s: 61}").version != base
    assert load_bundle(topology, "label: just a new label").version == base


def test_evaluations_are_memoized() -> None:
    """The same (zone, app, current) evaluation is computed once per bundle."""
    bundle = load_bundle(EXAMPLE_TOPOLOGY.read_bytes())
    first = bundle.evaluation("zone-tower-2", "video-analytics", "edge-1")
    assert bundle.evaluation("zone-tower-2", "video-analytics", "edge-1") is first
    other = bundle.evaluation("zone-tower-2", "video-analytics", "edge-2")
    assert other.ranked is first.ranked
    assert other.current is not None
    assert other.current.cluster == "edge-2"
    assert other.best_other is not None
    assert other.best_other.cluster == "regional-1"
