"""Benchmark of the decision engine: decisions per second, bytes of state per UE, memory.

Run with ``.venv/bin/python -m bench.decide`` (``--help`` for sizes). It builds a realistic
synthetic topology (metro area: edge sites per tower, regional and central clusters), a stream
of location events for many UEs (most repeat the UE's zone, some cross into a neighbour zone,
a few hit unmapped cells), and measures on one core:

* ``decide()`` alone, then with each changed state encoded as the consumer writes it to its
  changelog;
* the serialized state size per UE, typical and worst case (every ring full);
* memory per tracked UE, measured with tracemalloc on a sample and scaled to 1M UEs.

Figures are printed with the machine they were taken on. This is not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import random
import time
import tracemalloc
from datetime import UTC, datetime

import yaml

from bench.events import polled_report
from bench.figures import machine, record
from subscriber.decide.bundle import Bundle, load_bundle
from subscriber.decide.policy import Action, Running, decide
from subscriber.decide.state import (
    LEFT_CLUSTERS,
    MAX_APPS,
    RECENT_ZONES,
    AppTrack,
    UeState,
    decode_state,
    encode_state,
)
from subscriber.events import LocationEvent

APPS = ("video-analytics", "ar-guide", "telemetry-sink", "cloud-gaming", "v2x-assist")


def synthetic_topology(towers: int, *, seed: int = 7) -> dict[str, object]:
    """A metro topology: one zone and one edge cluster per tower, a ring of towers, regionals."""
    rng = random.Random(seed)
    regionals = max(2, towers // 25)
    zones = [{"id": f"zone-{i}"} for i in range(towers)] + [{"id": "zone-core"}]
    areas = []
    for ta in range(0, towers, 8):
        cells = [
            {"cell_id": f"{(i * 16 + s):09x}", "zone": f"zone-{i}"}
            for i in range(ta, min(ta + 8, towers))
            for s in range(3)
        ]
        areas.append({"tac": f"{ta // 8 + 1:06x}", "cells": cells})
    clusters = [
        {
            "id": f"edge-{i}",
            "site": f"tower-{i}",
            "zone": f"zone-{i}",
            "capacity": {"cpu": 16, "memory_mib": 32768, "app_slots": 16},
            "load": {"cpu": rng.randint(2, 12), "memory_mib": rng.randint(4, 24) * 1024, "apps": 4},
            "labels": {"tier": "edge", "gpu": "true" if i % 2 == 0 else "false"},
            "address": f"10.1.{i // 250}.{i % 250 + 1}",
        }
        for i in range(towers)
    ]
    links = [{"a": f"zone-{i}", "b": f"edge-{i}", "latency_ms": 2} for i in range(towers)]
    links += [
        {"a": f"zone-{i}", "b": f"zone-{(i + 1) % towers}", "latency_ms": rng.choice((3, 4, 5))}
        for i in range(towers)
    ]
    for r in range(regionals):
        clusters.append(
            {
                "id": f"regional-{r}",
                "site": f"metro-dc-{r}",
                "zone": "zone-core",
                "capacity": {"cpu": 256, "memory_mib": 524288, "app_slots": 400},
                "load": {"cpu": 100, "memory_mib": 200000, "apps": 120},
                "labels": {"tier": "regional", "gpu": "true"},
                "address": f"10.2.0.{r + 1}",
            }
        )
        for i in range(r, towers, regionals):
            links.append({"a": f"edge-{i}", "b": f"regional-{r}", "latency_ms": 6})
        links.append({"a": "zone-core", "b": f"regional-{r}", "latency_ms": 1})
    clusters.append(
        {
            "id": "central-0",
            "site": "national-cloud",
            "zone": "zone-core",
            "capacity": {"cpu": 4096, "memory_mib": 8388608, "app_slots": 10000},
            "load": {"cpu": 1000, "memory_mib": 2000000, "apps": 3000},
            "labels": {"tier": "central"},
            "address": "10.3.0.1",
        }
    )
    links.append({"a": "zone-core", "b": "central-0", "latency_ms": 20})
    apps = [
        {
            "name": APPS[0],
            "latency_budget_ms": 10,
            "needs": {"cpu": 2, "memory_mib": 4096},
            "required_labels": {"gpu": "true"},
            "stateful": True,
        },
        {"name": APPS[1], "latency_budget_ms": 15, "needs": {"cpu": 1, "memory_mib": 1024}},
        {"name": APPS[2], "latency_budget_ms": 60, "needs": {"cpu": 0.5, "memory_mib": 512}},
        {
            "name": APPS[3],
            "latency_budget_ms": 12,
            "needs": {"cpu": 4, "memory_mib": 8192},
            "stateful": True,
        },
        {"name": APPS[4], "latency_budget_ms": 8, "needs": {"cpu": 1, "memory_mib": 2048}},
    ]
    return {
        "plmn": {"mcc": "208", "mnc": "93"},
        "zones": zones,
        "tracking_areas": areas,
        "clusters": clusters,
        "links": links,
        "applications": apps,
    }


def _event(ue: str, tac: str, cell: str, t: float) -> LocationEvent:
    event_id = hashlib.blake2b(f"{ue}-{t}".encode(), digest_size=16).hexdigest()
    return polled_report(ue, tac, cell, datetime.fromtimestamp(t, UTC), event_id)


def workload(
    towers: int, ues: int, events: int, *, seed: int = 11
) -> list[tuple[str, float, LocationEvent]]:
    """Events in time order: 85 % same cell area, 13 % a neighbour tower, 2 % unmapped cells."""
    rng = random.Random(seed)
    where = [rng.randrange(towers) for _ in range(ues)]
    t0 = 1_780_000_000.0
    out = []
    by_cell: dict[tuple[str, str], LocationEvent] = {}
    for n in range(events):
        u = rng.randrange(ues)
        roll = rng.random()
        if roll < 0.13:
            where[u] = (where[u] + rng.choice((-1, 1))) % towers
        i = where[u]
        cell = f"{(i * 16 + rng.randrange(3)):09x}"
        tac = f"{i // 8 + 1:06x}"
        if roll > 0.98:
            cell = "fffffffff"
            tac = "fffffe"
        t = t0 + n * 0.001
        # decide() reads the location and takes the time as an argument: one event per cell
        # keeps the workload's own memory small.
        event = by_cell.get((tac, cell))
        if event is None:
            event = by_cell[(tac, cell)] = _event("imsi-208930000000000", tac, cell, t0)
        out.append((f"imsi-20893{u:010d}", t, event))
    return out


class Consumer:
    """What a consumer keeps between events: placements and UE states, in dicts."""

    def __init__(
        self, bundle: Bundle, stream: list[tuple[str, float, LocationEvent]], *, encode: bool
    ):
        """Place one random app per UE on a random edge cluster."""
        self.placements: dict[str, Running] = {}
        apps = list(bundle.topology.apps)
        towers = sum(1 for c in bundle.topology.clusters if c.startswith("edge-"))
        rng = random.Random(3)
        for ue, _, _ in stream:
            if ue not in self.placements:
                app = apps[rng.randrange(len(apps))]
                self.placements[ue] = Running(app, f"edge-{rng.randrange(towers)}")
        self.encode = encode
        self.states: dict[str, UeState] = {}


def run_decisions(
    bundle: Bundle,
    stream: list[tuple[str, float, LocationEvent]],
    consumer: Consumer,
    offset_s: float = 0.0,
) -> tuple[float, dict[str, int]]:
    """Decide for every event, ``offset_s`` later than recorded; return seconds and counts."""
    states, placements, encode = consumer.states, consumer.placements, consumer.encode
    counts = dict.fromkeys(Action, 0)
    start = time.perf_counter()
    for ue, t, event in stream:
        placement = placements[ue]
        before = states.get(ue)
        d = decide(t + offset_s, bundle, placement, before, event)
        states[ue] = d.state
        if encode and d.state is not before:
            encode_state(d.state)  # what the consumer writes to its changelog
        counts[d.action] += 1
        if d.action is Action.RELOCATE and d.target is not None:
            placements[ue] = Running(placement.app, d.target)
    elapsed = time.perf_counter() - start
    return elapsed, {a.value: n for a, n in counts.items()}


def full_state(now_s: float) -> UeState:
    """A worst-case state: every ring full, realistic id lengths."""
    recent = tuple((f"zone-tower-{i:03d}", now_s - 60 * i) for i in range(RECENT_ZONES))
    apps = tuple(
        AppTrack(
            APPS[a],
            tuple((f"edge-{i:03d}", now_s - 600 * i) for i in range(LEFT_CLUSTERS)),
            now_s - 30.5,
            "relocate",
            "PING_PONG_SUPPRESSED",
            now_s - 1.25,
        )
        for a in range(MAX_APPS)
    )
    return UeState("zone-tower-000", now_s - 12.5, 17, now_s, recent, apps)


def memory_per_ue(states: list[UeState]) -> tuple[float, float]:
    """Bytes per UE (key included) for states held decoded, and held encoded.

    Each state is rebuilt from its bytes inside the trace, as a consumer restoring from the
    changelog would hold it (no sharing with the caller's objects).
    """
    blobs = [encode_state(s) for s in states]
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    held = {f"imsi-20893{i:010d}": decode_state(b) for i, b in enumerate(blobs)}
    as_objects = (tracemalloc.get_traced_memory()[0] - base) / len(blobs)
    del held
    base = tracemalloc.get_traced_memory()[0]
    # orjson's output keeps a 4 KiB allocation; a store holding bytes must copy them compactly.
    encoded = {f"imsi-20893{i:010d}": bytes(bytearray(b)) for i, b in enumerate(blobs)}
    as_bytes = (tracemalloc.get_traced_memory()[0] - base) / len(blobs)
    del encoded
    tracemalloc.stop()
    return as_objects, as_bytes


def main() -> None:
    """Build the workload, run the measurements, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--towers", type=int, default=200)
    parser.add_argument("--ues", type=int, default=50_000)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--sample", type=int, default=50_000, help="UEs for the memory figure.")
    parser.add_argument("--repeat", type=int, default=3, help="Runs per figure; the best counts.")
    args = parser.parse_args()

    print(f"machine: {machine()}")
    topo_text = yaml.safe_dump(synthetic_topology(args.towers))
    t = time.perf_counter()
    bundle = load_bundle(topo_text)
    load_ms = (time.perf_counter() - t) * 1000
    topo = bundle.topology
    print(
        f"topology: {len(topo.zones)} zones, {len(topo.cells)} cells, {len(topo.clusters)} "
        f"clusters, {len(topo.doc.links)} links, {len(topo.apps)} apps; loaded in {load_ms:.0f} ms"
    )
    stream = workload(args.towers, args.ues, args.events)
    print(f"workload: {args.events} events from {args.ues} UEs, best of {args.repeat} runs")
    span_s = stream[-1][1] - stream[0][1] + 3600.0
    # The pre-built events are not part of a consumer's heap: keep the collector off them.
    gc.collect()
    gc.freeze()
    elapsed, _ = run_decisions(bundle, stream, Consumer(bundle, stream, encode=False))
    memo = len(bundle.memo)
    print(f"cold pass, filling the bundle's memo ({memo} plans): {len(stream) / elapsed:,.0f}/s")
    for with_encode in (False, True):
        consumer = Consumer(bundle, stream, encode=with_encode)
        # The first pass meets every UE for the first time, its app on a random edge cluster
        # (many moves); later passes are a consumer's steady state.
        elapsed, counts = run_decisions(bundle, stream, consumer)
        label = "decide + changed states encoded" if with_encode else "decide, states in a dict"
        print(
            f"{label}, first pass (new UEs, random placements): {len(stream) / elapsed:,.0f} "
            f"decisions/s ({counts})"
        )
        runs = [
            run_decisions(bundle, stream, consumer, offset_s=span_s * (i + 1))
            for i in range(args.repeat)
        ]
        elapsed, counts = min(runs, key=lambda r: r[0])
        rate = len(stream) / elapsed
        # The goal is the engine's (issue 5); encoding each changed state for the changelog is
        # the consumer's cost on top, shown beside it.
        if with_encode:
            record("decide", "decisions/s + changed states encoded, steady state, one core",
                   rate, "decisions/s", size=args.ues)  # fmt: skip
        else:
            record("decide", "decisions/s, steady state, one core", rate, "decisions/s",
                   goal=200_000, size=args.ues)  # fmt: skip
        print(
            f"{label}, steady state: {rate:,.0f} decisions/s on one core "
            f"({elapsed * 1e6 / len(stream):.2f} us each; {counts})"
        )
    event = stream[0][2]
    ue_zone = topo.zone_of(event)
    placement = Running("telemetry-sink", f"edge-{ue_zone.split('-')[1]}" if ue_zone else "x")
    state = decide(stream[0][1], bundle, placement, None, event).state
    n = 200_000
    t = time.perf_counter()
    for i in range(n):
        decide(stream[0][1] + i, bundle, placement, state, event)
    hot = n / (time.perf_counter() - t)
    print(f"decide, one UE staying put (the commonest case): {hot:,.0f} decisions/s")

    states: dict[str, UeState] = {}
    placements: dict[str, Running] = {}
    for ue, t_s, event in stream[: min(len(stream), 100_000)]:
        placement = placements.setdefault(ue, Running(APPS[0], "edge-0"))
        d = decide(t_s, bundle, placement, states.get(ue), event)
        states[ue] = d.state
        if d.target is not None and d.action is Action.RELOCATE:
            placements[ue] = Running(placement.app, d.target)
    typical = [len(encode_state(s)) for s in states.values()]
    worst = len(encode_state(full_state(1_780_000_000.123)))
    record("decide", "state per UE, serialized, typical", sum(typical) / len(typical), "B",
           goal=1024, better="lower")  # fmt: skip
    record("decide", "state per UE, serialized, worst case", worst, "B", goal=1024, better="lower")
    print(
        f"state per UE (serialized): typical mean {sum(typical) / len(typical):.0f} B, "
        f"max {max(typical)} B over {len(typical)} UEs; worst case (all rings full, "
        f"{MAX_APPS} apps) {worst} B"
    )
    for label, sample in (
        ("typical", list(states.values())[: args.sample]),
        ("worst-case", [full_state(1_780_000_000.0 + i) for i in range(args.sample)]),
    ):
        as_objects, as_bytes = memory_per_ue(sample)
        record("decide", f"memory for 1M tracked UEs, {label}", as_objects * 1e6 / 2**30, "GiB",
               better="lower")  # fmt: skip
        print(
            f"memory per tracked UE, {label} states (key included): {as_objects:,.0f} B decoded, "
            f"{as_bytes:,.0f} B encoded -> 1M UEs: {as_objects * 1e6 / 2**30:.2f} GiB decoded, "
            f"{as_bytes * 1e6 / 2**30:.2f} GiB encoded"
        )


if __name__ == "__main__":
    main()
