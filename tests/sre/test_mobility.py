"""Mobility with structure: commuters follow their route out and back, walkers go anywhere."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import pytest

from subscriber.decide.topology import parse_topology
from subscriber.errors import SubscriberError
from subscriber.sre.mobility import routes, zone_graph
from subscriber.sre.prewarm import grid_topology
from subscriber.sre.simulate import Mobility, Move, radio_map, simulate

GRID = parse_topology(grid_topology(5, 5))
GRAPH, _ = zone_graph(radio_map(GRID))


def _paths(moves: list[Move]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for m in moves:
        if not m.periodic:
            out.setdefault(m.ue, []).append(m.cell.zone)
    return out


def test_grid_neighbours_are_the_four_around() -> None:
    """A grid's zone graph joins each zone to the zones left, right, above and below it."""
    assert GRAPH["zone-2-2"] == ("zone-1-2", "zone-2-1", "zone-2-3", "zone-3-2")
    assert GRAPH["zone-0-0"] == ("zone-0-1", "zone-1-0")


def test_commuters_ride_their_route_out_and_back() -> None:
    """Every commuter's zones are one route, then the same reversed, and so on; each step a hop."""
    params = Mobility(ues=20, duration_s=4 * 3600, model="commute", routes=3, work_s=900)
    moves = simulate(GRID, params, seed=5)
    assert moves == simulate(GRID, params, seed=5)
    paths = _paths(moves)
    assert len(paths) == 20
    for path in paths.values():
        route = path[: len(set(path))]
        assert len(route) >= params.min_route_zones
        assert all(b in GRAPH[a] for a, b in itertools.pairwise(route))
        bounce = route + (route[-2::-1] + route[1:]) * 10
        assert path == bounce[: len(path)]
        assert len(path) > len(route)  # came back at least once in four hours


def test_commuters_share_few_routes() -> None:
    """Many commuters, few routes: the zone pairs they cross are a small set, in both directions."""
    params = Mobility(ues=50, duration_s=4 * 3600, model="commute", routes=2, work_s=600)
    hops = {
        (a, b)
        for path in _paths(simulate(GRID, params, seed=1)).values()
        for a, b in itertools.pairwise(path)
    }
    assert all((b, a) in hops for a, b in hops)  # the way back is the way out
    assert len(hops) <= 2 * 2 * 8  # two routes of at most 9 zones, both directions


def test_walkers_visit_everywhere_one_hop_at_a_time() -> None:
    """Random walkers move to neighbours only and, over a long run, see most of the grid."""
    params = Mobility(ues=30, duration_s=6 * 3600, model="walk", pedestrian_dwell_s=60)
    paths = _paths(simulate(GRID, params, seed=2))
    seen = {z for p in paths.values() for z in p}
    assert len(seen) >= 20
    for path in paths.values():
        assert all(b in GRAPH[a] for a, b in itertools.pairwise(path))


def test_periodic_reports_fill_the_stays() -> None:
    """With a report interval, each stay also reports every interval, the moves unchanged."""
    base = Mobility(ues=5, duration_s=3600, model="commute", routes=2)
    plain = simulate(GRID, base, seed=3)
    with_reports = simulate(GRID, replace(base, report_interval_s=60.0), 3)
    assert [m for m in with_reports if not m.periodic] == plain
    assert sum(m.periodic for m in with_reports) > len(plain)


def test_no_route_on_a_tiny_network() -> None:
    """Routes longer than the network is wide are refused with a message, not an endless loop."""
    tiny = zone_graph(radio_map(parse_topology(grid_topology(2, 1))))[0]
    with pytest.raises(SubscriberError, match="no two zones are 4 zones apart"):
        routes(tiny, 3, 4, 0)


def test_the_command_simulates_commuters_on_a_grid(tmp_path: Path) -> None:
    """``simulate --model commute`` over a grid topology writes a recording of zone moves."""
    from subscriber.cli import main
    from subscriber.sre.recording import read_items

    topology = tmp_path / "grid.yaml"
    topology.write_text(grid_topology(5, 5))
    out = tmp_path / "c.jsonl.gz"
    argv = ["simulate", "--model", "commute", "--routes", "2", "--topology", str(topology)]
    assert main([*argv, "--ues", "4", "--duration", "3600", "-o", str(out)]) == 0
    header, items = read_items(out)
    assert header.count == len(items) > 4


def test_the_command_says_when_no_route_fits(capsys: pytest.CaptureFixture[str]) -> None:
    """The example topology is too small for routes: one line and exit 1, no traceback."""
    from subscriber.cli import main

    assert main(["simulate", "--model", "commute", "--ues", "2", "-o", "unused.jsonl.gz"]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "subscriber: no two zones are 4 zones apart: no route to commute on"
    ]
