"""kill -9 of ``subscriber serve`` while Kafka is away and its spool holds acknowledged events."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from subscriber.settings import Settings
from tests.support.callbacks import JSON, amf_body
from tests.support.kafka import cells_by_ue
from tests.support.processes import serving
from tests.support.settings import closed_kafka

pytestmark = [pytest.mark.stack]

UES = 5


async def _post_all(base: str, seqs: range) -> None:
    """Each UE posts its events in order; the UEs post concurrently over one h2c connection."""

    async def one_ue(http: httpx.AsyncClient, ue: int) -> None:
        for seq in seqs:
            answer = await http.post(
                f"{base}/callbacks/amf/loc-{ue}", content=amf_body(ue, seq), headers=JSON
            )
            assert answer.status_code == 204, answer.text

    async with httpx.AsyncClient(http2=True, http1=False, timeout=30) as http:
        await asyncio.gather(*(one_ue(http, ue) for ue in range(UES)))


async def test_crashed_receiver_drains_its_spool_after_restart(
    stack_settings: Settings, tmp_path: Path
) -> None:
    """Events acknowledged from the spool by a receiver that is then SIGKILLed are sent, first and
    in per-UE order, by the next receiver started on the same spool directory."""
    async with serving(closed_kafka(stack_settings), tmp_path / "serve-1.log") as first:
        await _post_all(first.base, range(100))
        os.killpg(first.proc.pid, signal.SIGKILL)
        await asyncio.to_thread(first.proc.wait)
    spooled = sum(
        p.stat().st_size for p in stack_settings.receiver.spool_dir.rglob("*") if p.is_file()
    )
    started = time.monotonic()
    async with serving(stack_settings, tmp_path / "serve-2.log") as second:
        await _post_all(second.base, range(100, 150))
        order = await cells_by_ue(stack_settings.kafka, UES * 150, timeout_s=60)
        recovered_s = time.monotonic() - started
    print(
        f"\nfault figures (serve kill -9 with a spool): {UES * 100} events in {spooled} spool "
        f"bytes, all {UES * 150} on the topic {recovered_s:.1f} s after the restart"
    )
    for ue in range(UES):
        assert order[f"imsi-20893{ue:010d}".encode()] == list(range(150)), f"UE {ue}"
