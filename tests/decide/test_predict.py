"""The next-location predictor: what it learns, how it forgets, and that nothing breaks it."""

from __future__ import annotations

import math
import tracemalloc

import pytest

from subscriber.decide.predict import Transitions, zone_path


def _route(model: Transitions, path: list[str], t0: float, step_s: float = 60.0) -> float:
    """Walk ``path``, learning each move as the UE makes it; returns the time at the end."""
    t = t0
    for i in range(2, len(path) + 1):
        t += step_s
        model.learn(path[:i], t)
    return t


def test_a_route_is_learned_and_explained() -> None:
    """Commuters along A-B-C make B -> C certain after A -> B, with the evidence counted."""
    model = Transitions(min_evidence=2)
    t = 0.0
    for _ in range(5):
        t = _route(model, ["A", "B", "C", "D"], t)
    p = model.predict(["A", "B"], t)
    assert p is not None
    assert (p.location, p.confidence, p.context) == ("C", 1.0, ("A", "B"))
    assert 4.0 < p.evidence <= 5.0
    assert p.explain().startswith("after A -> B: 100% of ")
    assert p.to_dict()["location"] == "C"


def test_direction_tells_opposite_commutes_apart() -> None:
    """Through B, those from A go to C and those from C go to A: second order sees it."""
    model = Transitions(min_evidence=2)
    t = 0.0
    for _ in range(4):
        t = _route(model, ["A", "B", "C"], t)
        t = _route(model, ["C", "B", "A"], t)
    forward, back, plain = (
        model.predict(["A", "B"], t),
        model.predict(["C", "B"], t),
        model.predict(["B"], t),
    )
    assert forward is not None
    assert back is not None
    assert plain is not None
    assert (forward.location, forward.confidence) == ("C", 1.0)
    assert (back.location, back.confidence) == ("A", 1.0)
    assert plain.confidence == pytest.approx(0.5, abs=0.05)  # first order alone cannot tell


def test_thin_second_order_backs_off_to_first() -> None:
    """A pair seen fewer times than min_evidence defers to the location alone."""
    model = Transitions(min_evidence=3)
    t = _route(model, ["X", "B", "C"], 0.0)
    for _ in range(3):
        t = _route(model, ["A", "B", "C"], t)
    p = model.predict(["X", "B"], t)
    assert p is not None
    assert p.context == ("B",)
    assert p.location == "C"


def test_random_walk_gives_low_confidence() -> None:
    """Uniform moves to four neighbours never reach a confident prediction."""
    import random

    rng = random.Random(7)
    model = Transitions(min_evidence=1)
    path = ["c"]
    t = 0.0
    for _ in range(4000):
        path.append(rng.choice(["n", "s", "e", "w"]) if path[-1] == "c" else "c")
        t += 30
        model.learn(path[-6:], t)
    p = model.predict(["c"], t)
    assert p is not None
    assert p.confidence < 0.35


def test_decay_forgets_a_closed_road() -> None:
    """After the road to C closes, a few half-lives of traffic to D make D the prediction."""
    model = Transitions(half_life_s=600, min_evidence=100)
    t = 0.0
    for _ in range(50):
        t = _route(model, ["A", "B", "C"], t, step_s=10)
    for _ in range(10):
        t = _route(model, ["A", "B", "D"], t + 600, step_s=10)
    p = model.predict(["B"], t)
    assert p is not None
    assert p.location == "D"
    assert p.confidence > 0.6


def test_future_clock_never_amplifies() -> None:
    """One event a year ahead, then normal times: confidences stay in [0, 1], weights finite."""
    model = Transitions(half_life_s=60)
    t = _route(model, ["A", "B", "C"], 0.0)
    model.learn(["A", "B", "Z"], 365 * 86400.0)
    for _ in range(20):
        t = _route(model, ["A", "B", "C"], t)
    p = model.predict(["A", "B"], t)
    assert p is not None
    assert 0.0 <= p.confidence <= 1.0
    assert math.isfinite(p.evidence)
    assert p.evidence <= 22.0
    assert p.location == "C"


def test_a_late_event_does_not_blow_up_evidence() -> None:
    """Learning at times going backwards keeps the weight at most the number of transitions."""
    model = Transitions(half_life_s=1)
    for i in range(100):
        model.learn(["A", "B"], 1000.0 - i)
    p = model.predict(["A"], 0.0)
    assert p is not None
    assert p.evidence <= 100.0
    assert p.confidence == 1.0


def test_a_flood_of_cells_stays_bounded() -> None:
    """A flood of distinct cell ids keeps at most max_contexts contexts and bounded memory."""
    model = Transitions(max_contexts=1000, max_successors=4)
    tracemalloc.start()
    try:
        for i in range(30_000):
            model.learn((f"cell-{i}", f"cell-{i + 1}", f"cell-{i + 2}"), float(i))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(model) == 1000
    assert peak < 3_000_000  # a thousand small contexts, not sixty thousand
    assert model.predict(["cell-0"], 0.0) is None  # the oldest were evicted
    assert model.predict(["cell-29999", "cell-30000"], 3e4) is not None


def test_a_hub_with_many_successors_keeps_the_heaviest() -> None:
    """A location with more successors than max_successors keeps the heavy one, less sure."""
    model = Transitions(max_successors=3, min_evidence=0)
    for i in range(10):
        model.learn(["hub", "main"], float(i))
    for i in range(50):
        model.learn(["hub", f"side-{i}"], 10.0 + i)
    p = model.predict(["hub"], 60.0)
    assert p is not None
    assert p.location == "main"
    assert p.confidence < 0.25


def test_max_length_ids_and_odd_paths() -> None:
    """Very long ids, empty and one-place paths, and a repeat learn nothing and do not fail."""
    long_a, long_b = "a" * 4096, "b" * 4096
    model = Transitions()
    model.learn([], 0.0)
    model.learn([long_a], 0.0)
    model.learn([long_a, long_a], 0.0)
    assert len(model) == 0
    assert model.predict([], 0.0) is None
    model.learn([long_a, long_b], 1.0)
    p = model.predict([long_a], 1.0)
    assert p is not None
    assert p.location == long_b


@pytest.mark.parametrize(
    "kw",
    [{"half_life_s": 0}, {"half_life_s": -1}, {"max_contexts": 0}, {"min_evidence": math.nan}],
)
def test_bad_parameters_are_refused(kw: dict[str, float]) -> None:
    """A zero half-life, no room, or a NaN threshold is a ValueError, not a silent model."""
    with pytest.raises(ValueError, match="must be"):
        Transitions(**kw)  # type: ignore[arg-type]


def test_zone_path_collapses_repeats() -> None:
    """A state's recent ring becomes the distinct zones in order, and the stay in the last left."""
    assert zone_path((("a", 1.0), ("a", 2.0), ("b", 3.0), ("a", 7.0))) == (("a", "b", "a"), 4.0)
    assert zone_path((("a", 1.0),)) == (("a",), None)
    assert zone_path((("a", 1.0), ("b", 90.0))) == (("a", "b"), None)  # no arrival in "a"


def test_stay_is_learned_per_context() -> None:
    """Commuters stay about 60 s on the way and half an hour at work: each context knows its own."""
    model = Transitions(min_evidence=1)
    for i in range(4):
        t = i * 10_000.0
        model.learn(["A", "B"], t + 60, stayed_s=60)
        model.learn(["A", "B", "W"], t + 120, stayed_s=60)
        model.learn(["A", "B", "W", "B"], t + 1920, stayed_s=1800)
    way, work = model.predict(["A", "B"], 4e4), model.predict(["B", "W"], 4e4)
    assert way is not None
    assert work is not None
    assert (way.stay_s, work.stay_s) == (pytest.approx(60.0), pytest.approx(1800.0))
    model.learn(["A", "B", "X"], 5e4, stayed_s=float("nan"))
    model.learn(["A", "B", "X"], 5e4, stayed_s=-5)
    again = model.predict(["A", "B"], 5e4)
    assert again is not None
    assert again.stay_s == pytest.approx(60.0)


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_non_finite_times_neither_crash_nor_amplify(bad: float) -> None:
    """An infinite or NaN time (a corrupt record) leaves weights finite and confidences <= 1."""
    model = Transitions(half_life_s=60)
    t = _route(model, ["A", "B", "C"], 0.0)
    model.learn(["A", "B", "C"], bad, stayed_s=bad)
    t = _route(model, ["A", "B", "C"], t)
    p = model.predict(["A", "B"], t)
    assert p is not None
    assert p.location == "C"
    assert 0.0 <= p.confidence <= 1.0
    assert math.isfinite(p.evidence)
    assert p.stay_s is None or math.isfinite(p.stay_s)
