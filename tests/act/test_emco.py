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
    """Two instances of app 'shop' on edge1 (two UEs), each in its DIG, instantiated and ready."""
    fake = FakeEmcoState(ready_delay_s=5.0, clock=clock)
    fake.place("shop", "eu1", ["edge1"])
    fake.place("shop", "eu2", ["edge1"])
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
        version=state.version,
        composite_profile="default",
        logical_cloud="default",
        cluster_provider=state.provider,
    )
    async with orch:
        yield orch
    await runner.cleanup()


async def test_deploy_adds_target_keeps_source_and_updates(
    emco: EmcoOrchestrator, state: FakeEmcoState
) -> None:
    """Deploy places the instance on both clusters (service continuity) and issues one update
    of its DIG."""
    endpoint = await emco.deploy("shop", "eu1", EDGE2)
    assert endpoint == Endpoint(app="shop", instance="eu1", placement=EDGE2)
    assert state.placed() == {
        ("shop", "eu1", "edge1"),
        ("shop", "eu1", "edge2"),
        ("shop", "eu2", "edge1"),
    }
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
    assert any(
        "eu1/status?status=ready&app=shop&cluster=edge-provider%2Bedge2" in r
        for r in state.requests
    )


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
    assert ("shop", "eu1", "edge1") not in state.running()
    assert ("shop", "eu1", "edge2") in state.running()


async def test_moving_one_ues_instance_leaves_the_others_where_they_are(
    emco: EmcoOrchestrator, state: FakeEmcoState, clock: Clock
) -> None:
    """Moving eu1's instance to edge2 removes it from edge1, and only it: eu2's instance of
    the same app keeps running and ready on edge1."""
    moved = await emco.deploy("shop", "eu1", EDGE2)
    clock.now += 5.0
    assert await emco.readiness(moved) is Readiness.READY
    await emco.remove("shop", "eu1", EDGE1)
    other = Endpoint(app="shop", instance="eu2", placement=EDGE1)
    assert await emco.readiness(other) is Readiness.READY
    assert await emco.readiness(Endpoint(app="shop", instance="eu1", placement=EDGE1)) is (
        Readiness.NOT_READY
    )


async def test_a_new_instance_gets_its_own_deployment_intent_group(
    emco: EmcoOrchestrator, state: FakeEmcoState, clock: Clock
) -> None:
    """The first deploy of an instance creates its DIG (placement intent, app intent, intents),
    approves and instantiates it; a retry changes nothing; removing its only cluster terminates
    it, and a later deploy instantiates it again on the new cluster alone."""
    first = await emco.deploy("shop", "eu3", EDGE2)
    await emco.deploy("shop", "eu3", EDGE2)
    clock.now += 5.0
    assert await emco.readiness(first) is Readiness.READY
    dig = state.digs[("shop", "eu3")]
    assert [a["state"] for a in dig.actions] == ["Created", "Approved", "Instantiated"]
    assert dig.spec["version"] == "eu3", "the instance is its own Helm release"
    await emco.remove("shop", "eu3", EDGE2)
    await emco.remove("shop", "eu3", EDGE2)
    assert dig.state == "Terminated"
    assert not any(i == "eu3" for _, i, _ in state.running())
    again = await emco.deploy("shop", "eu3", EDGE1)
    clock.now += 5.0
    assert await emco.readiness(again) is Readiness.READY
    assert {c for _, i, c in state.running() if i == "eu3"} == {"edge1"}


async def test_unknown_app_is_a_permanent_error(emco: EmcoOrchestrator) -> None:
    """An app EMCO never onboarded cannot be deployed: not worth retrying."""
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
    """The workflow moves the instance through EMCO and steers DNS once EMCO reports it ready;
    the other UE's instance stays on edge1."""
    req = make_request(unique, EDGE1, EDGE2)
    state.place(req.app, req.instance, ["edge1"])
    async with running_worker(client, act_settings, emco, pdns):
        await request_relocation(client, act_settings.temporal.task_queue, req)
        # Wait for the update, not only the intent: the update starts the 5 s warm-up, so a
        # clock moved between the two would leave the target not ready for good.
        await until(lambda: ("shop", req.instance, "edge2") in state.running())
        clock.now += 5.0
        history = await wait_history(client, req, 1)
    assert history[0].status is Status.COMPLETED, history[0]
    assert {c for _, i, c in state.placed() if i == req.instance} == {"edge2"}
    assert ("shop", "eu1", "edge1") in state.running()
    name = f"{req.instance}.{req.app}.{pdns.zone}"
    assert await pdns.query_a(name) == [EDGE2.address]
