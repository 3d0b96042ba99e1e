"""End to end: location change -> decision -> Temporal signal accepted, at fixed offered rates.

Location reports go onto the real Kafka events topic at a fixed rate, published by the receiver's
publisher (subscriber.ingress.publisher: group commits, one produce request in flight); the real
consumer, ``subscriber consume`` in its own process as deployed (policy engine with the example
policy, audit topic, changelog, signals to the real Temporal dev server), handles them. Each UE
switches between tower 1 and tower 2 every eight reports, so the policy sees dwell, cooldown and
ping-pong at work and some reports lead to a relocation. Two latencies, from the moment the
report was handed to the publisher:

* decision: until the broker appended the decision to the audit topic (its LogAppendTime, ms;
  every report);
* signal: until Temporal recorded the relocation signal (the event time of the signal in the
  workflow's history; reports that lead to a move).

No worker runs: moves are recorded, not executed, which is what this measures. Each instance's
workflow is started before the clock starts, as in a running deployment, where an instance's
workflow lives as long as the instance: a move is then a signal to a workflow that exists. (The
Temporal dev server on the 2-core machine creates only about 50-100 new workflows per second,
but takes about 200 signals per second to existing ones at single-digit milliseconds; see
docs/performance.md.) The topology is the example's with 100 times the capacity: moves count
against capacity at once, and with no worker nothing completes to give it back.

The steady state is measured: for ``--warmup`` seconds first the same rate is offered, every UE
staying in tower 1 (decisions and writes, no moves), and nothing of that counts. The broker's JIT
compiles its hot paths in the first seconds after a start; a deployment's broker has long done so.

The load generator shares the two cores with what it measures, so it does little while the clock
runs: its reports are made beforehand, and it reads the audit topic in large, late fetches (the
broker's append time is the measurement, not when the generator reads it). Each line gives the CPU
time per report of the broker, Temporal, the consumer and the generator itself, and ends with the
machine's load average before and after the run: the machine is shared, and a figure taken under
load says so.

Run: ``.venv/bin/python -m bench.e2e [--rates 300 1000 2000] [--seconds 10] [--warmup 10]``. Uses
the stack named by ``SUBSCRIBER_STACK__DIR`` (default ~/.cache/subscriber/stack), starting it if
needed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import yaml
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from temporalio.client import Client

import subscriber
from bench.events import polled_report
from bench.figures import machine, record
from bench.names import child_log, clean_up, isolated
from subscriber.act.signals import connect
from subscriber.act.workflows import RelocationInput, RelocationWorkflow
from subscriber.events import EventRecord, encode_event
from subscriber.ingress.publisher import Publisher
from subscriber.logs import configure_logging
from subscriber.relocation import Placement, RelocationRequest, workflow_id
from subscriber.settings import LogSettings, PolicySettings, Settings, StackSettings, to_env
from subscriber.stack import settings_for, up
from subscriber.stack.procs import free_port

DATA = Path(subscriber.__file__).parent / "data"
TOWERS = [("000001", "000000010"), ("000002", "000000020")]
_EDGE1 = Placement(cluster="edge-1", address="127.0.10.1")
SWITCH_EVERY = 8


class Load(NamedTuple):
    """What one measurement offers: ``rate`` reports/s for ``warmup`` then ``seconds``."""

    rate: int
    seconds: float
    warmup: float
    ues: int


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _roomy(example: Path) -> str:
    """The example topology with 100 times the capacity: moves count against capacity at once
    (live capacity), and without a worker to complete them and give the sources back, the
    example's edges would be full after a few dozen moves. This measures the event path."""
    doc = yaml.safe_load(example.read_text())
    for cluster in doc["clusters"]:
        cluster["capacity"] = {k: v * 100 for k, v in cluster["capacity"].items()}
    return yaml.safe_dump(doc)


def _supi(run: str, i: int) -> str:
    """A SUPI of this run's own (the instances file accepts only SUPIs and GPSIs)."""
    return f"imsi-20893{int(run, 16) % 100_000:05d}{i:05d}"


def _reports(
    run: str, ues: int, warmup: int, total: int, rate: int, start: float
) -> list[EventRecord]:
    """Every report of the run, made before the clock starts, each dated when it is due: the
    load generator shares the two cores with what it measures, so it only sends while it runs.

    The first ``warmup`` keep every UE in tower 1, where its instance runs (decisions, audit and
    changelog writes, no moves: each app moves once a run, the cooldown being a minute); then
    each UE switches towers every ``SWITCH_EVERY`` reports."""
    out = []
    for n in range(warmup + total):
        i, measured = n % ues, n - warmup
        tac, cell = TOWERS[((measured // ues + 1 + i) // SWITCH_EVERY) % 2 if measured >= 0 else 0]
        ue = _supi(run, i)
        when = datetime.fromtimestamp(start + n / rate, UTC)
        event = polled_report(ue, tac, cell, when, f"{ue}-{n}")
        out.append(EventRecord(event.event_id, event.partition_key(), encode_event(event)))
    return out


async def _topics(settings: Settings, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    await admin.start()
    try:
        k = settings.kafka
        # The broker stamps each decision with the time it appended it: "decision recorded".
        recorded = {"message.timestamp.type": "LogAppendTime"}
        await admin.create_topics(
            [
                NewTopic(k.events_topic, partitions, 1),
                NewTopic(k.decisions_topic, partitions, 1, topic_configs=recorded),
            ]
        )
    finally:
        await admin.close()


async def _start_workflows(client: Client, queue: str, run: str, ues: int) -> None:
    """One relocation workflow per instance, placed on edge-1, as a deployment has them."""
    slots = asyncio.Semaphore(32)

    async def start(i: int) -> None:
        async with slots:
            await client.start_workflow(
                RelocationWorkflow.run,
                RelocationInput(app="video-analytics", instance=f"b{run}{i}", placement=_EDGE1),
                id=workflow_id("video-analytics", f"b{run}{i}"),
                task_queue=queue,
            )

    await asyncio.gather(*(start(i) for i in range(ues)))


@contextlib.contextmanager
def _consumer_process(settings: Settings) -> Iterator[tuple[int, int]]:
    """``subscriber consume`` as its own process, as deployed; yields its probe port and pid."""
    port = free_port()
    settings = settings.model_copy(
        update={
            "act": settings.act.model_copy(update={"metrics_port": port}),
            "log": child_log().model_copy(update={"level": settings.log.level}),
        }
    )
    # Its log to a file: a pipe nobody reads while the run lasts would stop the consumer at its
    # first 64 KiB of lines.
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "subscriber", "consume"],
            env={**os.environ, **to_env(settings)},
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        try:
            yield port, proc.pid
        except TimeoutError:
            proc.terminate()
            proc.wait(60)
            err.seek(0)
            tail = err.read()[-2000:].decode(errors="replace")
            raise SystemExit(f"the consumer never became ready: {tail}") from None
        finally:
            proc.terminate()
            proc.wait(60)


class _Decisions:
    """The audit topic as the broker appended it: each measured report's decision latency."""

    def __init__(self, sent_at: dict[str, float], total: int) -> None:
        self._sent_at = sent_at
        self._total = total
        self.latencies_ms: list[float] = []
        self._appended_ms: list[int] = []
        self.all_in = asyncio.Event()

    async def read(self, settings: Settings) -> None:
        """Read until cancelled. The broker's LogAppendTime is the measurement, not when this
        reads it: fetches wait to fill (a fetch per decision would cost the broker a request
        each, on the cores the measured pipeline shares)."""
        reader = AIOKafkaConsumer(
            settings.kafka.decisions_topic,
            bootstrap_servers=settings.kafka.bootstrap_servers,
            auto_offset_reset="earliest",
            fetch_min_bytes=1 << 20,
            fetch_max_wait_ms=100,
        )
        await reader.start()
        try:
            while True:
                for records in (await reader.getmany(timeout_ms=1000)).values():
                    for msg in records:
                        started = self._sent_at.get(orjson.loads(msg.value)["event_id"])
                        if started is not None:
                            self.latencies_ms.append(msg.timestamp - started * 1000)
                            self._appended_ms.append(msg.timestamp)
                if len(self.latencies_ms) >= self._total:
                    self.all_in.set()
        finally:
            await reader.stop()

    def rate(self) -> int:
        """Decisions per second, from the first measured one's append time to the last's."""
        if len(self._appended_ms) < 2:
            return 0
        span_s = (max(self._appended_ms) - min(self._appended_ms)) / 1000
        return round(len(self._appended_ms) / max(span_s, 1e-3))


@contextlib.asynccontextmanager
async def _publisher(settings: Settings) -> AsyncIterator[Publisher]:
    """The receiver's publisher, with a spool of its own."""
    with tempfile.TemporaryDirectory() as spool:
        receiver = settings.receiver.model_copy(update={"spool_dir": Path(spool)})
        async with Publisher(kafka=settings.kafka, receiver=receiver, client_id="bench") as pub:
            yield pub


def _cpu_s(pid: int) -> float:
    """CPU time (user + system) a process has used: what it costs, whatever else runs."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _scrape(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:
        return 0, ""


async def _until_ready(port: int) -> None:
    """The consumer owns its partitions and has restored them."""
    async with asyncio.timeout(60):
        while (await asyncio.to_thread(_scrape, port, "/readyz"))[0] != 200:  # noqa: ASYNC110 - another process
            await asyncio.sleep(0.1)


async def _signals_drained(port: int) -> None:
    """Every decided move was accepted by Temporal (the consumer's own gauge says so)."""
    async with asyncio.timeout(120):
        while True:
            _, text = await asyncio.to_thread(_scrape, port, "/metrics")
            waiting = [
                line for line in text.splitlines() if line.startswith("subscriber_signals_waiting ")
            ]
            if waiting and float(waiting[0].split()[1]) == 0:
                return
            await asyncio.sleep(0.2)


async def _signal_latencies(
    client: Client, run: str, ues: int, sent_at: dict[str, float]
) -> list[float]:
    """Report -> signal accepted: when Temporal recorded each relocate signal (its history's event
    time), from when the report that caused it was handed to the publisher."""
    out: list[float] = []
    slots = asyncio.Semaphore(16)

    async def one(i: int) -> None:
        handle = client.get_workflow_handle(workflow_id("video-analytics", f"b{run}{i}"))
        async with slots:
            async for event in handle.fetch_history_events():
                if not event.HasField("workflow_execution_signaled_event_attributes"):
                    continue
                attrs = event.workflow_execution_signaled_event_attributes
                (request,) = await client.data_converter.decode(
                    attrs.input.payloads, [RelocationRequest]
                )
                started = sent_at.get(request.event_id)
                if started is not None:
                    accepted = event.event_time.seconds + event.event_time.nanos / 1e9
                    out.append((accepted - started) * 1000)

    await asyncio.gather(*(one(i) for i in range(ues)))
    return out


async def measure(
    base: Settings, load: Load, work: Path, stack_pids: dict[str, int]
) -> dict[str, Any]:
    """Offer ``load``; return the figures of its measured part."""
    run = uuid.uuid4().hex[:6]
    registry = work / f"instances-{run}.yaml"
    registry.write_text(
        "instances:\n"
        + "".join(
            f"  - {{ue: {_supi(run, i)}, app: video-analytics, instance: b{run}{i}, "
            "cluster: edge-1}\n"
            for i in range(load.ues)
        )
    )
    policy = DATA / "policy.example.yaml"
    topology = work / f"topology-{run}.yaml"
    topology.write_text(_roomy(DATA / "topology.example.yaml"))
    settings = isolated(base, f"bench-{run}").model_copy(
        update={
            "policy": PolicySettings(topology_file=topology, policy_file=policy),
            "act": base.act.model_copy(update={"instances_file": registry}),
        }
    )
    await _topics(settings, partitions=4)
    client = await connect(settings.temporal)
    try:
        return await _measure(settings, client, load, run, stack_pids)
    finally:
        await clean_up(settings, client)


async def _measure(
    settings: Settings,
    client: Client,
    load: Load,
    run: str,
    stack_pids: dict[str, int],
) -> dict[str, Any]:
    rate, ues = load.rate, load.ues
    sent_at: dict[str, float] = {}
    total = int(rate * load.seconds)
    decisions = _Decisions(sent_at, total)

    await _start_workflows(client, settings.temporal.task_queue, run, ues)
    load_before = os.getloadavg()[0]
    with _consumer_process(settings) as (port, pid):
        await _until_ready(port)
        reading = asyncio.create_task(decisions.read(settings))
        wall = time.time() + 1.0
        warmup_n = int(rate * load.warmup)
        reports = _reports(run, ues, warmup_n, total, rate, wall)
        begin = time.perf_counter() + (wall - time.time())
        start = begin + warmup_n / rate
        parts = {**stack_pids, "consumer": pid, "load generator": os.getpid()}
        publishing: list[asyncio.Task[None]] = []
        try:
            # Each report published as the receiver publishes a callback's events (group
            # commits, one in flight), without waiting for the previous one's acknowledgement.
            async with _publisher(settings) as publisher:
                for n, report in enumerate(reports):
                    delay = begin + n / rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    if n == warmup_n:
                        cpu_before = {name: _cpu_s(p) for name, p in parts.items()}
                    if n >= warmup_n:
                        sent_at[report.event_id] = time.time()
                    publishing.append(asyncio.create_task(publisher.publish([report])))
                offered_s = time.perf_counter() - start
                await asyncio.gather(*publishing)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(decisions.all_in.wait(), timeout=120)
            cpu = {name: _cpu_s(p) - cpu_before[name] for name, p in parts.items()}
            await _signals_drained(port)
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading
    signal_ms = await _signal_latencies(client, run, ues, sent_at)

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
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "offered_rate": rate,
        "achieved_offered_rate": round(total / offered_s),
        "events": total,
        "sustained_rate": decisions.rate(),
        # The consumer's own cost per report (CPU time, not wall time): on a free core it would
        # saturate near 1e6 / this many reports per second.
        "consumer_cpu_us_per_event": round(cpu["consumer"] / total * 1e6),
        # Every part's CPU time per report while reports were offered and decided.
        "cpu_us_per_event": {name: round(s / total * 1e6) for name, s in cpu.items()},
        "decision": figures(decisions.latencies_ms),
        "signal": figures(signal_ms),
    }


async def _main(args: argparse.Namespace) -> list[dict[str, Any]]:
    configure_logging(LogSettings(level="error", format="json"))
    stack_dir = os.environ.get("SUBSCRIBER_STACK__DIR")
    settings = Settings(stack=StackSettings(dir=Path(stack_dir))) if stack_dir else Settings()
    state, _ = await up(settings)
    base = settings_for(settings, state.info())
    base = base.model_copy(update={"log": base.log.model_copy(update={"level": args.log_level})})
    stack_pids = {"broker": state.services["kafka"].pid, "temporal": state.services["temporal"].pid}
    results = []
    with tempfile.TemporaryDirectory() as work:
        for rate in args.rates:
            # Enough reports per UE to cross the dwell: fewer UEs at lower rates.
            ues = args.ues or max(50, rate // 2)
            load = Load(rate, args.seconds, args.warmup, ues)
            result = await measure(base, load, Path(work), stack_pids)
            results.append(result)
            d, g = result["decision"], result["signal"]
            if d["p99_ms"] is not None:
                record("e2e", "report -> decision recorded, p50", d["p50_ms"], "ms",
                       better="lower", size=rate)  # fmt: skip
                record("e2e", "report -> decision recorded, p99", d["p99_ms"], "ms",
                       goal=50 if rate == 1000 else None, better="lower", size=rate)  # fmt: skip
            record("e2e", "consumer CPU per report", result["consumer_cpu_us_per_event"], "µs",
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
                f"p99 {g['p99_ms']} ms ({g['count']} moves); consumer CPU "
                f"{result['consumer_cpu_us_per_event']} µs/report; load {result['load_before']} -> "
                f"{result['load_after']}; CPU µs/report: "
                + ", ".join(f"{name} {us}" for name, us in result["cpu_us_per_event"].items()),
                flush=True,
            )
    return results


def main(argv: list[str] | None = None) -> int:
    """Measure and print; ``--json`` also writes the figures."""
    parser = argparse.ArgumentParser(prog="bench.e2e", description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=int, nargs="+", default=[300, 1000, 2000])
    parser.add_argument("--seconds", type=float, default=10, help="Measured, per rate.")
    parser.add_argument(
        "--warmup",
        type=float,
        default=10,
        help="Seconds offered at the rate before measuring: the steady state is measured, not "
        "the broker's first seconds, while its JIT compiles the hot paths.",
    )
    parser.add_argument("--ues", type=int, help="UEs (default: half the rate, at least 50).")
    parser.add_argument("--json", type=Path, help="Write the figures here too.")
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning"],
        help="The consumer's log level (default warning; info, the deployed default, writes a "
        "line per report).",
    )
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    results = asyncio.run(_main(args))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "e2e": results}, indent=2))
    # temporalio's runtime can abort at interpreter exit (sdk-python#300): leave cleanly.
    os._exit(0)


if __name__ == "__main__":
    main()
