"""End to end: location change -> decision -> Temporal signal accepted, at fixed offered rates.

A producer sends location reports onto the real Kafka events topic at a fixed rate; the real
consumer (policy engine with the example policy, audit topic, changelog, signal-with-start on the
real Temporal dev server) handles them. Each UE switches between tower 1 and tower 2 every eight
reports, so the policy sees dwell, cooldown and ping-pong at work and some reports lead to a
relocation. Two latencies, from the moment the report was handed to the producer:

* decision: until the decision is acknowledged on the audit topic (every report);
* signal: until Temporal accepted the relocation signal (reports that lead to a move).

No worker runs: moves are recorded, not executed, which is what this measures. The Temporal dev
server (SQLite) itself accepts about 100 signal-with-start calls/s one at a time and about 250/s
concurrently on this machine: the signal figures include its queueing.

Run: ``.venv/bin/python -m bench.e2e [--rates 100 1000] [--seconds 10]``. Uses the stack named
by ``SUBSCRIBER_STACK__DIR`` (default ~/.cache/subscriber/stack), starting it if needed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

import subscriber
from bench.events import polled_report
from bench.figures import machine, record
from subscriber.act.signals import SignalReceipt, connect, request_relocation
from subscriber.app.consumer import open_consumer
from subscriber.app.lifecycle import running
from subscriber.events import LocationEvent
from subscriber.logs import configure_logging
from subscriber.relocation import RelocationRequest
from subscriber.settings import LogSettings, PolicySettings, Settings, StackSettings
from subscriber.stack import settings_for, up

DATA = Path(subscriber.__file__).parent / "data"
TOWERS = [("000001", "000000010"), ("000002", "000000020")]
SWITCH_EVERY = 8


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _event(ue: str, i: int, n: int) -> LocationEvent:
    tac, cell = TOWERS[((n + i) // SWITCH_EVERY) % 2]
    return polled_report(ue, tac, cell, datetime.now(UTC), f"{ue}-{n}")


async def _topics(settings: Settings, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    await admin.start()
    try:
        k = settings.kafka
        await admin.create_topics(
            [NewTopic(t, partitions, 1) for t in (k.events_topic, k.decisions_topic)]
        )
    finally:
        await admin.close()


async def measure(
    base: Settings, rate: int, seconds: float, ues: int, work: Path
) -> dict[str, Any]:
    """Offer ``rate`` events/s for ``seconds``; return latency figures."""
    run = uuid.uuid4().hex[:6]
    registry = work / f"instances-{run}.yaml"
    registry.write_text(
        "instances:\n"
        + "".join(
            f"  - {{ue: ue{run}{i}, app: video-analytics, instance: b{run}{i}, cluster: edge-1}}\n"
            for i in range(ues)
        )
    )
    policy = DATA / "policy.example.yaml"
    k = base.kafka
    settings = base.model_copy(
        update={
            "kafka": k.model_copy(
                update={
                    "events_topic": f"bench-{run}.events",
                    "decisions_topic": f"bench-{run}.decisions",
                    "state_topic": f"bench-{run}.state",
                    "dead_letter_topic": f"bench-{run}.dead",
                    "consumer_group": f"bench-{run}",
                }
            ),
            "temporal": base.temporal.model_copy(update={"task_queue": f"bench-{run}"}),
            "policy": PolicySettings(
                topology_file=DATA / "topology.example.yaml", policy_file=policy
            ),
            "act": base.act.model_copy(update={"instances_file": registry}),
        }
    )
    await _topics(settings, partitions=4)
    sent_at: dict[str, float] = {}
    signal_ms: list[float] = []
    decision_ms: list[float] = []
    total = int(rate * seconds)
    all_decided = asyncio.Event()

    async def signal(client: Any, queue: str, req: RelocationRequest) -> SignalReceipt:
        receipt = await request_relocation(client, queue, req)
        started = sent_at.get(req.event_id)
        if started is not None:
            signal_ms.append((time.perf_counter() - started) * 1000)
        return receipt

    async def audit_reader() -> None:
        reader = AIOKafkaConsumer(
            settings.kafka.decisions_topic,
            bootstrap_servers=k.bootstrap_servers,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=5,
        )
        await reader.start()
        try:
            async for msg in reader:
                started = sent_at.get(orjson.loads(msg.value)["event_id"])
                if started is not None:
                    decision_ms.append((time.perf_counter() - started) * 1000)
                    if len(decision_ms) >= total:
                        all_decided.set()
        finally:
            await reader.stop()

    client = await connect(settings.temporal)
    async with running(open_consumer(settings, temporal=client, signal=signal)) as consumer:
        reading = asyncio.create_task(audit_reader())
        # Let the group form and restore its partitions before the clock starts.
        async with asyncio.timeout(60):
            while len(consumer.records) < 4:  # noqa: ASYNC110 - polling a plain dict
                await asyncio.sleep(0.05)
        producer = AIOKafkaProducer(
            bootstrap_servers=k.bootstrap_servers, enable_idempotence=True, acks="all"
        )
        await producer.start()
        try:
            start = time.perf_counter()
            for n in range(total):
                delay = start + n / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                event = _event(f"ue{run}{n % ues}", n % ues, n // ues + 1)
                sent_at[event.event_id] = time.perf_counter()
                await producer.send(
                    settings.kafka.events_topic,
                    orjson.dumps(event.model_dump(mode="json", exclude_none=True)),
                    key=event.partition_key(),
                )
            offered_s = time.perf_counter() - start
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_decided.wait(), timeout=120)
            drained_s = time.perf_counter() - start
        finally:
            await producer.stop()
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading

    def figures(values: list[float]) -> dict[str, float | None]:
        if not values:
            return {"count": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
        return {
            "count": len(values),
            "p50_ms": round(statistics.median(values), 2),
            "p99_ms": round(_percentile(values, 0.99), 2),
            "max_ms": round(max(values), 2),
        }

    return {
        "offered_rate": rate,
        "achieved_offered_rate": round(total / offered_s),
        "events": total,
        "sustained_rate": round(len(decision_ms) / drained_s),
        "decision": figures(decision_ms),
        "signal": figures(signal_ms),
    }


async def _main(args: argparse.Namespace) -> list[dict[str, Any]]:
    configure_logging(LogSettings(level="error", format="json"))
    stack_dir = os.environ.get("SUBSCRIBER_STACK__DIR")
    settings = Settings(stack=StackSettings(dir=Path(stack_dir))) if stack_dir else Settings()
    state, _ = await up(settings)
    base = settings_for(settings, state.info())
    results = []
    with tempfile.TemporaryDirectory() as work:
        for rate in args.rates:
            # Enough reports per UE to cross the dwell: fewer UEs at lower rates.
            ues = args.ues or max(50, rate // 2)
            result = await measure(base, rate, args.seconds, ues, Path(work))
            results.append(result)
            d, g = result["decision"], result["signal"]
            if d["p99_ms"] is not None:
                record("e2e", "report -> decision recorded, p50", d["p50_ms"], "ms",
                       better="lower", size=rate)  # fmt: skip
                record("e2e", "report -> decision recorded, p99", d["p99_ms"], "ms",
                       better="lower", size=rate)  # fmt: skip
            if g["p99_ms"] is not None:
                record("e2e", "report -> signal accepted, p50", g["p50_ms"], "ms",
                       better="lower", size=rate)  # fmt: skip
                record("e2e", "report -> signal accepted, p99", g["p99_ms"], "ms",
                       goal=50 if rate == 1000 else None, better="lower", size=rate)  # fmt: skip
            print(
                f"e2e {rate:>5}/s offered ({result['achieved_offered_rate']}/s achieved, "
                f"{result['sustained_rate']}/s handled): decision p50 {d['p50_ms']} ms "
                f"p99 {d['p99_ms']} ms ({d['count']}); signal accepted p50 {g['p50_ms']} ms "
                f"p99 {g['p99_ms']} ms ({g['count']} moves)",
                flush=True,
            )
    return results


def main(argv: list[str] | None = None) -> int:
    """Measure and print; ``--json`` also writes the figures."""
    parser = argparse.ArgumentParser(prog="bench.e2e", description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--ues", type=int, help="UEs (default: half the rate, at least 50).")
    parser.add_argument("--json", type=Path, help="Write the figures here too.")
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    results = asyncio.run(_main(args))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "e2e": results}, indent=2))
    # temporalio's runtime can abort at interpreter exit (sdk-python#300): leave cleanly.
    os._exit(0)


if __name__ == "__main__":
    main()
