"""Pre-warming in the relocation workflow, against the real Temporal dev server, PowerDNS and
loopback clusters: a warm instance is deployed without steering, used by a later move, or cooled."""

from __future__ import annotations

import pytest
from temporalio.client import Client

from subscriber.act.dns import PowerDns
from subscriber.act.signals import request_relocation
from subscriber.act.workflows import RelocationWorkflow
from subscriber.fakes.local_orchestrator import LocalOrchestrator
from subscriber.relocation import Placement, RequestKind, Status, Step, workflow_id
from subscriber.settings import Settings
from tests.support.relocation import (
    DNS_MOVE_STEPS,
    Faulty,
    Gated,
    assert_replays,
    make_request,
    running_worker,
    serve_from,
    wait_history,
)

pytestmark = [pytest.mark.stack]

PREWARM, COOL = RequestKind.PREWARM, RequestKind.COOL


async def test_prewarmed_move_only_steers_and_removes(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    local: LocalOrchestrator,
    clusters: dict[str, Placement],
    unique: str,
) -> None:
    """A prewarm deploys on the target and leaves DNS and the source alone; the move to it then
    has no deploy or readiness step and ends with the target serving."""
    a, b = clusters["edge1"], clusters["edge2"]
    warm = make_request(unique, a, b, 1, kind=PREWARM)
    name = await serve_from(local, pdns, warm, a)
    queue = act_settings.temporal.task_queue
    handle = client.get_workflow_handle(workflow_id(warm.app, warm.instance))
    async with running_worker(client, act_settings, local, pdns):
        await request_relocation(client, queue, warm)
        (prewarmed,) = await wait_history(client, warm, 1)
        state = await handle.query(RelocationWorkflow.state)
        assert await pdns.query_a(name) == [a.address]
        assert sorted(local.running()) == [
            (warm.app, warm.instance, "edge1"),
            (warm.app, warm.instance, "edge2"),
        ]
        await request_relocation(client, queue, make_request(unique, a, b, 2))
        history = await wait_history(client, warm, 2)
        after = await handle.query(RelocationWorkflow.state)
        await assert_replays(handle)
    assert prewarmed.status is Status.COMPLETED, prewarmed
    assert list(prewarmed.step_ms) == [Step.DEPLOY.value, Step.READINESS.value]
    assert state.placement == a
    assert state.warm is not None
    assert state.warm.cluster == "edge2"
    moved = history[1]
    assert moved.status is Status.COMPLETED, moved
    assert list(moved.step_ms) == [
        s for s in DNS_MOVE_STEPS if s not in (Step.DEPLOY.value, Step.READINESS.value)
    ]
    assert await pdns.query_a(name) == [b.address]
    assert local.running() == [(warm.app, warm.instance, "edge2")]
    assert after.placement is not None
    assert after.placement.cluster == "edge2"
    assert after.warm is None


async def test_cool_removes_the_warm_instance_and_a_move_elsewhere_deploys(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    local: LocalOrchestrator,
    clusters: dict[str, Placement],
    unique: str,
) -> None:
    """A missed prediction: the move to another cluster deploys as usual and removes the unused
    warm instance; an expiry's cool removes a warm instance, and a second cool is a no-op."""
    a, b, c = clusters["edge1"], clusters["edge2"], clusters["edge3"]
    warm = make_request(unique, a, b, 1, kind=PREWARM)
    name = await serve_from(local, pdns, warm, a)
    queue = act_settings.temporal.task_queue
    handle = client.get_workflow_handle(workflow_id(warm.app, warm.instance))
    async with running_worker(client, act_settings, local, pdns):
        await request_relocation(client, queue, warm)
        await wait_history(client, warm, 1)
        await request_relocation(client, queue, make_request(unique, a, c, 2))
        await wait_history(client, warm, 2)
        assert local.running() == [(warm.app, warm.instance, "edge3")]
        await request_relocation(client, queue, make_request(unique, c, b, 3, kind=PREWARM))
        await wait_history(client, warm, 3)
        assert sorted(c for *_, c in local.running()) == ["edge2", "edge3"]
        await request_relocation(client, queue, make_request(unique, c, b, 4, kind=COOL))
        # Sent at once, the second cool would supersede the first while it still waits.
        await wait_history(client, warm, 4)
        await request_relocation(client, queue, make_request(unique, c, b, 5, kind=COOL))
        history = await wait_history(client, warm, 5)
        state = await handle.query(RelocationWorkflow.state)
        await assert_replays(handle)
    assert [o.status for o in history] == [Status.COMPLETED] * 4 + [Status.NOOP]
    assert Step.DEPLOY.value in history[1].step_ms
    assert list(history[1].step_ms)[-1] == Step.REMOVE_WARM.value
    assert list(history[3].step_ms) == [Step.REMOVE_WARM.value]
    assert local.running() == [(warm.app, warm.instance, "edge3")]
    assert await pdns.query_a(name) == [c.address]
    assert state.warm is None


async def test_a_failed_prewarm_removes_what_it_deployed(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    local: LocalOrchestrator,
    clusters: dict[str, Placement],
    unique: str,
) -> None:
    """A prewarm whose deploy fails is recorded failed, undoes the deploy, and leaves no warm
    instance behind."""
    a, b = clusters["edge1"], clusters["edge2"]
    warm = make_request(unique, a, b, 1, kind=PREWARM)
    name = await serve_from(local, pdns, warm, a)
    queue = act_settings.temporal.task_queue
    handle = client.get_workflow_handle(workflow_id(warm.app, warm.instance))
    async with running_worker(client, act_settings, Faulty(local, deploy="edge2"), pdns):
        await request_relocation(client, queue, warm)
        (failed,) = await wait_history(client, warm, 1)
        state = await handle.query(RelocationWorkflow.state)
    assert failed.status is Status.FAILED, failed
    assert failed.failed_step is Step.DEPLOY
    assert failed.compensated == ("target_removed",)
    assert state.warm is None
    assert local.running() == [(warm.app, warm.instance, "edge1")]
    assert await pdns.query_a(name) == [a.address]


async def test_a_failed_move_elsewhere_removes_the_warm_instance_too(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    local: LocalOrchestrator,
    clusters: dict[str, Placement],
    unique: str,
) -> None:
    """A move to another cluster than the warm one fails: compensation removes the warm
    instance as well (the consumer counted it missed), and the source serves on."""
    a, b, c = clusters["edge1"], clusters["edge2"], clusters["edge3"]
    warm = make_request(unique, a, b, 1, kind=PREWARM)
    name = await serve_from(local, pdns, warm, a)
    queue = act_settings.temporal.task_queue
    handle = client.get_workflow_handle(workflow_id(warm.app, warm.instance))
    async with running_worker(client, act_settings, Faulty(local, deploy="edge3"), pdns):
        await request_relocation(client, queue, warm)
        await wait_history(client, warm, 1)
        await request_relocation(client, queue, make_request(unique, a, c, 2))
        history = await wait_history(client, warm, 2)
        state = await handle.query(RelocationWorkflow.state)
        await assert_replays(handle)
    failed = history[1]
    assert failed.status is Status.FAILED, failed
    assert failed.compensated == ("target_removed", "warm_removed")
    assert state.warm is None
    assert local.running() == [(warm.app, warm.instance, "edge1")]
    assert await pdns.query_a(name) == [a.address]


async def test_a_prewarm_never_supersedes_a_pending_move(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    local: LocalOrchestrator,
    clusters: dict[str, Placement],
    unique: str,
) -> None:
    """A prewarm arriving while a move waits its turn runs after it, not in its place."""
    a, b, c = clusters["edge1"], clusters["edge2"], clusters["edge3"]
    first = make_request(unique, a, b, 1)
    name = await serve_from(local, pdns, first, a)
    gated = Gated(local, "edge2")
    queue = act_settings.temporal.task_queue
    async with running_worker(client, act_settings, gated, pdns):
        await request_relocation(client, queue, first)
        await gated.waiting.wait()
        await request_relocation(client, queue, make_request(unique, a, c, 2))
        await request_relocation(client, queue, make_request(unique, c, b, 3, kind=PREWARM))
        gated.gate.set()
        history = await wait_history(client, first, 3)
        await assert_replays(client.get_workflow_handle(workflow_id(first.app, first.instance)))
    assert [(o.request_id[-1], o.status) for o in history] == [
        ("1", Status.COMPLETED),
        ("2", Status.COMPLETED),
        ("3", Status.COMPLETED),
    ]
    assert await pdns.query_a(name) == [c.address]
    assert sorted(c for *_, c in local.running()) == ["edge2", "edge3"]


async def test_a_cool_that_came_before_a_move_runs_before_it(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    local: LocalOrchestrator,
    clusters: dict[str, Placement],
    unique: str,
) -> None:
    """A cool and then a move to the same cluster, both waiting: the cool removes the warm
    instance first and the move deploys afresh, whichever the workflow picked up when."""
    a, b = clusters["edge1"], clusters["edge2"]
    warm = make_request(unique, a, b, 1, kind=PREWARM)
    name = await serve_from(local, pdns, warm, a)
    gated = Gated(local, "edge2")
    queue = act_settings.temporal.task_queue
    async with running_worker(client, act_settings, gated, pdns):
        await request_relocation(client, queue, warm)
        await gated.waiting.wait()
        await request_relocation(client, queue, make_request(unique, a, b, 2, kind=COOL))
        await request_relocation(client, queue, make_request(unique, a, b, 3))
        gated.gate.set()
        history = await wait_history(client, warm, 3)
        await assert_replays(client.get_workflow_handle(workflow_id(warm.app, warm.instance)))
    assert [(o.request_id[-1], o.status) for o in history] == [
        ("1", Status.COMPLETED),
        ("2", Status.COMPLETED),
        ("3", Status.COMPLETED),
    ]
    assert list(history[1].step_ms) == [Step.REMOVE_WARM.value]
    assert list(history[2].step_ms) == DNS_MOVE_STEPS
    assert await pdns.query_a(name) == [b.address]
    assert local.running() == [(warm.app, warm.instance, "edge2")]


async def test_a_cool_decided_later_leaves_a_move_reported_earlier_alone(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    local: LocalOrchestrator,
    clusters: dict[str, Placement],
    unique: str,
) -> None:
    """An expiry's cool carries the consumer's clock, later than the UE's next report: the move
    that report decides is carried out, not refused as stale."""
    a, b, c = clusters["edge1"], clusters["edge2"], clusters["edge3"]
    warm = make_request(unique, a, b, 1, kind=PREWARM)
    name = await serve_from(local, pdns, warm, a)
    queue = act_settings.temporal.task_queue
    async with running_worker(client, act_settings, local, pdns):
        await request_relocation(client, queue, warm)
        await wait_history(client, warm, 1)
        await request_relocation(client, queue, make_request(unique, a, b, 5, kind=COOL))
        await wait_history(client, warm, 2)
        await request_relocation(client, queue, make_request(unique, a, c, 3))
        history = await wait_history(client, warm, 3)
    assert [(o.request_id[-1], o.status) for o in history] == [
        ("1", Status.COMPLETED),
        ("5", Status.COMPLETED),
        ("3", Status.COMPLETED),
    ]
    assert await pdns.query_a(name) == [c.address]
    assert local.running() == [(warm.app, warm.instance, "edge3")]


async def test_a_move_supersedes_a_waiting_prewarm(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    local: LocalOrchestrator,
    clusters: dict[str, Placement],
    unique: str,
) -> None:
    """A prewarm still waiting when a move comes is superseded: run after the move it would
    leave a warm instance nobody expects."""
    a, b, c = clusters["edge1"], clusters["edge2"], clusters["edge3"]
    first = make_request(unique, a, c, 1)
    name = await serve_from(local, pdns, first, a)
    gated = Gated(local, "edge3")
    queue = act_settings.temporal.task_queue
    async with running_worker(client, act_settings, gated, pdns):
        await request_relocation(client, queue, first)
        await gated.waiting.wait()
        await request_relocation(client, queue, make_request(unique, a, b, 2, kind=PREWARM))
        await request_relocation(client, queue, make_request(unique, c, a, 3))
        gated.gate.set()
        history = await wait_history(client, first, 3)
        state = await client.get_workflow_handle(workflow_id(first.app, first.instance)).query(
            RelocationWorkflow.state
        )
        await assert_replays(client.get_workflow_handle(workflow_id(first.app, first.instance)))
    assert {o.request_id[-1]: o.status for o in history} == {
        "1": Status.COMPLETED,
        "2": Status.SUPERSEDED,
        "3": Status.COMPLETED,
    }
    assert state.warm is None
    assert await pdns.query_a(name) == [a.address]
    assert local.running() == [(first.app, first.instance, "edge1")]


async def test_a_worker_restart_mid_prewarm_finishes_it(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    local: LocalOrchestrator,
    clusters: dict[str, Placement],
    unique: str,
) -> None:
    """A worker stopped while a prewarm waits for readiness: the next worker finishes the
    prewarm, and the move that follows uses the warm instance."""
    a, b = clusters["edge1"], clusters["edge2"]
    warm = make_request(unique, a, b, 1, kind=PREWARM)
    name = await serve_from(local, pdns, warm, a)
    queue = act_settings.temporal.task_queue
    handle = client.get_workflow_handle(workflow_id(warm.app, warm.instance))
    gated = Gated(local, "edge2")
    async with running_worker(client, act_settings, gated, pdns):
        await request_relocation(client, queue, warm)
        await gated.waiting.wait()
        state = await handle.query(RelocationWorkflow.state)
        assert state.in_flight == warm
        assert state.step is Step.READINESS
    async with running_worker(client, act_settings, local, pdns):
        (prewarmed,) = await wait_history(client, warm, 1)
        await request_relocation(client, queue, make_request(unique, a, b, 2))
        history = await wait_history(client, warm, 2)
        await assert_replays(handle)
    assert prewarmed.status is Status.COMPLETED, prewarmed
    assert history[1].status is Status.COMPLETED, history[1]
    assert Step.DEPLOY.value not in history[1].step_ms
    assert await pdns.query_a(name) == [b.address]
    assert local.running() == [(warm.app, warm.instance, "edge2")]
