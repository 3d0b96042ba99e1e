"""Slowloris: more stalled bodies than the server's concurrent-request limit."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from subscriber.settings import Settings
from tests.support.problems import check_answer
from tests.support.processes import serving
from tests.support.settings import closed_kafka

STALLED = 1100  # granian's default backpressure is 1024 requests in flight per worker


async def _stall(port: int) -> bytes:
    """Send headers and one byte of a 1000-byte body, then nothing; return what comes back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"POST /callbacks/amf/loc-1 HTTP/1.1\r\nhost: x\r\n"
            b"content-type: application/json\r\ncontent-length: 1000\r\n\r\n{"
        )
        await writer.drain()
        return await asyncio.wait_for(reader.read(4096), 30)
    except (ConnectionError, TimeoutError):
        return b""
    finally:
        writer.close()


async def test_stalled_bodies_time_out_with_408_and_free_the_server(tmp_path: Path) -> None:
    """1,100 bodies that stop arriving (more than the server takes at once) are each answered
    408 once the 10 s body deadline passes, and then the server answers others again."""
    base = closed_kafka(Settings())
    settings = base.model_copy(
        update={"receiver": base.receiver.model_copy(update={"spool_dir": tmp_path / "spool"})}
    )
    async with serving(settings, tmp_path / "serve.log") as served:
        started = time.monotonic()
        answers = await asyncio.gather(*(_stall(served.port) for _ in range(STALLED)))
        answered_s = time.monotonic() - started
        async with httpx.AsyncClient(timeout=10) as http:
            health = await http.get(f"{served.base}/healthz")
    statuses = {a.split(b" ", 2)[1] if a.startswith(b"HTTP/1.1 ") else a[:20] for a in answers}
    print(
        f"\nhostile figures (slowloris): {STALLED} stalled bodies all 408 after {answered_s:.1f} s"
    )
    assert statuses == {b"408"}, statuses
    head, _, body = answers[0].partition(b"\r\n\r\n")
    headers = dict(
        line.decode().lower().split(": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line
    )
    check_answer(408, headers, body, {408})
    assert health.status_code == 200
