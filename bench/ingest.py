"""Benchmark: callback ingest over h2c prior knowledge, ours against the bare-granian ceiling.

Run: ``.venv/bin/python -m bench.ingest [--rounds 3] [--duration 8] [--rate 2000] [--workers 1]``
(needs ``subscriber stack up`` for Kafka, and h2load from Debian's nghttp2-client).

Two servers take turns on the same cores (``--server-cpus``, default core 0), while h2load runs
on the others (``--load-cpus``, default core 1), in interleaved rounds:

* **ceiling**: granian serving a bare ASGI app that reads the body, parses the JSON (orjson)
  and answers 204;
* **ours**: ``subscriber serve``: validate, normalize, Kafka acknowledged (acks=all,
  idempotent), then 204, counted in the per-subscription ``callbacks_accepted`` line.

Both get the same free5GC-shaped body (the D1 AMF LOCATION_REPORT notification). Figures per
server (medians over rounds): saturation req/s (``h2load -c C -m M``), then p50/p99 latency at a
fixed offered rate (``h2load --rps``), from h2load's per-request log; and the server's CPU time
per callback answered (of which its event-loop thread's), and the broker's. At the end the events
topic must hold at least as many records as ours answered 204: every 204 was acknowledged.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench.figures import record
from bench.names import drop_topics
from subscriber.settings import Settings
from subscriber.stack.procs import free_port
from subscriber.stack.state import read_state

BODY = Path(__file__).parent.parent / "tests" / "vectors" / "d1-amf-notification-location.json"
PATH = "/callbacks/amf/loc-1"


async def ceiling_app(
    scope: Mapping[str, Any],
    receive: Callable[[], Awaitable[Mapping[str, Any]]],
    send: Callable[[Mapping[str, Any]], Awaitable[None]],
) -> None:
    """The ceiling: read the body, parse the JSON, answer 204; nothing else."""
    if scope["type"] != "http":
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    orjson.loads(b"".join(chunks))
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


@dataclass
class Run:
    """One h2load run's figures."""

    rps: float
    succeeded: int
    failed: int
    p50_ms: float | None = None
    p99_ms: float | None = None
    server_cpu_us: float | None = None  # the server's CPU per callback answered
    loop_cpu_us: float | None = None  # of which its event-loop (main) threads'
    broker_cpu_us: float | None = None  # the Kafka broker's CPU per callback answered


_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def _cpu_s(pids: set[int]) -> tuple[float, float]:
    """CPU seconds (user + system) so far of these processes and all their descendants.

    Returns:
        All their threads', and their main threads' alone: in a granian worker that is the
        thread running the event loop (the app), the others are granian's Rust threads
        handing requests to it (and our log writer).
    """
    parents: dict[int, int] = {}
    times: dict[int, tuple[float, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            process = _ticks_s((entry / "stat").read_text())
            main = _ticks_s((entry / "task" / entry.name / "stat").read_text())
        except OSError:  # it exited meanwhile
            continue
        parents[int(entry.name)] = process[0]
        times[int(entry.name)] = (process[1], main[1])
    tree = set(pids)
    grew = True
    while grew:
        more = {pid for pid, ppid in parents.items() if ppid in tree} - tree
        grew = bool(more)
        tree |= more
    present = [times[pid] for pid in tree if pid in times]
    return sum(t[0] for t in present), sum(t[1] for t in present)


def _ticks_s(stat: str) -> tuple[int, float]:
    """The parent pid and the CPU seconds (user + system) of a ``/proc`` stat line."""
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) * _TICK_S


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"server not listening on {port} after {timeout_s} s")


def _h2load(
    url: str,
    args: argparse.Namespace,
    *,
    rate: int | None,
    log_file: Path | None,
    server: int | None = None,
    broker: int | None = None,
) -> Run:
    """One h2load run; with ``server`` (and ``broker``), their CPU per callback answered.

    The CPU is counted over the measured seconds only: from the end of h2load's warm-up to
    its exit.
    """
    cmd = [
        "taskset", "-c", args.load_cpus, "h2load",
        "-c", str(args.clients), "-m", str(args.streams),
        "-D", str(args.duration), "--warm-up-time", "2",
        "-d", str(BODY), "-H", "content-type: application/json",
    ]  # fmt: skip
    if rate is not None:
        cmd += ["--rps", str(max(1, rate // args.clients))]
    if log_file is not None:
        cmd += ["--log-file", str(log_file)]
    load = subprocess.Popen([*cmd, url], stdout=subprocess.PIPE, text=True)
    cpu_before: tuple[tuple[float, float], float] | None = None
    if server is not None:
        time.sleep(2)  # h2load's warm-up
        cpu_before = (_cpu_s({server}), _cpu_s({broker})[0] if broker else 0.0)
    out, _ = load.communicate()
    if load.returncode:
        raise subprocess.CalledProcessError(load.returncode, cmd)
    cpu_after = (_cpu_s({server}), _cpu_s({broker})[0] if broker else 0.0) if server else None
    rps, succeeded, failed = 0.0, 0, 0
    for line in out.splitlines():
        if line.startswith("finished in"):
            rps = float(line.split(",")[1].split()[0])
        elif line.startswith("requests:"):
            parts = line.split(",")
            succeeded = int(parts[3].split()[0])
            failed = int(parts[4].split()[0])
    run = Run(rps=rps, succeeded=succeeded, failed=failed)
    if cpu_before is not None and cpu_after is not None and succeeded:
        run.server_cpu_us = (cpu_after[0][0] - cpu_before[0][0]) / succeeded * 1e6
        run.loop_cpu_us = (cpu_after[0][1] - cpu_before[0][1]) / succeeded * 1e6
        if broker:
            run.broker_cpu_us = (cpu_after[1] - cpu_before[1]) / succeeded * 1e6
    if log_file is not None:
        latencies = sorted(
            int(cols[2])
            for cols in (row.split("\t") for row in log_file.read_text().splitlines())
            if len(cols) >= 3 and cols[1] == "204"
        )
        if latencies:
            q = statistics.quantiles(latencies, n=100, method="inclusive")
            run.p50_ms, run.p99_ms = q[49] / 1000, q[98] / 1000
    return run


def _start_ceiling(port: int, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    cmd = [
        "taskset", "-c", args.server_cpus, str(Path(sys.executable).parent / "granian"),
        "--interface", "asgi", "--http", "auto", "--no-ws", "--log-level", "warning",
        "--workers", str(args.workers), "--host", "127.0.0.1", "--port", str(port),
        "bench.ingest:ceiling_app",
    ]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _start_ours(
    port: int, args: argparse.Namespace, env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    cmd = [
        "taskset", "-c", args.server_cpus, sys.executable, "-m", "subscriber", "serve",
        "--registry", "bench.registry:key_is_correlation_id",
    ]  # fmt: skip
    server_env = {**env, "SUBSCRIBER_RECEIVER__PORT": str(port)}
    with log.open("ab") as out:
        return subprocess.Popen(cmd, env=server_env, stdout=out, stderr=out)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def _topic_size(bootstrap: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    tps = [TopicPartition(topic, p["partition"]) for p in described.get("partitions", [])]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(tps) if tps else {}
        return sum(ends.values())
    finally:
        await consumer.stop()


def _measure(
    name: str,
    start: Callable[[int], subprocess.Popen[bytes]],
    args: argparse.Namespace,
    tmp: Path,
    broker: int | None,
) -> tuple[Run, Run]:
    port = free_port()
    proc = start(port)
    try:
        _wait_port(port, proc)
        url = f"http://127.0.0.1:{port}{PATH}"
        # a short warm-up run so that connections, producer and topic metadata are in place
        subprocess.run(
            ["h2load", "-n", "200", "-c", "2", "-d", str(BODY), "-H",
             "content-type: application/json", url],
            capture_output=True, check=True,
        )  # fmt: skip
        saturation = _h2load(url, args, rate=None, log_file=None, server=proc.pid, broker=broker)
        fixed = _h2load(url, args, rate=args.rate, log_file=tmp / f"{name}.log")
    finally:
        _stop(proc)
    return saturation, fixed


def _median(values: list[float | None]) -> float:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else float("nan")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(prog="bench.ingest", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="Interleaved rounds per server.")
    parser.add_argument("--duration", type=int, default=8, help="Seconds measured per run.")
    parser.add_argument("--rate", type=int, default=2000, help="Offered req/s for latency.")
    parser.add_argument("--clients", type=int, default=8, help="h2load -c (connections).")
    parser.add_argument("--streams", type=int, default=16, help="h2load -m (streams each).")
    parser.add_argument("--workers", type=int, default=1, help="Server worker processes.")
    parser.add_argument("--server-cpus", default="0", help="taskset list for the servers.")
    parser.add_argument("--load-cpus", default="1", help="taskset list for h2load.")
    args = parser.parse_args(argv)
    if shutil.which("h2load") is None:
        print("bench.ingest: h2load not found (apt-get install nghttp2-client)", file=sys.stderr)
        return 2
    settings = Settings()
    state = read_state(settings.stack.dir)
    bootstrap = state.info().kafka_bootstrap
    broker = state.services["kafka"].pid if "kafka" in state.services else None
    topic = f"bench-ingest-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmpdir:
        tmp = Path(tmpdir)
        env = {
            **os.environ,
            "SUBSCRIBER_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "SUBSCRIBER_KAFKA__EVENTS_TOPIC": topic,
            "SUBSCRIBER_KAFKA__DEAD_LETTER_TOPIC": f"{topic}-dead",
            "SUBSCRIBER_RECEIVER__SPOOL_DIR": str(tmp / "spool"),
            "SUBSCRIBER_RECEIVER__WORKERS": str(args.workers),
            "SUBSCRIBER_LOG__FORMAT": "json",
            "SUBSCRIBER_LOG__PSEUDONYM_KEY": secrets.token_hex(16),
        }
        results: dict[str, list[tuple[Run, Run]]] = {"ceiling": [], "ours": []}
        for _ in range(args.rounds):
            results["ceiling"].append(
                _measure("ceiling", lambda port: _start_ceiling(port, args), args, tmp, broker)
            )
            results["ours"].append(
                _measure(
                    "ours",
                    lambda port: _start_ours(port, args, env, tmp / "ours.log"),
                    args,
                    tmp,
                    broker,
                )
            )
        acked = asyncio.run(_topic_size(bootstrap, topic))
        asyncio.run(drop_topics(bootstrap, [topic, f"{topic}-dead"]))
        spooled = sum(f.stat().st_size for f in (tmp / "spool").rglob("*.seg"))
    print(f"machine: {platform.node()} {platform.machine()} {_cpu_model()}, {os.cpu_count()} CPUs")
    print(
        f"servers on cpus {args.server_cpus} ({args.workers} worker(s)), h2load on cpus "
        f"{args.load_cpus}; h2c prior knowledge, -c {args.clients} -m {args.streams}, "
        f"{args.duration} s after 2 s warm-up, {args.rounds} interleaved rounds; "
        f"body {BODY.stat().st_size} B"
    )
    header = ("server", "saturation req/s", "fail", "rate", "p50 ms", "p99 ms", "cpu µs", "broker")
    print("{:<8} {:>17} {:>5} {:>6} {:>7} {:>7} {:>7} {:>7}".format(*header))
    medians = {}
    for name, runs in results.items():
        sat = _median([r[0].rps for r in runs])
        fails = sum(r[0].failed + r[1].failed for r in runs)
        p50 = _median([r[1].p50_ms for r in runs])
        p99 = _median([r[1].p99_ms for r in runs])
        rate = _median([r[1].rps for r in runs])
        cpu = _median([r[0].server_cpu_us for r in runs])
        broker_cpu = _median([r[0].broker_cpu_us for r in runs])
        medians[name] = sat
        record("ingest", f"{name}: saturation, h2c", sat, "req/s")
        record("ingest", f"{name}: p50 at {args.rate} req/s", p50, "ms", better="lower")
        record("ingest", f"{name}: p99 at {args.rate} req/s", p99, "ms", better="lower")
        record("ingest", f"{name}: server CPU per callback", cpu, "µs", better="lower")
        print(
            f"{name:<8} {sat:>17,.0f} {fails:>5} {rate:>6,.0f} {p50:>7.2f} {p99:>7.2f}"
            f" {cpu:>7.0f} {broker_cpu:>7.0f}"
        )
        print(f"         rounds: {', '.join(f'{r[0].rps:,.0f}' for r in runs)}")
        print(
            f"         cpu µs: {', '.join(f'{r[0].server_cpu_us or 0:.0f}' for r in runs)}"
            f" (event loop's thread: {', '.join(f'{r[0].loop_cpu_us or 0:.0f}' for r in runs)})"
        )
    ratio = medians["ours"] / medians["ceiling"]
    record("ingest", "ours / ceiling, saturation", ratio, "ratio", goal=0.8)
    per_round = [
        o[0].rps / c[0].rps for o, c in zip(results["ours"], results["ceiling"], strict=True)
    ]
    print(
        f"ours/ceiling = {ratio:.2f} (goal >= 0.8); per round: "
        f"{', '.join(f'{r:.2f}' for r in per_round)}"
    )
    ours_ok = sum(r[0].succeeded + r[1].succeeded for r in results["ours"])
    print(
        f"Kafka: {acked:,} records on {topic} for {ours_ok:,} measured 204s (plus warm-ups); "
        f"spool left: {spooled} bytes"
    )
    return 0 if acked >= ours_ok else 1


def _cpu_model() -> str:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


if __name__ == "__main__":
    raise SystemExit(main())
