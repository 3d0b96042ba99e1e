"""kill -9 of the Kafka broker during a 10k-event h2c stream through the real receiver process."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import httpx
import pytest

from subscriber.settings import Settings
from subscriber.stack.supervisor import start_service, stop_service
from tests.support.callbacks import JSON, amf_body
from tests.support.kafka import cells_by_ue
from tests.support.processes import metric, serving
from tests.support.settings import isolate

pytestmark = [pytest.mark.stack, pytest.mark.slow]

UES = 50
PER_UE = 200  # 10,000 events
KILL_AT = 3_000  # acknowledged events before the broker is killed
HOLD_AT = 7_000  # posting pauses here until the broker is back, so the tail overlaps the drain


class Stream:
    """Every UE posts its events in order, concurrently with the others, over one h2c connection."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.acked: dict[int, list[int]] = {ue: [] for ue in range(UES)}
        self.count = 0
        self.retried = 0
        self.latencies_s: list[float] = []
        self.kafka_back = asyncio.Event()
        self.reached: dict[int, asyncio.Event] = {
            KILL_AT: asyncio.Event(),
            HOLD_AT: asyncio.Event(),
        }

    async def run_ue(self, http: httpx.AsyncClient, ue: int) -> None:
        url = f"{self.base}/callbacks/amf/loc-{ue}"
        for seq in range(PER_UE):
            if self.count >= HOLD_AT and not self.kafka_back.is_set():
                await self.kafka_back.wait()
            body = amf_body(ue, seq)
            posted = time.monotonic()
            for _ in range(50):  # the core retries a callback that was not acknowledged
                try:
                    answer = await http.post(url, content=body, headers=JSON)
                except httpx.TransportError:
                    answer = None
                if answer is not None and answer.status_code == 204:
                    break
                self.retried += 1
                await asyncio.sleep(0.2)
            else:
                raise AssertionError(f"UE {ue} event {seq} never acknowledged")
            self.acked[ue].append(seq)
            self.latencies_s.append(time.monotonic() - posted)
            self.count += 1
            for mark, reached in self.reached.items():
                if self.count >= mark:
                    reached.set()


async def test_broker_killed_mid_stream_loses_no_acknowledged_event(
    private_stack: Settings, unique: str, tmp_path: Path
) -> None:
    """Every event answered 204 while the broker is SIGKILLed and restarted is on the topic,
    once per event id, in per-UE order."""
    settings = isolate(private_stack, unique, tmp_path)
    settings = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"publish_timeout_ms": 1000})}
    )
    figures: dict[str, float] = {}
    async with serving(settings, tmp_path / "serve.log") as served:
        stream = Stream(served.base)
        limits = httpx.Limits(max_connections=1)
        async with (
            httpx.AsyncClient(http2=True, http1=False, timeout=30, limits=limits) as http,
            httpx.AsyncClient(timeout=5) as probe,
        ):
            started = time.monotonic()
            ues = [asyncio.create_task(stream.run_ue(http, ue)) for ue in range(UES)]
            await stream.reached[KILL_AT].wait()
            await asyncio.to_thread(stop_service, private_stack, "kafka", hard=True)
            killed_at, acked_at_kill = time.monotonic(), stream.count
            await stream.reached[HOLD_AT].wait()
            restarting_at = time.monotonic()
            await start_service(private_stack, "kafka")
            back_at, acked_at_back = time.monotonic(), stream.count
            spooled = metric(
                (await probe.get(f"{served.base}/metrics")).text, "subscriber_spool_depth"
            )
            stream.kafka_back.set()
            await asyncio.gather(*ues)
            finished = time.monotonic()
            async with asyncio.timeout(120):
                while True:
                    text = (await probe.get(f"{served.base}/metrics")).text
                    if metric(text, "subscriber_spool_depth") == 0:
                        break
                    await asyncio.sleep(0.1)
            drained = time.monotonic()
        figures = {
            "events_acked": stream.count,
            "acked_during_outage": acked_at_back - acked_at_kill,
            "outage_s": round(back_at - killed_at, 1),
            "broker_restart_s": round(back_at - restarting_at, 1),
            "spool_depth_at_restart": spooled,
            "drained_s_after_restart": round(drained - back_at, 1),
            "stream_s": round(finished - started, 1),
            "retried_posts": stream.retried,
            "ack_p50_ms": round(statistics.median(stream.latencies_s) * 1000, 1),
            "ack_p99_ms": round(statistics.quantiles(stream.latencies_s, n=100)[98] * 1000, 1),
            "ack_max_ms": round(max(stream.latencies_s) * 1000, 1),
        }
    order = await cells_by_ue(settings.kafka, UES * PER_UE, timeout_s=120)
    print(f"\nfault figures (kafka kill -9): {figures}")
    assert stream.count == UES * PER_UE
    for ue in range(UES):
        assert stream.acked[ue] == list(range(PER_UE))
        assert order[f"imsi-20893{ue:010d}".encode()] == list(range(PER_UE)), f"UE {ue}"
