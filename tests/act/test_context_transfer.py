"""Stateful relocation: the user's context moves with the application, or the move does not
happen (real Temporal, PowerDNS, AMS and demo application instances on loopback clusters)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle

from subscriber.act.dns import PowerDns
from subscriber.act.signals import request_relocation
from subscriber.act.workflows import RelocationWorkflow
from subscriber.relocation import (
    ContextPolicy,
    MoveOutcome,
    OnTransferFailure,
    Placement,
    RelocationRequest,
    Status,
    Step,
    workflow_id,
)
from subscriber.settings import Settings
from tests.support.relocation import (
    DNS_MOVE_STEPS,
    assert_replays,
    make_request,
    running_worker,
    serve_from,
    wait_history,
)
from tests.support.stateful import (
    UE,
    app_state,
    behave,
    registered,
    registering_orchestrator,
    retrigger,
    user_of,
    using,
    wait_ams,
    with_ams_port,
    worker_process,
)
from tests.support.waiting import until

pytestmark = [pytest.mark.stack]


@pytest.fixture
def settings(act_settings: Settings) -> Settings:
    """The tests' settings, the AMS on a port the instances are told before it starts."""
    return with_ams_port(act_settings)


def stateful_request(
    unique: str, a: Placement, b: Placement, policy: ContextPolicy | None = None
) -> RelocationRequest:
    """A move of a stateful app, with its context policy."""
    req = make_request(unique, a, b)
    return req.model_copy(update={"context_policy": policy or ContextPolicy(deadline_s=15)})


async def transferring(handle: WorkflowHandle[Any, Any]) -> bool:
    """The workflow is in its context-transfer step."""
    state = await handle.query(RelocationWorkflow.state)
    return state.step is Step.CONTEXT_TRANSFER


async def ignored(at: Placement) -> bool:
    """The instance at ``at`` got the mobility notification, and sat on it."""
    return bool((await app_state(at))["ignored"])


async def move(
    settings: Settings, client: Client, req: RelocationRequest, timeout_s: float = 60
) -> MoveOutcome:
    """Signal the move and wait for its outcome."""
    await request_relocation(client, settings.temporal.task_queue, req)
    (outcome,) = await wait_history(client, req, 1, timeout_s=timeout_s)
    return outcome


async def test_state_moves_with_the_user_and_no_request_fails(
    settings: Settings, client: Client, pdns: PowerDns, clusters: dict[str, Placement], unique: str
) -> None:
    """The target holds exactly the user's count, the user's requests run on without a gap or a
    failure across the switch, and the history replays."""
    a, b = clusters["edge1"], clusters["edge2"]
    req = stateful_request(unique, a, b)
    async with registering_orchestrator(settings) as local:
        await serve_from(local, pdns, req, a)
        async with running_worker(client, settings, local, pdns):
            async with using(user_of(pdns, req, a.port)) as user:
                await until(lambda: registered(settings, req, a))
                outcome = await move(settings, client, req)
                await until(lambda: user.clusters()[-1:] == ["edge2"])
                before = len(user.counts)
                await until(lambda: len(user.counts) >= before + 5)
            target = await app_state(b)
        await assert_replays(client.get_workflow_handle(workflow_id(req.app, req.instance)))
    assert outcome.status is Status.COMPLETED, outcome
    assert outcome.context == "transferred"
    assert user.failures == []
    assert user.continuous(), user.counts
    assert user.clusters() == ["edge1", "edge2"]
    assert target["counts"][UE] == user.counts[-1]
    assert list(outcome.step_ms) == DNS_MOVE_STEPS


@pytest.mark.parametrize(
    ("mode", "error_type"),
    [("fail", "ContextTransferFailed"), ("ignore", "ContextTransferTimeout")],
)
async def test_a_failed_or_missing_transfer_aborts_and_the_user_stays_with_its_state(
    settings: Settings,
    client: Client,
    pdns: PowerDns,
    clusters: dict[str, Placement],
    unique: str,
    mode: str,
    error_type: str,
) -> None:
    """A stateful app that reports FAILED, or never answers before its deadline, is not moved:
    the target goes, DNS never leaves the source, and the user keeps its count there."""
    a, b = clusters["edge1"], clusters["edge2"]
    req = stateful_request(unique, a, b, ContextPolicy(deadline_s=2))
    async with registering_orchestrator(settings) as local:
        name = await serve_from(local, pdns, req, a)
        async with running_worker(client, settings, local, pdns):
            async with using(user_of(pdns, req, a.port)) as user:
                await until(lambda: registered(settings, req, a))
                await behave(a, mode)
                outcome = await move(settings, client, req)
                before = len(user.counts)
                await until(lambda: len(user.counts) >= before + 5)
            source = await app_state(a)
        running = local.running()
    assert outcome.status is Status.FAILED, outcome
    assert outcome.failed_step is Step.CONTEXT_TRANSFER
    assert str(outcome.error).startswith(error_type), outcome.error
    assert "target_removed" in outcome.compensated
    assert await pdns.query_a(name) == [a.address]
    assert running == [(req.app, req.instance, "edge1")]
    assert user.failures == []
    assert user.continuous(), user.counts
    assert user.clusters() == ["edge1"]
    assert source["counts"][UE] == user.counts[-1]


async def test_a_policy_may_move_without_the_context(
    settings: Settings, client: Client, pdns: PowerDns, clusters: dict[str, Placement], unique: str
) -> None:
    """With on_failure move_without_context, a failed transfer still moves; the outcome says the
    context stayed behind, and the new instance starts the user afresh."""
    a, b = clusters["edge1"], clusters["edge2"]
    policy = ContextPolicy(deadline_s=5, on_failure=OnTransferFailure.MOVE_WITHOUT_CONTEXT)
    req = stateful_request(unique, a, b, policy)
    async with registering_orchestrator(settings) as local:
        await serve_from(local, pdns, req, a)
        async with running_worker(client, settings, local, pdns):  # noqa: SIM117
            async with using(user_of(pdns, req, a.port)) as user:
                await until(lambda: registered(settings, req, a))
                await behave(a, "fail")
                outcome = await move(settings, client, req)
                await until(lambda: user.clusters()[-1:] == ["edge2"])
    assert outcome.status is Status.COMPLETED, outcome
    assert outcome.context == "without_context: failed"
    at_b = [x.count for x in user.answers if x.cluster == "edge2"]
    assert at_b[0] == 1


async def test_with_confirmation_an_app_may_decline(
    settings: Settings, client: Client, pdns: PowerDns, clusters: dict[str, Placement], unique: str
) -> None:
    """An app registered APP_MOBILITY_WITH_CONFIRMATION that declines is not moved, whatever its
    policy says; the user stays served from the source with its state."""
    a, b = clusters["edge1"], clusters["edge2"]
    policy = ContextPolicy(deadline_s=15, on_failure=OnTransferFailure.MOVE_WITHOUT_CONTEXT)
    req = stateful_request(unique, a, b, policy)
    async with registering_orchestrator(settings) as local:
        name = await serve_from(local, pdns, req, a)
        async with running_worker(client, settings, local, pdns):  # noqa: SIM117
            async with using(user_of(pdns, req, a.port)) as user:
                await until(lambda: registered(settings, req, a))
                await behave(a, "decline", level=2)
                outcome = await move(settings, client, req)
                before = len(user.counts)
                await until(lambda: len(user.counts) >= before + 3)
        running = local.running()
    assert outcome.status is Status.FAILED, outcome
    assert str(outcome.error).startswith("ContextTransferDeclined"), outcome.error
    assert await pdns.query_a(name) == [a.address]
    assert running == [(req.app, req.instance, "edge1")]
    assert user.failures == []
    assert user.continuous(), user.counts


async def test_mobility_not_allowed_refuses_before_telling_anyone(
    settings: Settings, client: Client, pdns: PowerDns, clusters: dict[str, Placement], unique: str
) -> None:
    """A user registered APP_MOBILITY_NOT_ALLOWED keeps its instance: the move stops at once."""
    a, b = clusters["edge1"], clusters["edge2"]
    req = stateful_request(unique, a, b)
    async with registering_orchestrator(settings) as local:
        await serve_from(local, pdns, req, a)
        async with running_worker(client, settings, local, pdns):  # noqa: SIM117
            async with using(user_of(pdns, req, a.port)):
                await until(lambda: registered(settings, req, a))
                await behave(a, "ok", level=1)
                outcome = await move(settings, client, req)
        running = local.running()
    assert outcome.status is Status.FAILED, outcome
    assert str(outcome.error).startswith("MobilityNotAllowed"), outcome.error
    assert running == [(req.app, req.instance, "edge1")]


async def test_the_source_dying_during_the_transfer_moves_on_to_the_target(
    settings: Settings, client: Client, pdns: PowerDns, clusters: dict[str, Placement], unique: str
) -> None:
    """When the source instance dies before it hands the context over, nothing is left to wait
    for: the move goes on (well before the deadline) and the user is served by the target."""
    a, b = clusters["edge1"], clusters["edge2"]
    req = stateful_request(unique, a, b, ContextPolicy(deadline_s=60))
    handle = client.get_workflow_handle(workflow_id(req.app, req.instance))
    async with registering_orchestrator(settings) as local:
        name = await serve_from(local, pdns, req, a)
        async with running_worker(client, settings, local, pdns):
            async with using(user_of(pdns, req, a.port)):
                await until(lambda: registered(settings, req, a))
            await behave(a, "ignore")
            await request_relocation(client, settings.temporal.task_queue, req)

            await until(lambda: transferring(handle))
            await local.remove(req.app, req.instance, a)
            (outcome,) = await wait_history(client, req, 1, timeout_s=30)
        running = local.running()
    assert outcome.status is Status.COMPLETED, outcome
    assert outcome.context == "source_lost"
    assert outcome.step_ms["context_transfer"] < 30_000
    assert await pdns.query_a(name) == [b.address]
    assert running == [(req.app, req.instance, "edge2")]


async def test_a_worker_and_ams_restart_mid_transfer_loses_nothing(
    settings: Settings,
    client: Client,
    pdns: PowerDns,
    clusters: dict[str, Placement],
    unique: str,
    tmp_path: Path,
) -> None:
    """The worker hosting the AMS is killed while the app has not yet answered; a new one finds
    the registrations, the subscription and the procedure in its store, takes the app's late
    report, and the move completes with the user's exact state on the target."""
    a, b = clusters["edge1"], clusters["edge2"]
    req = stateful_request(unique, a, b, ContextPolicy(deadline_s=90))
    handle = client.get_workflow_handle(workflow_id(req.app, req.instance))
    log = tmp_path / "worker.log"
    async with registering_orchestrator(settings) as local:
        await serve_from(local, pdns, req, a)
        async with using(user_of(pdns, req, a.port)) as user:
            with worker_process(settings, log) as first:
                await wait_ams(settings)
                await until(lambda: registered(settings, req, a))
                await behave(a, "ignore")
                await request_relocation(client, settings.temporal.task_queue, req)

                await until(lambda: transferring(handle))
                await until(lambda: ignored(a))
                first.send_signal(signal.SIGKILL)
                first.wait()
            with worker_process(settings, log):
                await wait_ams(settings)
                # The app answers late, to the AMS of the new worker.
                await behave(a, "ok")
                await retrigger(a)
                (outcome,) = await wait_history(client, req, 1, timeout_s=90)
                await until(lambda: user.clusters()[-1:] == ["edge2"])
        target = await app_state(b)
    assert outcome.status is Status.COMPLETED, outcome
    assert outcome.context == "transferred"
    assert user.failures == [], [(round(a.at_s, 2), a.cluster, a.error) for a in user.answers]
    assert user.continuous(), user.counts
    assert target["counts"][UE] == user.counts[-1]
