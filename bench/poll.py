"""Benchmark: one poll-and-diff cycle against the fake free5GC AMF, and memory per tracked UE.

Run: ``.venv/bin/python -m bench.poll [--ues 100000] [--moved 1000] [--rounds 5]``

The fake core runs in its own process (``subscriber fakecore``), with OAuth on, so its cost of
building the 201 is not charged to the poller, but the wait for it is. Events go to a sink that
only counts them: Kafka's cost belongs to the publisher's own benchmark. Figures printed:

* the cold cycle (every UE seen for the first time, so every UE yields an event);
* steady cycles with no change, and with ``--moved`` UEs moved between cycles (median of
  ``--rounds``), each including the one-shot subscribe, the diff and the state-file write;
* memory per tracked UE, from the size of the poller's state and from the process's RSS growth.

Goal (issue 4): a steady cycle with 100k UEs under 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from bench.figures import record
from subscriber.events import EventRecord
from subscriber.ingress.nrf import NrfClient
from subscriber.ingress.poller import Poller
from subscriber.settings import CoreSettings


class CountingSink:
    """Counts events; durable the moment it returns, as far as the poller can tell."""

    def __init__(self) -> None:
        self.events = 0

    async def publish(self, records: Sequence[EventRecord]) -> None:
        self.events += len(records)


def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 1_048_576


def _state_bytes(poller: Poller) -> int:
    keys = {id(v[0]): sys.getsizeof(v[0]) for v in poller.state.values()}
    per_ue = sum(
        sys.getsizeof(supi) + sys.getsizeof(value) + sys.getsizeof(value[1])
        for supi, value in poller.state.items()
    )
    return sys.getsizeof(poller.state) + per_ue + sum(keys.values())


async def _move(
    session: aiohttp.ClientSession, url: str, first: int, count: int, salt: int
) -> None:
    for n in range(count):
        supi = f"imsi-{208930000000001 + first + n:015d}"
        body = {"tac": f"{salt % 0xFFFFFF:06x}", "nrCellId": f"{(salt * 7919 + n) % 2**36:09x}"}
        async with session.post(f"{url}/fake/ues/{supi}/move", json=body) as response:
            response.raise_for_status()


async def _cycle(poller: Poller) -> tuple[float, int]:
    started = time.perf_counter()
    events = await poller.poll_once()
    return time.perf_counter() - started, len(events)


async def run(url: str, ues: int, moved: int, rounds: int) -> None:
    """Poll the fake core at ``url`` and print the figures."""
    with tempfile.TemporaryDirectory() as state_dir:
        settings = CoreSettings(nrf_url=url, state_dir=Path(state_dir), request_timeout_s=60)
        async with aiohttp.ClientSession() as session:
            nrf = NrfClient(settings=settings, session=session)
            sink = CountingSink()
            rss_before = _rss_mib()
            async with Poller(settings=settings, nrf=nrf, sink=sink) as poller:
                cold_s, cold_events = await _cycle(poller)
                rss_after = _rss_mib()
                idle = [await _cycle(poller) for _ in range(rounds)]
                busy = []
                for round_ in range(rounds):
                    first = round_ * moved % max(ues - moved, 1)
                    await _move(session, url, first, moved, round_ + 2)
                    busy.append(await _cycle(poller))
                state_bytes = _state_bytes(poller)
                tracked = len(poller.state)
    rss_per_ue = (rss_after - rss_before) * 1_048_576 / max(tracked, 1)
    busy_s = statistics.median(s for s, _ in busy)
    record("poll", "poll-and-diff cycle, 1,000 UEs moved", busy_s, "s", goal=2.0, better="lower",
           size=ues)  # fmt: skip
    record("poll", "poller memory per tracked UE", state_bytes / tracked, "B", better="lower")
    print(f"UEs in the fake AMF: {ues:,}; OAuth on; state in a temporary directory")
    print(f"cold cycle (all UEs new): {cold_s:.3f} s, {cold_events:,} events")
    print(
        f"steady cycle, no change: median {statistics.median(s for s, _ in idle):.3f} s "
        f"(max {max(s for s, _ in idle):.3f} s, {rounds} rounds)"
    )
    print(
        f"steady cycle, {moved:,} UEs moved: median {statistics.median(s for s, _ in busy):.3f} s "
        f"(max {max(s for s, _ in busy):.3f} s), events per cycle {[n for _, n in busy]}"
    )
    print(
        f"memory per tracked UE: {state_bytes / tracked:.0f} B of poller state "
        f"({state_bytes / 1_048_576:.1f} MiB for {tracked:,} UEs); RSS grew "
        f"{rss_after - rss_before:.1f} MiB over the cold cycle ({rss_per_ue:.0f} B per UE)"
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--ues", type=int, default=100_000)
    parser.add_argument("--moved", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    fake = subprocess.Popen(
        [sys.executable, "-m", "subscriber", "fakecore", "--port", "0", "--ues", str(args.ues)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert fake.stdout is not None
        url = fake.stdout.readline().strip()
        asyncio.run(run(url, args.ues, args.moved, args.rounds))
    finally:
        fake.terminate()
        fake.wait(timeout=10)


if __name__ == "__main__":
    main()
