"""A flood while Kafka is unreachable and the spool fills: 503 with Retry-After, never a 500."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from subscriber.settings import Settings
from tests.support.callbacks import JSON, amf_body
from tests.support.problems import check_answer
from tests.support.processes import KNOWN_ONLY, metric, serve_process
from tests.support.settings import closed_kafka


async def test_full_spool_answers_503_with_retry_after_under_a_flood(tmp_path: Path) -> None:
    """600 concurrent callbacks on one h2c connection into a 40 kB spool: each is a 204 or a
    503 problem with Retry-After; readiness says not ready; liveness stays up."""
    base = closed_kafka(Settings())
    settings = base.model_copy(
        update={
            "receiver": base.receiver.model_copy(
                update={"spool_dir": tmp_path / "spool", "spool_max_bytes": 40_000}
            ),
            "core": base.core.model_copy(update={"state_dir": tmp_path / "state"}),
        }
    )
    with serve_process(settings, tmp_path / "serve.log", registry=KNOWN_ONLY) as server:
        async with httpx.AsyncClient(http2=True, http1=False, timeout=30) as http:
            answers = await asyncio.gather(
                *(
                    http.post(
                        f"{server.base}/callbacks/amf/loc-1", content=amf_body(n, n), headers=JSON
                    )
                    for n in range(600)
                )
            )
            ready = await http.get(f"{server.base}/readyz")
            health = await http.get(f"{server.base}/healthz")
            metrics = (await http.get(f"{server.base}/metrics")).text
    statuses = [a.status_code for a in answers]
    for answer in answers:
        check_answer(answer.status_code, dict(answer.headers), answer.content, {204, 503})
        if answer.status_code == 503:
            assert int(answer.headers["retry-after"]) > 0
            assert answer.json()["cause"] == "NF_CONGESTION"
    accepted = statuses.count(204)
    print(f"\nhostile figures (spool full): {accepted} accepted, {statuses.count(503)} refused 503")
    assert 0 < accepted < len(answers)
    assert metric(metrics, "subscriber_spool_depth{") == accepted
    assert ready.status_code == 503
    assert health.status_code == 200
