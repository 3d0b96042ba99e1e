"""Benchmark of ``subscriber replay``: items per second to Kafka and to a real receiver.

Run with ``.venv/bin/python -m bench.replay`` (``--help`` for sizes). It starts (or reuses) the
local stack (``subscriber stack up``), simulates a seeded mobility timeline, writes it as an
events recording and as a raw-callbacks recording, and replays at maximum speed:

* the events onto a fresh Kafka topic (idempotent producer, ``acks=all``, keyed by UE);
* the callbacks to a null app under granian (204 at once, in a child process): what the
  replay client itself reaches; and to the real receiver (granian, h2c prior knowledge and
  HTTP/1.1, in a child process), which publishes every event to Kafka before answering 204.

Besides the rate (callbacks per second of wall time), each line gives the client's own CPU time
per callback (``cpu-s``): the rate one core would reach if the server were infinitely fast. The
goal, 10k callbacks/s from one process over h2c, is recorded against the null server's figure.

Figures are printed with the machine they were taken on. This is not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import subscriber
from bench.figures import machine, record
from bench.names import drop_topics
from subscriber.decide.engine import read_bundle
from subscriber.settings import Settings, load_settings
from subscriber.sre.replay import Selection, Summary, replay_file
from subscriber.sre.simulate import Mobility, simulate, to_recording
from subscriber.stack.procs import free_port

TOPOLOGY = Path(subscriber.__file__).parent / "data" / "topology.example.yaml"


async def _null_app(scope: Any, protocol: Any) -> None:
    """Answers every request 204 after reading its body: the replay client's own ceiling.

    granian's own interface (RSGI), not ASGI: its per-request cost in Python is a fraction of
    ASGI's, so the server stays ahead of the client it measures.
    """
    await protocol()
    protocol.response_empty(204, [])


async def _serve(port: int, null: bool) -> None:
    """The child process: the receiver, accepting any subscription key, until killed."""
    from granian.constants import HTTPModes, Interfaces
    from granian.server.embed import Server

    if null:
        await Server(
            _null_app,
            address="127.0.0.1",
            port=port,
            interface=Interfaces.RSGI,
            http=HTTPModes.auto,
            websockets=False,
        ).serve()
        return

    from bench.registry import AcceptAny
    from subscriber.app.receiver import serving_receiver

    settings = load_settings()
    receiver = settings.receiver.model_copy(update={"host": "127.0.0.1", "port": port})
    async with serving_receiver(
        settings.model_copy(update={"receiver": receiver}), registry=AcceptAny()
    ):
        await asyncio.Event().wait()


async def _wait_port(port: int) -> None:
    async with asyncio.timeout(30):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            writer.close()
            await writer.wait_closed()
            return


async def _bench(settings: Settings, args: argparse.Namespace) -> None:
    bootstrap = settings.kafka.bootstrap_servers
    params = Mobility(ues=args.ues, duration_s=args.duration)
    moves = simulate(read_bundle(TOPOLOGY).topology, params, 1)
    start = datetime(2026, 7, 1, tzinfo=UTC)
    run = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as tmp:
        events, callbacks = Path(tmp) / "events.jsonl.gz", Path(tmp) / "callbacks.jsonl.gz"
        to_recording(
            events, moves, params, start=start, correlation_id="b", callbacks=False, source={}
        )
        to_recording(
            callbacks, moves, params, start=start, correlation_id="b", callbacks=True, source={}
        )
        print(f"workload: {len(moves):,} items of {args.ues:,} UEs (seeded simulation)")

        try:
            await _measure(events, callbacks, Path(tmp), bootstrap, run, args)
        finally:
            await drop_topics(bootstrap, [f"bench-replay-{run}", f"bench-receiver-{run}"])


async def _measure(
    events: Path, callbacks: Path, tmp: Path, bootstrap: str, run: str, args: argparse.Namespace
) -> None:
    await _create_topic(bootstrap, f"bench-replay-{run}")
    summary = await replay_file(
        events,
        to="kafka",
        selection=Selection(),
        speed=0,
        bootstrap=bootstrap,
        topic=f"bench-replay-{run}",
        compression="gzip",
    )
    record("replay", "replay to Kafka, max speed", summary.rate, "events/s", size=args.ues)
    print(f"to Kafka (idempotent, acks=all, gzip): {summary.line()}")

    for topic in (f"bench-receiver-{run}",):
        await _create_topic(bootstrap, topic)
    for null in (True, False):
        await _to_receiver(callbacks, tmp, bootstrap, run, args, null=null)


async def _create_topic(bootstrap: str, topic: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 3, 1)])
    finally:
        await admin.close()


async def _to_receiver(
    callbacks: Path, tmp: Path, bootstrap: str, run: str, args: argparse.Namespace, *, null: bool
) -> None:
    what = "a null app (204 at once)" if null else "the receiver"
    port = free_port()
    env = {
        **os.environ,
        "SUBSCRIBER_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "SUBSCRIBER_KAFKA__EVENTS_TOPIC": f"bench-receiver-{run}",
        "SUBSCRIBER_RECEIVER__SPOOL_DIR": str(tmp / "spool"),
        "SUBSCRIBER_LOG__LEVEL": "warning",
    }
    argv = ["-m", "bench.replay", "--serve", str(port), *(["--null"] if null else [])]
    child = await asyncio.create_subprocess_exec(
        sys.executable, *argv, env=env, stdout=asyncio.subprocess.DEVNULL
    )
    try:
        await _wait_port(port)
        for http2 in (True, False):
            for concurrency in args.concurrency:
                summary, per_cpu_s = await timed_replay(
                    callbacks, port, http2=http2, concurrency=concurrency
                )
                proto = "h2c" if http2 else "HTTP/1.1"
                goal = 10_000.0 if null and http2 else None
                record("replay", f"replay to {what} over {proto}, {concurrency} in flight",
                       summary.rate, "callbacks/s", size=concurrency, goal=goal)  # fmt: skip
                print(
                    f"to {what}, {proto}, {concurrency} in flight: {summary.line()}; "
                    f"client {per_cpu_s:,.0f} callbacks per CPU-second"
                )
    finally:
        child.terminate()
        await child.wait()


async def timed_replay(
    callbacks: Path, port: int, *, http2: bool, concurrency: int
) -> tuple[Summary, float]:
    """Replay ``callbacks`` at maximum speed to a local port; the summary and the client's
    callbacks per CPU-second."""
    cpu = time.process_time()
    summary = await replay_file(
        callbacks,
        to="receiver",
        selection=Selection(),
        speed=0,
        url=f"http://127.0.0.1:{port}",
        http2=http2,
        concurrency=concurrency,
    )
    return summary, summary.sent / max(time.process_time() - cpu, 1e-9)


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ues", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=1800.0, help="Virtual seconds.")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--null", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        from subscriber.logs import configure_logging

        configure_logging(load_settings().log)
        asyncio.run(_serve(args.serve, args.null))
        return

    from subscriber.stack import settings_for, up

    settings = load_settings()
    state, _ = asyncio.run(up(settings))
    settings = settings_for(settings, state.info())
    print(f"machine: {machine()}")
    started = time.perf_counter()
    asyncio.run(_bench(settings, args))
    print(f"(bench took {time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
