"""The local orchestrator: real loopback services, idempotent deploy and remove, no orphans."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import aiohttp

from subscriber.fakes.local_orchestrator import LocalOrchestrator
from subscriber.relocation import Endpoint, Placement, Readiness
from subscriber.stack.procs import kill_hard
from tests.support.waiting import until


async def test_deploy_is_idempotent_and_turns_ready(
    tmp_path: Path, clusters: dict[str, Placement]
) -> None:
    """A second deploy reuses the running service, which turns ready after its warm-up."""
    a = clusters["edge1"]
    async with LocalOrchestrator(state_dir=tmp_path, warmup_s=0.3) as local:
        try:
            endpoint = await local.deploy("shop", "eu1", a)
            record = (tmp_path / "shop.eu1.edge1.json").read_text()
            assert await local.deploy("shop", "eu1", a) == endpoint
            assert (tmp_path / "shop.eu1.edge1.json").read_text() == record

            async def ready() -> bool:
                return await local.readiness(endpoint) is Readiness.READY

            await until(ready)
            async with aiohttp.ClientSession() as http, http.get(endpoint.url) as resp:
                assert (await resp.text()).strip() == "edge1"
        finally:
            local.remove_all()
        assert local.running() == []


async def test_remove_stops_the_process_and_is_idempotent(
    tmp_path: Path, clusters: dict[str, Placement]
) -> None:
    """Remove stops the service, forgets it, and succeeds again when it is already gone."""
    a = clusters["edge1"]
    async with LocalOrchestrator(state_dir=tmp_path, warmup_s=0) as local:
        endpoint = await local.deploy("shop", "eu1", a)
        assert local.running() == [("shop", "eu1", "edge1")]
        await local.remove("shop", "eu1", a)
        await local.remove("shop", "eu1", a)
        assert local.running() == []
        assert await local.readiness(endpoint) is Readiness.FAILED


async def test_instances_share_a_cluster_each_on_its_own_port(
    tmp_path: Path, clusters: dict[str, Placement]
) -> None:
    """Three instances deployed on one cluster at once all run and turn ready, each on its own
    port (one on the placement's port), and each answers as itself."""
    a = clusters["edge1"]
    async with LocalOrchestrator(state_dir=tmp_path, warmup_s=0.2) as local:
        try:
            endpoints = await asyncio.gather(*(local.deploy("shop", f"u{i}", a) for i in range(3)))
            ports = {e.placement.port for e in endpoints}
            assert len(ports) == 3
            assert a.port in ports
            assert {e.placement.address for e in endpoints} == {a.address}
            for endpoint in endpoints:
                await until(lambda e=endpoint: _ready(local, e))  # type: ignore[misc]
                async with aiohttp.ClientSession() as http, http.get(endpoint.url) as resp:
                    assert resp.headers["X-Instance"] == endpoint.instance
            assert await local.deploy("shop", "u1", a) == endpoints[1]
        finally:
            local.remove_all()


async def test_a_port_held_by_another_process_is_avoided(
    tmp_path: Path, clusters: dict[str, Placement]
) -> None:
    """When something else listens on the placement's port, the instance gets another port."""
    a = clusters["edge1"]
    assert a.address is not None
    with socket.create_server((a.address, a.port)):
        async with LocalOrchestrator(state_dir=tmp_path, warmup_s=0) as local:
            try:
                endpoint = await local.deploy("shop", "eu1", a)
                assert endpoint.placement.port != a.port
                await until(lambda: _ready(local, endpoint))
            finally:
                local.remove_all()


async def test_readiness_is_not_answered_by_a_neighbour(
    tmp_path: Path, clusters: dict[str, Placement]
) -> None:
    """An instance asked about at a port where another instance answers is not ready."""
    a = clusters["edge1"]
    async with LocalOrchestrator(state_dir=tmp_path, warmup_s=0) as local:
        try:
            first = await local.deploy("shop", "eu1", a)
            second = await local.deploy("shop", "eu2", a)
            await until(lambda: _ready(local, first))
            await until(lambda: _ready(local, second))
            wrong = Endpoint(app="shop", instance="eu2", placement=first.placement)
            assert await local.readiness(wrong) is Readiness.NOT_READY
        finally:
            local.remove_all()


async def test_a_service_that_dies_fails_readiness(
    tmp_path: Path, clusters: dict[str, Placement]
) -> None:
    """A process killed under a ready instance makes readiness FAILED, not 'not yet'."""
    a = clusters["edge1"]
    async with LocalOrchestrator(state_dir=tmp_path, warmup_s=0) as local:
        try:
            endpoint = await local.deploy("shop", "eu1", a)
            await until(lambda: _ready(local, endpoint))
            record = json.loads((tmp_path / "shop.eu1.edge1.json").read_text())
            kill_hard(record["pid"], record["ticks"])
            await until(lambda: _failed(local, endpoint))
        finally:
            local.remove_all()


async def _ready(local: LocalOrchestrator, endpoint: Endpoint) -> bool:
    return await local.readiness(endpoint) is Readiness.READY


async def _failed(local: LocalOrchestrator, endpoint: Endpoint) -> bool:
    return await local.readiness(endpoint) is Readiness.FAILED
