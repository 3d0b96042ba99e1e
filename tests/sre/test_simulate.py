"""Tests for the seeded mobility simulator and its outputs."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

import subscriber
from subscriber.decide.engine import read_bundle
from subscriber.decide.topology import Topology
from subscriber.events import Cell, decode_event
from subscriber.fakes.core import FakeCoreServer
from subscriber.ingress.normalize import BodyKind, normalize_body
from subscriber.sre.recording import read_items
from subscriber.sre.simulate import (
    Mobility,
    Move,
    RadioCell,
    location_report,
    radio_map,
    simulate,
    supi_of,
    to_fake_amf,
    to_recording,
)

TOPOLOGY = Path(subscriber.__file__).parent / "data" / "topology.example.yaml"
START = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)


def _topology() -> Topology:
    return read_bundle(TOPOLOGY).topology


def test_the_same_seed_gives_the_identical_timeline() -> None:
    """Two runs with one seed and parameters produce equal timelines."""
    params = Mobility(ues=20, duration_s=900)
    assert simulate(_topology(), params, 42) == simulate(_topology(), params, 42)


def test_another_seed_gives_another_timeline() -> None:
    """A different seed changes the timeline."""
    params = Mobility(ues=20, duration_s=900)
    assert simulate(_topology(), params, 1) != simulate(_topology(), params, 2)


def test_adding_ues_keeps_the_paths_of_the_others() -> None:
    """Each UE has its own generator, so UE 0's path does not depend on how many follow it."""
    few = [m for m in simulate(_topology(), Mobility(ues=2), 5) if m.ue == 0]
    many = [m for m in simulate(_topology(), Mobility(ues=9), 5) if m.ue == 0]
    assert few == many


def test_moves_follow_the_handover_graph_in_time_order() -> None:
    """Each UE only moves to a neighbour of its cell, never stays put, within the duration."""
    topology = _topology()
    rmap = radio_map(topology)
    index = {cell: i for i, cell in enumerate(rmap.cells)}
    moves = simulate(topology, Mobility(ues=30, duration_s=1200), 3)
    assert [m.t_s for m in moves] == sorted(m.t_s for m in moves)
    assert all(0 <= m.t_s < 1200 for m in moves)
    last: dict[int, RadioCell] = {}
    for move in moves:
        if move.ue in last:
            assert index[move.cell] in rmap.neighbours[index[last[move.ue]]]
        last[move.ue] = move.cell


def test_handover_rates_follow_the_dwell_means() -> None:
    """Vehicles (30 s mean dwell) hand over several times more often than pedestrians (120 s)."""
    topology = _topology()
    walkers = simulate(
        topology, Mobility(ues=40, duration_s=3600, vehicle_share=0.0, oscillation_p=0.0), 9
    )
    drivers = simulate(
        topology, Mobility(ues=40, duration_s=3600, vehicle_share=1.0, oscillation_p=0.0), 9
    )
    walk_rate = (len(walkers) - 40) / 40 / 3600
    drive_rate = (len(drivers) - 40) / 40 / 3600
    assert 1 / 200 < walk_rate < 1 / 80
    assert drive_rate > 3 * walk_rate


def test_border_oscillation_flips_between_two_cells_seconds_apart() -> None:
    """With oscillation on, a UE flips back and forth between two cells within seconds."""
    moves = simulate(_topology(), Mobility(ues=20, duration_s=1800, oscillation_p=1.0), 11)
    flips = [m for m in moves if m.oscillation]
    assert flips
    by_ue: dict[int, list[float]] = {}
    for m in moves:
        by_ue.setdefault(m.ue, []).append(m.t_s)
    gaps = [b - a for times in by_ue.values() for a, b in itertools.pairwise(times)]
    assert min(gaps) < 5


def test_every_zone_of_the_example_can_be_reached() -> None:
    """Synthetic cells stand for tracking areas mapped without cells; every zone has cells."""
    topology = _topology()
    rmap = radio_map(topology)
    assert {c.zone for c in rmap.cells} == set(topology.zones)
    for c in rmap.cells:
        assert topology.zone_of_cell(Cell(rat="NR", plmn=c.plmn, tac=c.tac, cell_id=c.cell_id)) == (
            c.zone
        )


def test_notifications_are_spec_amf_location_reports() -> None:
    """A simulated callback body normalizes to one event of the right UE and cell."""
    cell = RadioCell("20893", "000002", "000000020", "zone-tower-2")
    body = location_report("imsi-208930000000007", cell, START, "corr-1")
    doc = orjson.loads(body)
    assert doc["notifyCorrelationId"] == "corr-1"
    assert doc["reportList"][0]["type"] == "LOCATION_REPORT"
    (event,) = normalize_body(BodyKind.AMF_NOTIFICATION, body, ingest_time=START).events
    assert event.ue.supi == "imsi-208930000000007"
    assert event.location is not None
    assert (event.location.tac, event.location.cell_id) == ("000002", "000000020")
    assert event.event_time == START
    assert _topology().zone_of(event) == "zone-tower-2"


def test_a_recording_holds_one_event_per_move_at_virtual_times(tmp_path: Path) -> None:
    """Events are stamped START + t and keyed by SUPI; the header names the seed."""
    params = Mobility(ues=5, duration_s=300)
    moves = simulate(_topology(), params, 4)
    path = tmp_path / "sim.jsonl.gz"
    count = to_recording(
        path,
        moves,
        params,
        start=START,
        correlation_id="c",
        callbacks=False,
        source={"type": "simulate", "seed": 4},
    )
    header, items = read_items(path)
    assert count == len(moves) == header.count
    assert header.source["seed"] == 4
    events = [decode_event(i.event or b"") for i in items]
    assert [e.event_time.timestamp() - START.timestamp() for e in events] == [
        pytest.approx(m.t_s, abs=1e-3) for m in moves
    ]
    assert [e.ue.supi for e in events] == [supi_of(params, m.ue) for m in moves]


async def test_moves_reach_the_fake_amf_control_api() -> None:
    """Each UE is registered at its first cell, then moved; the AMF ends where the timeline does."""
    params = Mobility(ues=4, duration_s=200)
    moves = simulate(_topology(), params, 8)
    async with FakeCoreServer() as fake:
        accepted = await to_fake_amf(fake.url, moves, params, speed=0)
        assert accepted == len(moves)
        last = {m.ue: m.cell for m in moves}
        for ue, cell in last.items():
            location = orjson.loads(fake.core.amf.ues[supi_of(params, ue)].location_json)
            assert location["nrLocation"]["ncgi"]["nrCellId"] == cell.cell_id
    assert Counter(m.ue for m in moves).keys() == set(range(4))


def test_the_command_writes_the_same_recording_for_the_same_seed(tmp_path: Path) -> None:
    """``subscriber simulate -o`` twice with one seed gives identical items."""
    from subscriber.cli import main

    paths = [tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"]
    for path in paths:
        argv = ["simulate", "--ues", "5", "--duration", "120", "--seed", "3", "-o", str(path)]
        assert main(argv) == 0
    (ha, a), (hb, b) = read_items(paths[0]), read_items(paths[1])
    assert hb == ha
    assert a == b
    assert ha.count == len(a) > 5
    assert ha.source["seed"] == 3


def test_the_command_refuses_a_recording_without_a_file() -> None:
    """``--to recording`` without ``--output`` is an error, exit 1."""
    from subscriber.cli import main

    assert main(["simulate", "--ues", "1", "--duration", "10"]) == 1


@pytest.mark.parametrize("to", ["fake-amf", "receiver"])
def test_the_command_refuses_to_send_without_a_url(
    to: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Sending (``--to fake-amf`` or ``receiver``) without ``--url`` exits 1 with one line."""
    from subscriber.cli import main

    assert main(["simulate", "--ues", "1", "--duration", "10", "--to", to]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f"subscriber: subscriber simulate --to {to} needs --url URL"
    ]


def test_periodic_reports_fill_the_dwell_without_changing_the_path() -> None:
    """With a report interval, the same changes happen, with reports of the current cell between."""
    topology = _topology()
    plain = simulate(topology, Mobility(ues=6, duration_s=600), 4)
    with_reports = simulate(topology, Mobility(ues=6, duration_s=600, report_interval_s=10), 4)
    assert [m for m in with_reports if not m.periodic] == plain
    last: dict[int, Move] = {}
    for move in with_reports:
        before = last.get(move.ue)
        if before is not None:
            assert move.t_s - before.t_s <= 10 + 1e-6
            if move.periodic:
                assert move.cell == before.cell
        last[move.ue] = move
    assert all(600 - m.t_s <= 10 for m in last.values())
