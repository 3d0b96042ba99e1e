"""Deterministic mobility: N UEs moving over the cells of a topology, as a timeline.

The pure half (:func:`radio_map`, :func:`simulate`) computes a timeline in virtual seconds from a
seed; the same seed and parameters give the identical timeline. Everything random comes from one
``random.Random(seed)``.

The model:

* **Cells** are the NR cells the topology lists; a tracking area mapped to a zone without listed
  cells gets two synthetic cells (``<tac>f00``, ``<tac>f01``), so every zone can be visited.
* **Neighbours**: the cells of one zone neighbour each other (sectors of one site); two zones
  neighbour each other when a link joins them directly, and each zone is also joined to its
  two nearest zones by path latency over the link graph, so the graph is connected whenever the
  latency graph is.
* **Movement**: each UE is a pedestrian or a vehicle; it dwells in a cell for an exponential time
  (mean ``pedestrian_dwell_s`` or ``vehicle_dwell_s``, at least ``min_dwell_s``), then hands over
  to a neighbour, preferring not to go straight back (a path, not a random walk).
* **Border oscillation**: a handover, with probability ``oscillation_p``, is followed by 1 to 3
  flips back and forth between the two cells a few seconds apart, then the UE settles in the
  new cell: what tempts a policy into ping-pong.
* **Models with structure** (``model``: ``commute``, ``walk``): zone to zone instead, see
  :mod:`subscriber.sre.mobility`.
* **Periodic reports** (``report_interval_s`` > 0): between changes, the UE also reports its
  cell every interval, as an AMF does for a periodic LOCATION_REPORT subscription. They draw no
  random numbers, so the changes are the same with or without them.

The outputs (:func:`run`, ``subscriber simulate``) pace the timeline with a speed factor to the
fake free5GC AMF's control API (the poller then sees the moves), or send TS 29.518
AmfEventNotification LOCATION_REPORT callbacks to a receiver, or write a recording.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import structlog

from subscriber.decide.topology import Topology, shortest_paths
from subscriber.errors import SubscriberError
from subscriber.options import SimulateOptions
from subscriber.settings import Settings

log = structlog.get_logger()

DEFAULT_START = datetime(2026, 7, 1, 8, 0, 0, tzinfo=UTC)


class RadioCell(NamedTuple):
    """A cell a simulated UE can camp on."""

    plmn: str
    tac: str
    cell_id: str
    zone: str


class Move(NamedTuple):
    """One step of the timeline: at ``t_s`` (virtual seconds), UE ``ue`` is in ``cell``.

    ``oscillation`` marks the flips of a border oscillation, ``periodic`` a periodic report
    from the cell the UE is already in.
    """

    t_s: float
    ue: int
    cell: RadioCell
    oscillation: bool
    periodic: bool = False


@dataclass(frozen=True, slots=True)
class Mobility:
    """Parameters of the mobility model (see the module docstring)."""

    ues: int = 10
    duration_s: float = 600.0
    pedestrian_dwell_s: float = 120.0
    vehicle_dwell_s: float = 30.0
    vehicle_share: float = 0.3
    min_dwell_s: float = 2.0
    oscillation_p: float = 0.2
    oscillation_gap_s: tuple[float, float] = (1.0, 4.0)
    back_p: float = 0.1
    first_imsi: int = 208930000000001
    report_interval_s: float = 0.0
    model: str = "wander"
    """``wander`` (this module's), or ``commute`` / ``walk`` (:mod:`subscriber.sre.mobility`)."""
    routes: int = 6
    min_route_zones: int = 4
    commute_dwell_s: float = 90.0
    commute_dwell_shape: float = 4.0
    work_s: float = 1800.0


@dataclass(frozen=True, slots=True)
class RadioMap:
    """Cells and which cells each cell hands over to."""

    cells: tuple[RadioCell, ...]
    neighbours: tuple[tuple[int, ...], ...]


def _zone_neighbours(topology: Topology) -> dict[str, set[str]]:
    zones = set(topology.zones)
    links = [(lk.a, lk.b, lk.latency_ms) for lk in topology.doc.links]
    near: dict[str, set[str]] = {z: set() for z in zones}
    for a, b, _ in links:
        if a in zones and b in zones and a != b:
            near[a].add(b)
            near[b].add(a)
    dist = shortest_paths(links, sorted(zones))
    for z in sorted(zones):
        others = sorted(
            (d, other) for other, d in dist.get(z, {}).items() if other in zones and other != z
        )
        for _, other in others[:2]:
            near[z].add(other)
            near[other].add(z)
    return near


def radio_map(topology: Topology) -> RadioMap:
    """The cells of a topology and its handover graph (pure, deterministic order)."""
    cells: list[RadioCell] = []
    for ta in topology.doc.tracking_areas:
        plmn = ta.plmn.key if ta.plmn is not None else topology.plmn
        for c in ta.cells:
            if c.rat == "NR":
                cells.append(RadioCell(plmn, ta.tac, c.cell_id, c.zone))
        if ta.zone is not None:
            base = int(ta.tac, 16) & 0xFFFFFF
            cells += [RadioCell(plmn, ta.tac, f"{base:06x}f0{i}", ta.zone) for i in range(2)]
    if not cells:
        raise ValueError("the topology maps no NR cell to a zone: nothing to move over")
    near = _zone_neighbours(topology)
    neighbours = []
    for i, cell in enumerate(cells):
        neighbours.append(
            tuple(
                j
                for j, other in enumerate(cells)
                if j != i and (other.zone == cell.zone or other.zone in near.get(cell.zone, ()))
            )
        )
    return RadioMap(tuple(cells), tuple(neighbours))


def supi_of(params: Mobility, ue: int) -> str:
    """The SUPI of the ``ue``-th simulated UE."""
    return f"imsi-{params.first_imsi + ue:015d}"


def _dwell(rng: random.Random, mean_s: float, floor_s: float) -> float:
    return max(floor_s, rng.expovariate(1.0 / mean_s))


def _ue_moves(rng: random.Random, ue: int, rmap: RadioMap, params: Mobility) -> Iterator[Move]:
    vehicle = rng.random() < params.vehicle_share
    mean_s = params.vehicle_dwell_s if vehicle else params.pedestrian_dwell_s
    here = rng.randrange(len(rmap.cells))
    previous: int | None = None
    t = rng.uniform(0.0, min(5.0, params.duration_s))
    yield Move(round(t, 3), ue, rmap.cells[here], False)
    while True:
        t += _dwell(rng, mean_s, params.min_dwell_s)
        if t >= params.duration_s:
            return
        options = rmap.neighbours[here]
        if not options:
            return
        forward = [j for j in options if j != previous]
        if forward and (previous is None or rng.random() >= params.back_p):
            nxt = rng.choice(forward)
        else:
            nxt = rng.choice(options)
        previous, here = here, nxt
        yield Move(round(t, 3), ue, rmap.cells[here], False)
        if rng.random() < params.oscillation_p:
            lo, hi = params.oscillation_gap_s
            for flip in range(2 * rng.randint(1, 3)):
                t += rng.uniform(lo, hi)
                if t >= params.duration_s:
                    return
                cell = previous if flip % 2 == 0 else here
                yield Move(round(t, 3), ue, rmap.cells[cell], True)


def _with_reports(moves: list[Move], params: Mobility) -> Iterator[Move]:
    interval = params.report_interval_s
    for i, move in enumerate(moves):
        yield move
        until = moves[i + 1].t_s if i + 1 < len(moves) else params.duration_s
        k = 1
        while (t := round(move.t_s + k * interval, 3)) < until:
            yield Move(t, move.ue, move.cell, False, True)
            k += 1


def simulate(topology: Topology, params: Mobility, seed: int) -> list[Move]:
    """The whole timeline, ordered by time (then UE): pure and deterministic for a seed."""
    rmap = radio_map(topology)
    if params.model != "wander":
        from subscriber.sre.mobility import structured

        path = structured(rmap, params, seed)
        if params.report_interval_s <= 0:
            return path
        by_ue: dict[int, list[Move]] = {}
        for m in path:
            by_ue.setdefault(m.ue, []).append(m)
        moves = [r for ue_moves in by_ue.values() for r in _with_reports(ue_moves, params)]
        moves.sort(key=lambda m: (m.t_s, m.ue))
        return moves
    rng = random.Random(seed)  # noqa: S311 -- reproducible simulation, not security
    moves = []
    for ue in range(params.ues):
        # One generator per UE, seeded from the main one, so adding UEs keeps the others' paths.
        ue_rng = random.Random(rng.getrandbits(64))  # noqa: S311 -- as above
        path = list(_ue_moves(ue_rng, ue, rmap, params))
        moves.extend(_with_reports(path, params) if params.report_interval_s > 0 else path)
    moves.sort(key=lambda m: (m.t_s, m.ue))
    return moves


def _go_time(moment: datetime) -> str:
    # As free5GC's Go code marshals time.Time: RFC 3339, trailing fractional zeros trimmed, Z.
    text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".")
    return text + "Z"


def _plmn_json(plmn: str) -> dict[str, str]:
    return {"mcc": plmn[:3], "mnc": plmn[3:]}


def location_report(supi: str, cell: RadioCell, at: datetime, correlation_id: str) -> bytes:
    """A TS 29.518 AmfEventNotification with one LOCATION_REPORT, as an AMF sends it.

    The shape and field order follow free5GC's report (tests/vectors/d1-amf-created-location.json):
    ``timeStamp``, ``supi`` and an NR ``location`` with its ``ueLocationTimestamp``.
    """
    plmn = _plmn_json(cell.plmn)
    stamp = _go_time(at)
    return orjson.dumps(
        {
            "notifyCorrelationId": correlation_id,
            "reportList": [
                {
                    "type": "LOCATION_REPORT",
                    "state": {"active": True},
                    "timeStamp": stamp,
                    "supi": supi,
                    "location": {
                        "nrLocation": {
                            "tai": {"plmnId": plmn, "tac": cell.tac},
                            "ncgi": {"plmnId": plmn, "nrCellId": cell.cell_id},
                            "ueLocationTimestamp": stamp,
                        }
                    },
                }
            ],
        }
    )


# -- outputs (I/O) -------------------------------------------------------------------------


@dataclass
class Paced:
    """Paces a virtual timeline on the wall clock: ``speed`` virtual seconds per second."""

    speed: float
    started: float = 0.0

    def start(self) -> None:
        """Take the current time as virtual time zero."""
        self.started = time.monotonic()

    async def wait_for(self, t_s: float) -> None:
        """Sleep until virtual time ``t_s`` (no wait at speed 0: as fast as possible)."""
        if self.speed <= 0:
            return
        delay = self.started + t_s / self.speed - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


async def to_fake_amf(url: str, moves: Sequence[Move], params: Mobility, speed: float) -> int:
    """Register the UEs at their first cell, then replay each move on the control API.

    Returns:
        the number of moves the fake core accepted.
    """
    import httpx

    accepted = 0
    seen: set[int] = set()
    pace = Paced(speed)
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        pace.start()
        for move in moves:
            await pace.wait_for(move.t_s)
            supi = supi_of(params, move.ue)
            body = {"tac": move.cell.tac, "nrCellId": move.cell.cell_id}
            if move.ue not in seen:
                seen.add(move.ue)
                response = await http.put(f"/fake/ues/{supi}", json=body)
            else:
                response = await http.post(f"/fake/ues/{supi}/move", json=body)
            if response.status_code // 100 == 2:
                accepted += 1
            else:
                log.warning("simulate.move_refused", status=response.status_code)
    return accepted


async def to_receiver(
    url: str, moves: Sequence[Move], params: Mobility, speed: float, correlation_id: str
) -> int:
    """POST one LOCATION_REPORT notification per move, over h2c like free5GC.

    Each body is stamped with the wall clock at sending, as an AMF stamps its reports.

    Returns:
        the number of callbacks answered 2xx.
    """
    import httpx

    from subscriber.sre.replay import FREE5GC_HEADERS

    accepted = 0
    pace = Paced(speed)
    target = f"{url.rstrip('/')}/callbacks/amf/{correlation_id}"
    async with httpx.AsyncClient(http2=True, http1=False, timeout=10) as http:
        pace.start()
        for move in moves:
            await pace.wait_for(move.t_s)
            body = location_report(
                supi_of(params, move.ue), move.cell, datetime.now(UTC), correlation_id
            )
            response = await http.post(target, content=body, headers=FREE5GC_HEADERS)
            if response.status_code // 100 == 2:
                accepted += 1
            else:
                log.warning("simulate.callback_refused", status=response.status_code)
    return accepted


def to_recording(
    path: Path,
    moves: Sequence[Move],
    params: Mobility,
    *,
    start: datetime,
    correlation_id: str,
    callbacks: bool,
    source: dict[str, Any],
) -> int:
    """Write the timeline as normalized events (or as raw callbacks) at virtual times.

    Events come from the real normalizer applied to the notification the AMF would have sent,
    so their ids and fields are what the receiver would publish.

    Returns:
        the number of items written.
    """
    from subscriber.ingress.normalize import BodyKind, normalize_body
    from subscriber.sre.recording import Item, RawCallback, RecordingWriter

    with RecordingWriter(
        path, kind="callbacks" if callbacks else "events", source=source, created_at=start
    ) as writer:
        for move in moves:
            at = start + timedelta(seconds=move.t_s)
            supi = supi_of(params, move.ue)
            body = location_report(supi, move.cell, at, correlation_id)
            if callbacks:
                raw = RawCallback(
                    path=f"/callbacks/amf/{correlation_id}", body=body, received_at=at
                )
                writer.write(Item(at.timestamp(), supi, callback=raw))
                continue
            from subscriber.events import encode_event

            for event in normalize_body(BodyKind.AMF_NOTIFICATION, body, ingest_time=at).events:
                writer.write(Item(at.timestamp(), event.ue.key(), event=encode_event(event)))
        return writer.count


def _speed(text: str) -> float:
    return 0.0 if text in ("max", "0") else float(text)


def params_from(options: SimulateOptions) -> Mobility:
    """The mobility parameters given on the command line."""
    return Mobility(
        ues=options.ues,
        duration_s=options.duration,
        pedestrian_dwell_s=options.pedestrian_dwell,
        vehicle_dwell_s=options.vehicle_dwell,
        vehicle_share=options.vehicle_share,
        oscillation_p=options.oscillation,
        first_imsi=options.first_imsi,
        report_interval_s=options.report_interval,
        model=options.model,
        routes=options.routes,
    )


async def run(settings: Settings, options: SimulateOptions) -> int:
    """``subscriber simulate``: compute the timeline, then send or write it."""
    from subscriber.decide.engine import read_bundle

    topology_file: Path = options.topology or settings.policy.topology_file or _example_topology()
    topology = read_bundle(topology_file).topology
    params = params_from(options)
    moves = simulate(topology, params, options.seed)
    speed = _speed(options.speed)
    started = time.monotonic()
    if options.to != "recording" and options.url is None:
        raise SubscriberError(f"subscriber simulate --to {options.to} needs --url URL")
    if options.to == "fake-amf":
        done = await to_fake_amf(str(options.url), moves, params, speed)
    elif options.to == "receiver":
        done = await to_receiver(str(options.url), moves, params, speed, options.correlation_id)
    else:
        if options.output is None:
            raise SubscriberError("subscriber simulate --to recording needs --output FILE")
        start = DEFAULT_START
        if options.start:
            start = datetime.fromisoformat(options.start.replace("Z", "+00:00"))
            start = start if start.tzinfo else start.replace(tzinfo=UTC)
        source = {
            "type": "simulate",
            "seed": options.seed,
            "topology": str(topology_file),
            "ues": params.ues,
            "duration_s": params.duration_s,
        }
        done = to_recording(
            options.output,
            moves,
            params,
            start=start,
            correlation_id=options.correlation_id,
            callbacks=options.callbacks,
            source=source,
        )
    elapsed = time.monotonic() - started
    print(
        f"simulate: seed {options.seed}, {params.ues} UEs, {len(moves)} moves over "
        f"{params.duration_s:g} s virtual; {done} delivered to {options.to} in {elapsed:.2f} s"
    )
    return 0 if done == len(moves) or options.to == "recording" else 1


def _example_topology() -> Path:
    import subscriber

    return Path(subscriber.__file__).parent / "data" / "topology.example.yaml"
