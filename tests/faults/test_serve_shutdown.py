"""SIGTERM to ``subscriber serve`` while callbacks are in flight."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from subscriber.events import decode_event
from subscriber.settings import Settings
from tests.support.callbacks import amf_body
from tests.support.processes import serving

pytestmark = [pytest.mark.stack]

IN_FLIGHT = 20


async def _slow_post(port: int, ue: int, started: asyncio.Event, step_s: float) -> bytes:
    """POST a valid body in five slices, ``step_s`` apart; return the status line."""
    body = amf_body(ue, 1)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"POST /callbacks/amf/loc-{ue} HTTP/1.1\r\nhost: x\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n".encode()
        )
        size = len(body) // 5 + 1
        for offset in range(0, len(body), size):
            writer.write(body[offset : offset + size])
            await writer.drain()
            started.set()
            await asyncio.sleep(step_s)
        return await asyncio.wait_for(reader.readline(), 30)
    except (ConnectionError, TimeoutError):
        return b""
    finally:
        writer.close()


async def test_sigterm_finishes_in_flight_callbacks_and_loses_none(
    stack_settings: Settings, tmp_path: Path
) -> None:
    """Requests whose bodies are still arriving when SIGTERM comes are answered; every one
    answered 204 is on the topic; the process exits 0."""
    started = asyncio.Event()
    async with serving(stack_settings, tmp_path / "serve.log") as served:
        posts = [
            asyncio.create_task(_slow_post(served.port, ue, started, 0.2))
            for ue in range(IN_FLIGHT)
        ]
        await started.wait()
        await asyncio.sleep(0.1)
        served.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        lines = await asyncio.gather(*posts)
        returncode = await asyncio.to_thread(served.proc.wait, 60)
        exited_s = time.monotonic() - signalled
    acked = {ue for ue, line in enumerate(lines) if line.startswith(b"HTTP/1.1 204")}
    print(
        f"\nfault figures (serve SIGTERM): {len(acked)}/{IN_FLIGHT} in-flight answered 204, "
        f"exit {returncode} after {exited_s:.1f} s"
    )
    assert returncode == 0
    assert acked == set(range(IN_FLIGHT))
    consumer = AIOKafkaConsumer(
        stack_settings.kafka.events_topic,
        bootstrap_servers=stack_settings.kafka.bootstrap_servers,
        auto_offset_reset="earliest",
    )
    keys: set[bytes] = set()
    await consumer.start()
    try:
        async with asyncio.timeout(60):
            while len(keys) < len(acked):
                for batch in (await consumer.getmany(timeout_ms=1000)).values():
                    keys.update(r.key or b"" for r in batch if decode_event(r.value))
    finally:
        await consumer.stop()
    assert keys == {f"imsi-20893{ue:010d}".encode() for ue in acked}
