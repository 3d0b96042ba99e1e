"""The local orchestrator: real loopback services, idempotent deploy and remove, no orphans."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from subscriber.fakes.local_orchestrator import LocalOrchestrator
from subscriber.relocation import Placement, Readiness
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


async def test_a_service_that_cannot_start_fails_readiness(
    tmp_path: Path, clusters: dict[str, Placement]
) -> None:
    """A port already taken makes the process exit: readiness says FAILED, not 'not yet'."""
    a = clusters["edge1"]
    async with LocalOrchestrator(state_dir=tmp_path, warmup_s=0) as local:
        try:
            first = await local.deploy("shop", "eu1", a)
            await until(lambda: _ready(local, first))
            clash = await local.deploy("other", "eu1", a)
            await until(lambda: _failed(local, clash))
        finally:
            local.remove_all()


async def _ready(local: LocalOrchestrator, endpoint: object) -> bool:
    return await local.readiness(endpoint) is Readiness.READY  # type: ignore[arg-type]


async def _failed(local: LocalOrchestrator, endpoint: object) -> bool:
    return await local.readiness(endpoint) is Readiness.FAILED  # type: ignore[arg-type]
