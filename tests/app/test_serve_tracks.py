"""`subscriber serve` with a core configured also tracks it, and stops both cleanly."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from subscriber.events import decode_event
from subscriber.fakes.core import ExternalNrf, FakeCoreServer
from subscriber.settings import Settings
from subscriber.stack.free5gc import RealNrf
from tests.support.processes import serving

pytestmark = pytest.mark.stack

UE = "imsi-208930000000001"


async def _first_event(settings: Settings) -> object:
    consumer = AIOKafkaConsumer(
        settings.kafka.events_topic,
        bootstrap_servers=settings.kafka.bootstrap_servers,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        async with asyncio.timeout(60):
            while True:
                batch = await consumer.getmany(timeout_ms=500)
                for msgs in batch.values():
                    return decode_event(msgs[0].value)
    finally:
        await consumer.stop()


async def test_serve_polls_the_core_and_cleans_up_on_sigterm(
    stack_settings: Settings, real_nrf: RealNrf, tmp_path: Path
) -> None:
    """The receiver process runs the tracker: a UE's location reaches Kafka; SIGTERM stops both."""
    async with FakeCoreServer(nrf=ExternalNrf(real_nrf.url, real_nrf.certificate)) as fake:
        fake.core.amf.add_ue(UE, "000001", "000000010")
        settings = stack_settings.model_copy(
            update={
                "core": stack_settings.core.model_copy(
                    update={
                        "nrf_url": fake.nrf_url,
                        "amf_tracking": "both",
                        "poll_interval_s": 0.2,
                        "state_dir": tmp_path / "core",
                    }
                ),
            }
        )
        async with serving(settings, tmp_path / "serve.log", registry=None) as served:
            event = await _first_event(settings)
            assert event.ue.supi == UE  # type: ignore[attr-defined]
            # The poller and the subscription manager start together: the first event may come
            # from a poll before the long-lived subscription is made.
            async with asyncio.timeout(30):
                while True:
                    if fake.core.amf.subscriptions:
                        break
                    await asyncio.sleep(0.1)
            served.proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(served.proc.wait, 60)
        assert code == 0
        assert fake.core.amf.subscriptions == {}, "the tracker deleted its subscriptions"
