"""Benchmark of ``subscriber shadow``: events per second through the consumer's pure core.

Run with ``.venv/bin/python -m bench.shadow`` (``--help`` for sizes). It simulates a seeded
mobility timeline over the example topology, writes it as a recording, then measures on one
core:

* the engine alone (:func:`subscriber.sre.shadow.run_policy` over decoded events: the
  :func:`~subscriber.decide.step.handle_event` path, rechecks and the accounting), with one and
  with three applications per UE, for the example policy and for one without hysteresis;
* the whole command's work (reading and decoding the recording, two policies), in one process
  and split by UE over two (``--workers``).

Figures are printed with the machine they were taken on. This is not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path

import subscriber
from bench.figures import machine, record
from subscriber.decide.bundle import load_bundle
from subscriber.decide.engine import read_bundle
from subscriber.events import LocationEvent
from subscriber.sre.shadow import auto_instances, run_policy
from subscriber.sre.simulate import Mobility, simulate, to_recording
from subscriber.sre.whatif import Job, recorded_events, recording_span, run_policies

DATA = Path(subscriber.__file__).parent / "data"
TOPOLOGY = DATA / "topology.example.yaml"
POLICY = DATA / "policy.example.yaml"
EAGER = "label: eager\ndwell: {enabled: false}\nping_pong: {enabled: false}\n"


def _engine_rate(events: list[LocationEvent], policy: str | None, apps: list[str]) -> float:
    topology_text = TOPOLOGY.read_bytes()
    bundle = load_bundle(topology_text, policy if policy is not None else POLICY.read_bytes())
    start_bundle = load_bundle(topology_text, POLICY.read_bytes())
    end_s = events[-1].event_time.timestamp()
    gc.collect()
    started = time.perf_counter()
    run_policy(events, bundle, auto_instances(start_bundle, apps), label="x", end_s=end_s)
    return len(events) / (time.perf_counter() - started)


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ues", type=int, default=5000)
    parser.add_argument("--duration", type=float, default=3600.0, help="Virtual seconds.")
    parser.add_argument("--repeat", type=int, default=3, help="Best of this many runs.")
    args = parser.parse_args()

    print(f"machine: {machine()}")
    params = Mobility(ues=args.ues, duration_s=args.duration)
    topology = read_bundle(TOPOLOGY).topology
    moves = simulate(topology, params, 1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.jsonl.gz"
        from datetime import UTC, datetime

        to_recording(
            path,
            moves,
            params,
            start=datetime(2026, 7, 1, tzinfo=UTC),
            correlation_id="bench",
            callbacks=False,
            source={"type": "bench"},
        )
        size = path.stat().st_size
        started = time.perf_counter()
        _, events = recorded_events(path)
        read_s = time.perf_counter() - started
        print(
            f"workload: {len(events):,} events of {args.ues:,} UEs over {args.duration:g} s "
            f"(seeded simulation); recording {size / 1e6:.1f} MB gzip, "
            f"read+decode {len(events) / read_s:,.0f} events/s"
        )
        all_apps = list(topology.apps)
        for label, policy in (("example policy", None), ("no hysteresis", EAGER)):
            for apps in (all_apps[:1], all_apps):
                best = max(_engine_rate(events, policy, apps) for _ in range(args.repeat))
                if policy is None and len(apps) == 1:
                    record("shadow", "shadow engine, example policy, 1 app per UE", best,
                           "events/s", goal=100_000, size=args.ues)  # fmt: skip
                print(
                    f"engine, {label}, {len(apps)} app(s) per UE: {best:,.0f} events/s "
                    f"({best * len(apps):,.0f} decisions/s)"
                )
        eager = Path(tmp) / "eager.yaml"
        eager.write_text(EAGER)
        _, _, end_s = recording_span(path)
        job = Job(
            recording=path,
            topology=TOPOLOGY,
            policies=(("example", POLICY), ("eager", eager)),
            instances_file=None,
            apps=tuple(all_apps),
            flip_window_s=600.0,
            end_s=end_s,
        )
        for workers in (1, 2):
            started = time.perf_counter()
            run_policies(job, workers)
            whole = time.perf_counter() - started
            print(
                f"shadow command's work, {workers} process(es) (read, decode, 2 policies x "
                f"{len(all_apps)} apps): {whole:.2f} s, {len(events) / whole:,.0f} events/s"
            )


if __name__ == "__main__":
    main()
