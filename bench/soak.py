"""Soak: a million distinct UEs through ``subscriber consume``, its memory held by expiry.

A producer offers location reports of ``--ues`` distinct UEs (each reported ``--reports`` times,
a few seconds apart) at ``--rate`` events/s to the real Kafka events topic; ``subscriber consume``
runs as its own process with ``act.ue_ttl_s`` = ``--ttl``. Every second the benchmark samples
the consumer's resident memory (``/proc``) and its metrics (UEs held, UEs forgotten, records
handled). It passes when the peak resident memory stays under ``--bound-mib``: with expiry, the
UEs held are about the rate times the TTL, whatever the number of distinct UEs; without it
(``--ttl`` longer than the run) memory grows with every new UE.

Run: ``.venv/bin/python -m bench.soak [--ues 1000000] [--rate 4000] [--ttl 30]``. Uses the
stack named by ``SUBSCRIBER_STACK__DIR`` (default ~/.cache/subscriber/stack), starting it if
needed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

import subscriber
from bench.figures import machine, record
from bench.names import child_log, clean_up, isolated
from subscriber.act.signals import connect
from subscriber.settings import PolicySettings, Settings, StackSettings, to_env
from subscriber.stack import settings_for, up
from subscriber.stack.procs import free_port

DATA = Path(subscriber.__file__).parent / "data"
PARTITIONS = 4


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _metrics(port: int) -> dict[str, float]:
    """The consumer's gauges and counters of interest (summed over labels)."""
    wanted = ("subscriber_ues_tracked", "subscriber_ues_expired_total", "subscriber_consumed_total")
    out = dict.fromkeys(wanted, 0.0)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            name = line.split("{", 1)[0].split(" ", 1)[0]
            if name in out:
                out[name] += float(line.rsplit(" ", 1)[1])
    return out


def _value(ue: str, n: int, when: datetime) -> bytes:
    """A polled LOCATION_REPORT as the poller publishes it (built without the model: speed)."""
    stamp = when.isoformat()
    return orjson.dumps(
        {
            "schema_version": 1,
            "event_id": f"{ue}-{n}",
            "ue": {"supi": ue},
            "source": {"nf_type": "AMF", "delivery": "polled", "event_type": "LOCATION_REPORT"},
            "location": {"rat": "NR", "plmn": "20893", "tac": "000001", "cell_id": "000000010"},
            "event_time": stamp,
            "event_time_field": "ueLocationTimestamp",
            "ingest_time": stamp,
        }
    )


async def _produce(settings: Settings, ues: int, reports: int, rate: int) -> float:
    """Offer every UE's reports at ``rate``; each UE's reports are ``ues / rate`` s apart."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap_servers, linger_ms=20, acks=1
    )
    await producer.start()
    try:
        start = time.perf_counter()
        total = ues * reports
        for n in range(total):
            if n % 1000 == 0:
                delay = start + n / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            ue = f"imsi-2089{n % ues:011d}"
            await producer.send(
                settings.kafka.events_topic,
                _value(ue, n // ues, datetime.now(UTC)),
                key=ue.encode(),
            )
        await producer.flush()
        return time.perf_counter() - start
    finally:
        await producer.stop()


async def soak(base: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """Run the soak; return its figures."""
    run = uuid.uuid4().hex[:6]
    port = free_port()
    k = base.kafka
    settings = isolated(base, f"soak-{run}").model_copy(
        update={
            "policy": PolicySettings(
                topology_file=DATA / "topology.example.yaml",
                policy_file=DATA / "policy.example.yaml",
            ),
            "act": base.act.model_copy(update={"ue_ttl_s": args.ttl, "metrics_port": port}),
            "log": child_log(),
        }
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=k.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(settings.kafka.events_topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    env = {**os.environ, **to_env(settings)}
    consumer = subprocess.Popen(  # noqa: ASYNC220 - started once, waited for off the loop
        [sys.executable, "-m", "subscriber", "consume"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    samples: list[dict[str, float]] = []
    total = args.ues * args.reports
    try:
        for _ in range(600):  # the consumer's metrics endpoint, once it is up
            with contextlib.suppress(OSError):
                _metrics(port)
                break
            await asyncio.sleep(0.1)
        base_rss = _rss_mib(consumer.pid)
        producing = asyncio.create_task(_produce(settings, args.ues, args.reports, args.rate))
        started = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            m = await asyncio.to_thread(_metrics, port)
            sample = {
                "t_s": round(time.monotonic() - started, 1),
                "rss_mib": _rss_mib(consumer.pid),
            }
            sample.update(m)
            samples.append(sample)
            if len(samples) % 10 == 0:
                print(
                    f"  t={sample['t_s']:>6.0f} s  handled {int(m['subscriber_consumed_total']):>9}"
                    f"  held {int(m['subscriber_ues_tracked']):>8}"
                    f"  forgotten {int(m['subscriber_ues_expired_total']):>8}"
                    f"  rss {sample['rss_mib']:.0f} MiB",
                    flush=True,
                )
            if producing.done() and m["subscriber_consumed_total"] >= total:
                break
            if consumer.poll() is not None:
                raise RuntimeError(f"the consumer exited with {consumer.returncode}")
        produced_s = producing.result()
        handled_s = samples[-1]["t_s"]
    finally:
        consumer.terminate()
        await asyncio.to_thread(consumer.wait, 60)
        await clean_up(settings, await connect(settings.temporal))
    peak = max(s["rss_mib"] for s in samples)
    return {
        "ues": args.ues,
        "reports_per_ue": args.reports,
        "events": total,
        "offered_rate": args.rate,
        "produced_s": round(produced_s, 1),
        "handled_rate": round(total / handled_s),
        "ttl_s": args.ttl,
        "rss_start_mib": round(base_rss),
        "rss_peak_mib": round(peak),
        "rss_end_mib": round(samples[-1]["rss_mib"]),
        "ues_held_peak": int(max(s["subscriber_ues_tracked"] for s in samples)),
        "ues_forgotten": int(samples[-1]["subscriber_ues_expired_total"]),
        "bound_mib": args.bound_mib,
        "within_bound": peak <= args.bound_mib,
        "load": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    """Soak and print; exit 1 when the memory bound is exceeded."""
    parser = argparse.ArgumentParser(prog="bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--ues", type=int, default=1_000_000, help="Distinct UEs.")
    parser.add_argument("--reports", type=int, default=2, help="Reports per UE.")
    parser.add_argument("--rate", type=int, default=4000, help="Events offered per second.")
    parser.add_argument("--ttl", type=float, default=30.0, help="act.ue_ttl_s of the consumer.")
    parser.add_argument("--bound-mib", type=float, default=400.0, help="Peak RSS allowed.")
    parser.add_argument("--json", type=Path, help="Write the figures here too.")
    args = parser.parse_args(argv)
    print(f"machine: {machine()}; load {os.getloadavg()}", flush=True)
    stack_dir = os.environ.get("SUBSCRIBER_STACK__DIR")
    settings = Settings(stack=StackSettings(dir=Path(stack_dir))) if stack_dir else Settings()
    state, _ = asyncio.run(up(settings))
    result = asyncio.run(soak(settings_for(settings, state.info()), args))
    print(json.dumps(result, indent=2))
    record("soak", "consumer peak RSS", result["rss_peak_mib"], "MiB", goal=args.bound_mib,
           better="lower", size=args.ues)  # fmt: skip
    record("soak", "UEs held at peak", result["ues_held_peak"], "UEs", better="lower",
           size=args.ues)  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "soak": result}, indent=2))
    return 0 if result["within_bound"] else 1


if __name__ == "__main__":
    sys.exit(main())
