"""The spool's disk fills while Kafka is away: no event answered 204 is ever lost.

The issue this guards against (seen before the fix): on a nearly full file system a write
stored part of a frame and the caller got 204; the clean-up after the next ENOSPC padded the
file with zeros; at restart everything after the torn frame was cut, including events
acknowledged once the disk had room again (244 answered 204, 143 reached Kafka).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from subscriber.events import decode_event
from subscriber.settings import Settings
from tests.support.callbacks import JSON, amf_body
from tests.support.disks import small_tmpfs
from tests.support.kafka import read_to_end
from tests.support.problems import check_answer
from tests.support.processes import metric, serving
from tests.support.settings import closed_kafka

pytestmark = [pytest.mark.stack, pytest.mark.slow]


async def test_a_full_disk_refuses_with_503_and_loses_no_acknowledged_event(
    stack_settings: Settings, tmp_path: Path
) -> None:
    """Kafka unreachable, spool on a 192 KiB tmpfs: callbacks get 204 until the disk is full,
    then 503 + Retry-After (readiness 503, liveness 200); restarted with Kafka back, every event
    answered 204 reaches the topic, whole, and no spool byte was damaged."""
    with small_tmpfs(tmp_path / "disk", "192k") as disk:
        settings = stack_settings.model_copy(
            update={"receiver": stack_settings.receiver.model_copy(update={"spool_dir": disk})}
        )
        accepted: list[int] = []
        refused = 0
        async with (
            serving(closed_kafka(settings), tmp_path / "offline.log") as served,
            httpx.AsyncClient(http2=True, http1=False, timeout=30) as http,
        ):
            for seq in range(5_000):
                # Bodies of varying size, so the last frames that fit are of every length.
                answer = await http.post(
                    f"{served.base}/callbacks/amf/loc-1",
                    content=amf_body(seq % 50, seq),
                    headers=JSON,
                )
                check_answer(answer.status_code, dict(answer.headers), answer.content, {204, 503})
                if answer.status_code == 204:
                    accepted.append(seq)
                    continue
                refused += 1
                assert int(answer.headers["retry-after"]) > 0
                assert answer.json()["cause"] == "NF_CONGESTION"
                if refused == 1:
                    assert (await http.get(f"{served.base}/readyz")).status_code == 503
                    assert (await http.get(f"{served.base}/healthz")).status_code == 200
                if refused >= 30:
                    break
        assert refused >= 30
        assert len(accepted) > 50
        async with (
            serving(settings, tmp_path / "online.log") as served,
            httpx.AsyncClient(timeout=30) as http,
        ):
            async with asyncio.timeout(60):
                while True:
                    metrics = (await http.get(f"{served.base}/metrics")).text
                    if metric(metrics, "subscriber_spool_depth{") == 0:
                        break
                    await asyncio.sleep(0.2)
            assert metric(metrics, "subscriber_spool_damaged_bytes_total{") == 0
            assert (await http.get(f"{served.base}/readyz")).status_code == 200
    records = await read_to_end(settings.kafka.bootstrap_servers, settings.kafka.events_topic)
    cells = {int(decode_event(r.value).location.cell_id, 16) for r in records}  # type: ignore[union-attr]
    print(f"\nfault figures (disk full): {len(accepted)} accepted, {refused} refused 503, "
          f"{len(records)} records on the topic")  # fmt: skip
    assert set(accepted) <= cells
