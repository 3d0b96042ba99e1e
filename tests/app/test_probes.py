"""The probe endpoints of the consumer and the worker: liveness, readiness with why, metrics."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from temporalio.client import Client

from subscriber.act.signals import connect
from subscriber.app.consumer import open_consumer
from subscriber.app.lifecycle import running
from subscriber.app.probes import ProbeServer
from subscriber.app.worker import open_worker, temporal_readiness
from subscriber.settings import PolicySettings, Settings, TemporalSettings
from tests.support.events import POLICY, TOPOLOGY
from tests.support.kafka import create_topic
from tests.support.ports import free_port
from tests.support.waiting import until


async def _get(port: int, path: str) -> tuple[int, str, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}{path}") as resp,
    ):
        return resp.status, resp.content_type, await resp.text()


async def test_readiness_says_why_until_ready() -> None:
    """/readyz answers 503 with a problem naming the reason, then 200; /healthz is always 200;
    an unknown path is a 404 problem."""
    state: dict[str, str | None] = {"why": "not yet"}

    async def ready() -> str | None:
        return state["why"]

    async with ProbeServer(host="127.0.0.1", port=0, ready=ready) as probes:
        status, kind, body = await _get(probes.port, "/readyz")
        assert (status, kind) == (503, "application/problem+json")
        assert "not yet" in body
        assert (await _get(probes.port, "/healthz"))[0] == 200
        state["why"] = None
        assert (await _get(probes.port, "/readyz"))[0] == 200
        status, kind, _ = await _get(probes.port, "/nothing")
        assert (status, kind) == (404, "application/problem+json")
        status, _, text = await _get(probes.port, "/metrics")
        assert status == 200
        assert "python_info" in text


@pytest.mark.stack
async def test_the_consumer_is_ready_once_it_owns_its_partitions(
    act_settings: Settings, client: Client, tmp_path: Path
) -> None:
    """The consumer's probe port serves its metrics and is ready once the group assigned it."""
    port = free_port()
    settings = act_settings.model_copy(
        update={
            "policy": PolicySettings(topology_file=TOPOLOGY, policy_file=POLICY),
            "act": act_settings.act.model_copy(update={"metrics_port": port}),
        }
    )
    await create_topic(settings.kafka.bootstrap_servers, settings.kafka.events_topic)
    async with running(open_consumer(settings, temporal=client)):

        async def ready() -> bool:
            return (await _get(port, "/readyz"))[0] == 200

        await until(ready, timeout_s=30)
        _, _, text = await _get(port, "/metrics")
        assert "subscriber_signals_waiting" in text


@pytest.mark.stack
async def test_the_worker_is_ready_while_temporal_answers(
    act_settings: Settings, client: Client
) -> None:
    """The worker's probe port answers /readyz 200 while Temporal answers its health check."""
    port = free_port()
    settings = act_settings.model_copy(
        update={"relocation": act_settings.relocation.model_copy(update={"probe_port": port})}
    )
    orchestrator, dns = object(), object()
    async with running(open_worker(settings, client=client, orchestrator=orchestrator, dns=dns)):  # type: ignore[arg-type]
        assert (await _get(port, "/readyz"))[0] == 200


async def test_the_worker_is_not_ready_while_temporal_is_away() -> None:
    """The worker's readiness names Temporal when it does not answer."""
    away = await connect(TemporalSettings(address=f"127.0.0.1:{free_port()}"), lazy=True)
    why = await temporal_readiness(away)()
    assert why is not None
    assert "Temporal" in why
