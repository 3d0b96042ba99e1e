"""The pre-warming study: commuters are served from the new edge at once, walkers cost nothing."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import yaml

from subscriber.decide.bundle import Bundle, load_bundle
from subscriber.sre.prewarm import STUDY_POLICY, Timing, grid_topology, study, study_inputs
from subscriber.sre.simulate import Move

HOURS = 4


@functools.cache
def _inputs(model: str) -> tuple[Bundle, list[Move]]:
    """The benchmark's network, policy and one seed of 200 UEs over four hours."""
    bundle, moves = study_inputs(model, 200, HOURS * 3600.0, 1)
    return bundle, moves


def _with(**prewarm: object) -> Bundle:
    policy = {**STUDY_POLICY, "prewarm": {**STUDY_POLICY["prewarm"], **prewarm}}
    return load_bundle(grid_topology(8, 8), yaml.safe_dump(policy))


def test_commuters_are_served_at_once_with_little_waste() -> None:
    """Median roam -> served at least 5x shorter with pre-warming, waste at most 20 % of use."""
    bundle, moves = _inputs("commute")
    without = study(bundle, moves, prewarm=False).summary()
    with_ = study(bundle, moves, prewarm=True).summary()
    assert without["median_s"] == pytest.approx(11.08)  # 10 s of dwell, then a 1.08 s move
    assert with_["median_s"] * 5 <= without["median_s"]
    assert with_["prewarmed_share"] > 0.5
    assert with_["waste_ratio"] <= 0.2
    assert with_["hits"] > 10 * with_["misses"]
    assert with_["audit"]["PREWARM"] == with_["prewarms"]


def test_random_walkers_keep_it_quiet() -> None:
    """Walkers give the predictor nothing: almost no warm instance, next to no warm time."""
    bundle, moves = _inputs("walk")
    with_ = study(bundle, moves, prewarm=True).summary()
    assert with_["prewarms"] <= 0.01 * with_["roams"]
    assert with_["audit"]["LOW_CONFIDENCE"] > 50 * with_["prewarms"]
    warm_s = with_["warm_used_s"] + with_["warm_wasted_s"]
    assert warm_s <= 0.02 * HOURS * 3600 * 64  # under 2 % of one warm instance per cluster


def test_no_relaxed_dwell_still_saves_the_readiness_wait() -> None:
    """With the dwell rule kept for warm targets, a hit saves the deploy and readiness only."""
    _, moves = _inputs("commute")
    with_ = study(_with(warm_dwell_s=None), moves, prewarm=True).summary()
    assert with_["median_s"] == pytest.approx(10.04)


def test_slow_readiness_counts_in_a_hit() -> None:
    """A warm instance still starting when the UE arrives makes the move wait for it."""
    bundle, moves = _inputs("commute")
    slow = study(bundle, moves, prewarm=True, timing=Timing(ready_s=1000.0)).summary()
    assert slow["median_s"] > 100


def test_tight_budget_binds() -> None:
    """One warm instance per cluster: fewer pre-warmed moves, budget refusals on the audit."""
    bundle, moves = _inputs("commute")
    tight = study(_with(max_per_cluster=1), moves, prewarm=True).summary()
    roomy = study(bundle, moves, prewarm=True).summary()
    assert tight["audit"]["CLUSTER_BUDGET"] > 0
    assert tight["prewarms"] < roomy["prewarms"]


def test_prewarm_needs_the_policy_section() -> None:
    """Asking for pre-warming under a policy with it off is an error, not a silent baseline."""
    off = load_bundle(grid_topology(3, 3), None)
    with pytest.raises(ValueError, match=r"prewarm\.enabled: false"):
        study(off, [], prewarm=True)
    assert study(off, [], prewarm=False).summary()["roams"] == 0


def test_shadow_runs_prewarming_as_the_consumer_would(tmp_path: Path) -> None:
    """``shadow`` with a pre-warming policy reports its hits and relaxed moves; without, none."""
    from subscriber.sre.shadow import auto_instances, run_policy
    from subscriber.sre.simulate import DEFAULT_START, Mobility, to_recording
    from subscriber.sre.whatif import recorded_events

    bundle, moves = study_inputs("commute", 60, 2 * 3600.0, 2)
    path = tmp_path / "commute.jsonl.gz"
    params = Mobility(ues=60, duration_s=2 * 3600.0)
    to_recording(
        path,
        moves,
        params,
        start=DEFAULT_START,
        correlation_id="sim-1",
        callbacks=False,
        source={"type": "simulate"},
    )
    _, events = recorded_events(path)
    end_s = events[-1].event_time.timestamp()
    off = load_bundle(grid_topology(8, 8), yaml.safe_dump({"cooldown": {"cooldown_s": 10}}))
    outcomes = [
        run_policy(events, b, auto_instances(b, ["video"]), label=name, end_s=end_s).summary()
        for name, b in (("off", off), ("on", bundle))
    ]
    without, with_ = outcomes
    assert "prewarm" not in without
    assert "RELOCATE_PREWARMED" not in without["decisions_by_reason"]
    assert with_["prewarm"]["hits"] > 0
    assert with_["decisions_by_reason"]["RELOCATE_PREWARMED"] >= with_["prewarm"]["hits"] // 2
    assert with_["prewarm"]["warm_used_s"] > with_["prewarm"]["warm_wasted_s"]
