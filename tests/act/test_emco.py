"""The EMCO adapter against the fake EMCO (its documented API and status states)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from temporalio.client import Client

from subscriber.act.dns import PowerDns
from subscriber.act.emco import EmcoOrchestrator
from subscriber.act.orchestrator import OrchestratorError
from subscriber.act.signals import request_relocation
from subscriber.fakes.emco import FakeEmcoState, fake_emco_app
from subscriber.relocation import Endpoint, Placement, Readiness, Status
from subscriber.settings import Settings
from tests.support.relocation import make_request, running_worker, wait_history
from tests.support.waiting import until

EDGE1 = Placement(cluster="edge1", address="192.0.2.1")
EDGE2 = Placement(cluster="edge2", address="192.0.2.2")


class Clock:
    """A hand-driven monotonic clock for the fake's ready delay."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    """The fake's clock."""
    return Clock()


@pytest.fixture
def state(clock: Clock) -> FakeEmcoState:
    """A DIG placing app 'shop' on edge1, instantiated and ready."""
    fake = FakeEmcoState(ready_delay_s=5.0, clock=clock)
    fake.place("shop", ["edge1"])
    return fake


@pytest.fixture
async def emco(state: FakeEmcoState) -> AsyncIterator[EmcoOrchestrator]:
    """The adapter, talking to the fake over real HTTP on loopback."""
    runner = web.AppRunner(fake_emco_app(state))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    orch = EmcoOrchestrator(
        base_url=f"http://127.0.0.1:{port}",
        project=state.project,
        composite_app=state.composite_app,
        version=state.version,
        dig=state.dig,
        cluster_provider=state.provider,
    )
    async with orch:
        yield orch
    await runner.cleanup()


async def test_deploy_adds_target_keeps_source_and_updates(
    emco: EmcoOrchestrator, state: FakeEmcoState
) -> None:
    """Deploy places the app on both clusters (service continuity) and issues one DIG update."""
    endpoint = await emco.deploy("shop", "eu1", EDGE2)
    assert endpoint == Endpoint(app="shop", instance="eu1", placement=EDGE2)
    assert state.placed() == {("shop", "edge1"), ("shop", "edge2")}
    await emco.deploy("shop", "eu1", EDGE2)  # a retried activity
    updates = [r for r in state.requests if r.startswith("POST") and r.endswith("/update")]
    assert len(updates) == 1


async def test_readiness_follows_the_status_query(
    emco: EmcoOrchestrator, state: FakeEmcoState, clock: Clock
) -> None:
    """NOT_READY until the cluster's resources are Ready, then READY."""
    endpoint = await emco.deploy("shop", "eu1", EDGE2)
    assert await emco.readiness(endpoint) is Readiness.NOT_READY
    clock.now += 5.0
    assert await emco.readiness(endpoint) is Readiness.READY
    assert any("status=ready&app=shop&cluster=edge-provider%2Bedge2" in r for r in state.requests)


async def test_update_failed_is_a_readiness_failure(
    emco: EmcoOrchestrator, state: FakeEmcoState
) -> None:
    """An UpdateFailed AppContext fails readiness instead of waiting forever."""
    state.failing_clusters.add("edge2")
    endpoint = await emco.deploy("shop", "eu1", EDGE2)
    assert await emco.readiness(endpoint) is Readiness.FAILED


async def test_remove_drops_the_cluster_and_is_idempotent(
    emco: EmcoOrchestrator, state: FakeEmcoState, clock: Clock
) -> None:
    """Remove leaves only the target placed; removing again changes nothing."""
    await emco.deploy("shop", "eu1", EDGE2)
    await emco.remove("shop", "eu1", EDGE1)
    await emco.remove("shop", "eu1", EDGE1)
    assert state.placed() == {("shop", "edge2")}
    assert set(state.deployed) == {("shop", "edge2")}


async def test_unknown_app_is_a_permanent_error(emco: EmcoOrchestrator) -> None:
    """An app no intent places cannot be deployed: not worth retrying."""
    with pytest.raises(OrchestratorError) as info:
        await emco.deploy("nothere", "eu1", EDGE2)
    assert info.value.permanent


@pytest.mark.stack
async def test_workflow_relocates_through_emco(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    emco: EmcoOrchestrator,
    state: FakeEmcoState,
    clock: Clock,
    unique: str,
    tmp_path: Path,
) -> None:
    """The workflow moves the app through EMCO and steers DNS once EMCO reports it ready."""
    req = make_request(unique, EDGE1, EDGE2)
    async with running_worker(client, act_settings, emco, pdns):
        await request_relocation(client, act_settings.temporal.task_queue, req)
        # Wait for the update, not only the intent: the update starts the 5 s warm-up, so a
        # clock moved between the two would leave the target not ready for good.
        await until(lambda: ("shop", "edge2") in state.deployed)
        clock.now += 5.0
        history = await wait_history(client, req, 1)
    assert history[0].status is Status.COMPLETED, history[0]
    assert state.placed() == {("shop", "edge2")}
    name = f"{req.instance}.{req.app}.{pdns.zone}"
    assert await pdns.query_a(name) == [EDGE2.address]
