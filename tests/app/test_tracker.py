"""`subscriber track` composed: NRF, OAuth2, polling and subscriptions, into real Kafka."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from subscriber.app.lifecycle import run_until_stopped
from subscriber.app.tracker import open_tracker
from subscriber.events import Delivery, decode_event
from subscriber.fakes.core import ExternalNrf, FakeCoreServer
from subscriber.settings import Settings
from subscriber.stack.free5gc import RealNrf

pytestmark = pytest.mark.stack

MOVER = "imsi-208930000000001"


async def _events(settings: Settings, count: int) -> list[object]:
    consumer = AIOKafkaConsumer(
        settings.kafka.events_topic,
        bootstrap_servers=settings.kafka.bootstrap_servers,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        got: list[object] = []
        async with asyncio.timeout(30):
            while len(got) < count:
                batch = await consumer.getmany(timeout_ms=500)
                got += [decode_event(m.value) for msgs in batch.values() for m in msgs]
        # Nothing more is coming: a second event for the same move would be a duplicate.
        extra = await consumer.getmany(timeout_ms=1500)
        got += [decode_event(m.value) for msgs in extra.values() for m in msgs]
        return got
    finally:
        await consumer.stop()


@pytest.mark.parametrize("tracking", ["poll", "both"])
async def test_moved_ue_appears_once_and_shutdown_cleans_up(
    stack_settings: Settings, real_nrf: RealNrf, tmp_path: Path, tracking: str
) -> None:
    """Against the real NRF and the fake free5GC AMF: one event per location, nothing leaked."""
    async with FakeCoreServer(nrf=ExternalNrf(real_nrf.url, real_nrf.certificate)) as fake:
        fake.core.amf.add_ue(MOVER, "000001", "000000010")
        fake.core.amf.add_ue("imsi-208930000000002", "000001", "000000011")
        settings = stack_settings.model_copy(
            update={
                "core": stack_settings.core.model_copy(
                    update={
                        "nrf_url": fake.nrf_url,
                        "amf_tracking": tracking,
                        "poll_interval_s": 0.2,
                        "state_dir": tmp_path / "core",
                    }
                )
            }
        )
        stop = asyncio.Event()
        task = asyncio.create_task(
            run_until_stopped(open_tracker(settings), stop=stop, handle_signals=False)
        )
        try:
            first = await _events(settings, 2)
            fake.core.amf.move(MOVER, "000002", "000000020")
            after = await _events(settings, 3)
        finally:
            stop.set()
            await task
        leftover = dict(fake.core.amf.subscriptions)

    assert {(e.ue.supi, e.location.cell_id) for e in first} == {  # type: ignore[attr-defined]
        (MOVER, "000000010"),
        ("imsi-208930000000002", "000000011"),
    }
    moved = [e for e in after if e.ue.supi == MOVER and e.location.cell_id == "000000020"]  # type: ignore[attr-defined]
    assert len(moved) == 1, "a move must appear exactly once"
    assert moved[0].source.delivery is Delivery.POLLED  # type: ignore[attr-defined]
    assert len(after) == 3
    assert leftover == {}, "shutdown must delete every subscription it created"
