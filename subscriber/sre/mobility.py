"""Mobility with structure: commuters along fixed routes, and random walkers.

The default model of :mod:`subscriber.sre.simulate` wanders cell to cell; these two move zone to
zone over the same radio map (two zones neighbour each other when a cell of one hands over to a
cell of the other), to measure what a predictor can learn (docs/performance.md):

* **commute**: a few routes, each the shortest hop path between two zones at least
  ``min_route_zones`` apart; each UE takes one route out, stays ``work_s`` at its end, comes back
  the same way, stays home, and so on. Every zone on the way takes a gamma-distributed time of
  mean ``commute_dwell_s`` and shape ``commute_dwell_shape`` (at least ``min_dwell_s``): a vehicle
  crossing a macro cell takes about its size over its speed, with a tail for lights and jams
  (shape 1 is the exponential, memoryless and the hardest case for timing a warm instance).
* **walk**: each UE dwells an exponential ``pedestrian_dwell_s``, then moves to a neighbouring
  zone chosen uniformly, back included: no structure for a predictor to find.

Pure and deterministic for a seed: one ``random.Random`` per UE, drawn from the seed.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator, Mapping

from subscriber.errors import SubscriberError
from subscriber.sre.simulate import Mobility, Move, RadioCell, RadioMap


def zone_graph(rmap: RadioMap) -> tuple[dict[str, tuple[str, ...]], dict[str, RadioCell]]:
    """Each zone's neighbouring zones (sorted), and the cell a UE entering a zone reports."""
    near: dict[str, set[str]] = {}
    first: dict[str, RadioCell] = {}
    for i, cell in enumerate(rmap.cells):
        first.setdefault(cell.zone, cell)
        near.setdefault(cell.zone, set())
        for j in rmap.neighbours[i]:
            other = rmap.cells[j].zone
            if other != cell.zone:
                near[cell.zone].add(other)
    return {z: tuple(sorted(n)) for z, n in sorted(near.items())}, first


def _path(graph: Mapping[str, tuple[str, ...]], a: str, b: str) -> list[str] | None:
    back: dict[str, str | None] = {a: None}
    todo = deque([a])
    while todo:
        z = todo.popleft()
        if z == b:
            out = [b]
            while (prev := back[out[-1]]) is not None:
                out.append(prev)
            return out[::-1]
        for n in graph[z]:
            if n not in back:
                back[n] = z
                todo.append(n)
    return None


def routes(
    graph: Mapping[str, tuple[str, ...]], count: int, min_zones: int, seed: int
) -> list[list[str]]:
    """``count`` routes: shortest hop paths between random zone pairs, at least ``min_zones`` long.

    Raises:
        SubscriberError: the graph has no pair of zones that far apart.
    """
    rng = random.Random(seed)  # noqa: S311 -- reproducible simulation, not security
    zones = sorted(graph)
    candidates = []
    for a in zones:
        for b in zones:
            if a < b:
                path = _path(graph, a, b)
                if path is not None and len(path) >= min_zones:
                    candidates.append(path)
    if not candidates:
        raise SubscriberError(f"no two zones are {min_zones} zones apart: no route to commute on")
    picked = rng.sample(candidates, min(count, len(candidates)))
    return [p if rng.random() < 0.5 else p[::-1] for p in picked]


def _commuter(
    rng: random.Random,
    ue: int,
    route: list[str],
    cells: Mapping[str, RadioCell],
    params: Mobility,
) -> Iterator[Move]:
    t = rng.uniform(0.0, min(params.work_s, params.duration_s))
    yield Move(round(t, 3), ue, cells[route[0]], False)
    leg = route
    while True:
        for zone in leg[1:]:
            shape = params.commute_dwell_shape
            t += max(params.min_dwell_s, rng.gammavariate(shape, params.commute_dwell_s / shape))
            if t >= params.duration_s:
                return
            yield Move(round(t, 3), ue, cells[zone], False)
        t += params.work_s * rng.uniform(0.8, 1.2)
        leg = leg[::-1]


def _walker(
    rng: random.Random,
    ue: int,
    graph: Mapping[str, tuple[str, ...]],
    cells: Mapping[str, RadioCell],
    params: Mobility,
) -> Iterator[Move]:
    zone = rng.choice(sorted(graph))
    t = rng.uniform(0.0, min(5.0, params.duration_s))
    yield Move(round(t, 3), ue, cells[zone], False)
    while graph[zone]:
        t += max(params.min_dwell_s, rng.expovariate(1.0 / params.pedestrian_dwell_s))
        if t >= params.duration_s:
            return
        zone = rng.choice(graph[zone])
        yield Move(round(t, 3), ue, cells[zone], False)


def structured(rmap: RadioMap, params: Mobility, seed: int) -> list[Move]:
    """The timeline of ``params.model`` (``commute`` or ``walk``), ordered by time then UE."""
    graph, cells = zone_graph(rmap)
    rng = random.Random(seed)  # noqa: S311 -- reproducible simulation, not security
    paths = (
        routes(graph, params.routes, params.min_route_zones, rng.getrandbits(64))
        if params.model == "commute"
        else []
    )
    moves: list[Move] = []
    for ue in range(params.ues):
        ue_rng = random.Random(rng.getrandbits(64))  # noqa: S311 -- as above
        if params.model == "commute":
            moves.extend(_commuter(ue_rng, ue, ue_rng.choice(paths), cells, params))
        else:
            moves.extend(_walker(ue_rng, ue, graph, cells, params))
    moves.sort(key=lambda m: (m.t_s, m.ue))
    return moves
