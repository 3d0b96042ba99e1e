"""The relocation workflow against the real Temporal dev server, PowerDNS and loopback clusters."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp
import pytest
from temporalio.client import Client, WorkflowFailureError

from subscriber.act.dns import PowerDns
from subscriber.act.signals import request_relocation
from subscriber.act.workflows import RelocationInput, RelocationWorkflow
from subscriber.fakes.local_orchestrator import LocalOrchestrator
from subscriber.relocation import Placement, Status, Step, decode_report, workflow_id
from subscriber.settings import Settings
from subscriber.stack import restart_service
from tests.support.kafka import create_topic, read_all
from tests.support.relocation import (
    DNS_MOVE_STEPS,
    Faulty,
    FaultyDns,
    Gated,
    assert_replays,
    make_request,
    relocation_clients,
    running_worker,
    serve_from,
    wait_history,
)
from tests.support.settings import isolate, tuned
from tests.support.waiting import until

pytestmark = [pytest.mark.stack]


async def fetch(placement: Placement) -> str:
    """What the service at ``placement`` answers on ``/``."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http,
        http.get(f"http://{placement.address}:{placement.port}/") as resp,
    ):
        return (await resp.text()).strip()


async def test_relocation_moves_dns_and_service(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    local: LocalOrchestrator,
    clusters: dict[str, Placement],
    unique: str,
) -> None:
    """A move ends with DNS answering the target, the target serving and the source gone."""
    a, b = clusters["edge1"], clusters["edge2"]
    req = make_request(unique, a, b)
    name = await serve_from(local, pdns, req, a)
    async with running_worker(client, act_settings, local, pdns):
        started = time.monotonic()
        await request_relocation(client, act_settings.temporal.task_queue, req)
        await until(lambda: _answers(pdns, name, b.address))
        switched_s = time.monotonic() - started
        history = await wait_history(client, req, 1)
    outcome = history[0]
    assert outcome.status is Status.COMPLETED, outcome
    assert await pdns.query_a(name) == [b.address]
    assert await fetch(b) == "edge2"
    assert local.running() == [(req.app, req.instance, "edge2")]
    assert outcome.dns_switched_at is not None
    assert outcome.received_at is not None
    in_workflow_s = (outcome.dns_switched_at - outcome.received_at).total_seconds()
    print(
        f"\nsignal->DNS switch: {switched_s * 1000:.0f} ms wall (signal call to authoritative "
        f"answer), {in_workflow_s * 1000:.0f} ms in workflow time; steps (ms): {outcome.step_ms}"
    )
    assert list(outcome.step_ms) == DNS_MOVE_STEPS


async def _answers(pdns: PowerDns, name: str, address: str) -> bool:
    return await pdns.query_a(name) == [address]


async def test_duplicated_requests_make_one_relocation(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    local: LocalOrchestrator,
    clusters: dict[str, Placement],
    unique: str,
) -> None:
    """The same request id signalled again and again moves once; an older decision is stale."""
    a, b = clusters["edge1"], clusters["edge2"]
    req = make_request(unique, a, b)
    name = await serve_from(local, pdns, req, a)
    queue = act_settings.temporal.task_queue
    async with running_worker(client, act_settings, local, pdns):
        for _ in range(3):
            await request_relocation(client, queue, req)
        history = await wait_history(client, req, 1)
        for _ in range(2):
            await request_relocation(client, queue, req)
        await request_relocation(client, queue, make_request(unique, b, a, 0))
        history = await wait_history(client, req, 2)
        handle = client.get_workflow_handle(workflow_id(req.app, req.instance))
        state = await handle.query(RelocationWorkflow.state)
    assert [o.status for o in history] == [Status.COMPLETED, Status.STALE]
    assert state.moves_completed == 1
    assert state.placement == b
    assert state.pending is None
    assert await pdns.query_a(name) == [b.address]


async def test_each_outcome_is_reported_on_the_ues_partition(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    local: LocalOrchestrator,
    clusters: dict[str, Placement],
    unique: str,
) -> None:
    """Every request's outcome goes to the outcomes topic, keyed by the UE's pseudonym, on the
    partition the request names, in order; the history replays to the same reports."""
    a, b = clusters["edge1"], clusters["edge2"]
    kafka = act_settings.kafka
    await create_topic(kafka.bootstrap_servers, kafka.outcomes_topic, partitions=3)
    req = make_request(unique, a, b).model_copy(update={"partition": 2})
    stale = make_request(unique, b, a, 0).model_copy(update={"partition": 2})
    await serve_from(local, pdns, req, a)
    queue = act_settings.temporal.task_queue
    async with running_worker(client, act_settings, local, pdns):
        await request_relocation(client, queue, req)
        await wait_history(client, req, 1)
        await request_relocation(client, queue, stale)
        records = await read_all(kafka.bootstrap_servers, kafka.outcomes_topic, 2)
        handle = client.get_workflow_handle(workflow_id(req.app, req.instance))
    await assert_replays(handle)
    assert [(m.partition, m.key) for m in records] == [(2, b"~0123456789ab")] * 2
    done, refused = (decode_report(m.value) for m in records)
    assert (done.outcome.request_id, done.outcome.status) == (req.request_id, Status.COMPLETED)
    assert (done.placement, done.settled, done.outcome.source_cluster) == ("edge2", True, "edge1")
    assert (refused.outcome.status, refused.placement, refused.settled) == (
        Status.STALE,
        "edge2",
        True,
    )


FAILURES = {
    "deploy": (Step.DEPLOY, {"deploy": "edge2"}, None),
    "readiness_timeout": (Step.READINESS, {}, None),
    "dns_api_error": (Step.DNS, {}, "edge2"),
    "removal_error": (Step.REMOVE_SOURCE, {"remove": "edge1"}, None),
}


@pytest.mark.parametrize("case", list(FAILURES))
async def test_failure_at_each_step_keeps_serving_from_source(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    local: LocalOrchestrator,
    clusters: dict[str, Placement],
    unique: str,
    case: str,
) -> None:
    """A failure at any step leaves DNS on the serving source and no target deployment."""
    step, orchestrator_faults, dns_fault_cluster = FAILURES[case]
    a, b = clusters["edge1"], clusters["edge2"]
    req = make_request(unique, a, b)
    name = await serve_from(local, pdns, req, a)
    settings = act_settings
    orchestrator = Faulty(local, **orchestrator_faults)
    if case == "readiness_timeout":
        # A real service that warms up for longer than the readiness deadline.
        slow = LocalOrchestrator(state_dir=act_settings.relocation.local_dir, warmup_s=60)
        await slow.__aenter__()
        orchestrator = Faulty(slow)
        settings = act_settings.model_copy(
            update={
                "relocation": act_settings.relocation.model_copy(
                    update={"readiness_timeout_s": 1.0}
                )
            }
        )
    dns = FaultyDns(pdns, clusters[dns_fault_cluster].address) if dns_fault_cluster else pdns
    try:
        async with running_worker(client, settings, orchestrator, dns):
            await request_relocation(client, settings.temporal.task_queue, req)
            history = await wait_history(client, req, 1)
            state = await client.get_workflow_handle(workflow_id(req.app, req.instance)).query(
                RelocationWorkflow.state
            )
    finally:
        if case == "readiness_timeout":
            await slow.__aexit__(None, None, None)
    outcome = history[0]
    assert outcome.status is Status.FAILED
    assert outcome.failed_step is step, outcome
    assert not outcome.compensation_errors
    assert "target_removed" in outcome.compensated
    assert await pdns.query_a(name) == [a.address]
    assert await fetch(a) == "edge1"
    assert local.running() == [(req.app, req.instance, "edge1")]
    assert state.placement == a
    assert state.in_flight is None


@pytest.mark.parametrize(
    ("case", "compensated", "dns_on", "running"),
    [
        ("dns_api_error", ["target_removed"], "edge1", ["edge1"]),
        ("removal_error", ["kept_target_source_address_unknown"], "edge2", ["edge1", "edge2"]),
    ],
)
async def test_a_failed_move_from_a_source_known_by_its_cluster_only(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    local: LocalOrchestrator,
    clusters: dict[str, Placement],
    unique: str,
    case: str,
    compensated: list[str],
    dns_on: str,
    running: list[str],
) -> None:
    """A source with no address (a Kubernetes cluster whose topology entry leaves it out): a
    DNS change never accepted removes the target and leaves DNS on the source; once DNS is on
    the target (the source's removal failed) the target stays, as DNS cannot go back."""
    a, b = clusters["edge1"], clusters["edge2"]
    req = make_request(unique, Placement(cluster=a.cluster, address=None, port=a.port), b)
    name = await serve_from(local, pdns, req, a)
    faulty = case == "dns_api_error"
    orchestrator = Faulty(local) if faulty else Faulty(local, remove="edge1")
    dns = FaultyDns(pdns, b.address or "") if faulty else pdns
    async with running_worker(client, act_settings, orchestrator, dns):
        await request_relocation(client, act_settings.temporal.task_queue, req)
        (outcome,) = await wait_history(client, req, 1)
    assert outcome.status is Status.FAILED, outcome
    assert list(outcome.compensated) == compensated
    assert await pdns.query_a(name) == [clusters[dns_on].address]
    assert local.running() == [(req.app, req.instance, c) for c in running]


async def test_superseded_pending_move_is_coalesced(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    local: LocalOrchestrator,
    clusters: dict[str, Placement],
    unique: str,
) -> None:
    """Requests arriving during a move queue up, and only the latest pending one runs."""
    a, b, c = clusters["edge1"], clusters["edge2"], clusters["edge3"]
    first = make_request(unique, a, b, 1)
    name = await serve_from(local, pdns, first, a)
    gated = Gated(local, "edge2")
    queue = act_settings.temporal.task_queue
    async with running_worker(client, act_settings, gated, pdns):
        await request_relocation(client, queue, first)
        await until(gated.waiting.is_set)
        await request_relocation(client, queue, make_request(unique, a, c, 2))
        await request_relocation(client, queue, make_request(unique, a, a, 3))
        handle = client.get_workflow_handle(workflow_id(first.app, first.instance))
        state = await handle.query(RelocationWorkflow.state)
        assert state.in_flight == first
        assert state.step is Step.READINESS
        assert state.pending is not None
        assert state.pending.request_id.endswith("-3")
        gated.gate.set()
        history = await wait_history(client, first, 3)
        await assert_replays(handle)
    # Request 3 (back to edge1) superseded request 2 (edge3) before it started, then ran.
    assert [(o.request_id[-1], o.status) for o in history] == [
        ("2", Status.SUPERSEDED),
        ("1", Status.COMPLETED),
        ("3", Status.COMPLETED),
    ]
    assert await pdns.query_a(name) == [a.address]
    assert local.running() == [(first.app, first.instance, "edge1")]


async def test_cancel_during_a_move_compensates(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    local: LocalOrchestrator,
    clusters: dict[str, Placement],
    unique: str,
) -> None:
    """Cancelling the workflow mid-move removes the target and keeps DNS on the source."""
    a, b = clusters["edge1"], clusters["edge2"]
    req = make_request(unique, a, b)
    name = await serve_from(local, pdns, req, a)
    gated = Gated(local, "edge2")
    async with running_worker(client, act_settings, gated, pdns):
        await request_relocation(client, act_settings.temporal.task_queue, req)
        await until(gated.waiting.is_set)
        handle = client.get_workflow_handle(workflow_id(req.app, req.instance))
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        history = await handle.query(RelocationWorkflow.history)
        await assert_replays(handle)
    assert [o.status for o in history] == [Status.CANCELLED]
    assert "target_removed" in history[0].compensated
    assert await pdns.query_a(name) == [a.address]
    assert local.running() == [(req.app, req.instance, "edge1")]


async def test_continues_as_new_and_keeps_its_state(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    local: LocalOrchestrator,
    clusters: dict[str, Placement],
    unique: str,
) -> None:
    """After N moves the workflow continues-as-new with placement, history and seen ids."""
    a, b = clusters["edge1"], clusters["edge2"]
    first = make_request(unique, a, b, 1)
    name = await serve_from(local, pdns, first, a)
    queue = act_settings.temporal.task_queue
    wf_id = workflow_id(first.app, first.instance)
    async with running_worker(client, act_settings, local, pdns):
        await client.start_workflow(
            RelocationWorkflow.run,
            RelocationInput(app=first.app, instance=first.instance, max_moves_per_run=2),
            id=wf_id,
            task_queue=queue,
        )
        moves = [first, make_request(unique, b, a, 2), make_request(unique, a, b, 3)]
        for n, req in enumerate(moves, start=1):
            await request_relocation(client, queue, req)
            await wait_history(client, first, n)
        await request_relocation(client, queue, first)  # seen before continue-as-new
        handle = client.get_workflow_handle(wf_id)
        state = await handle.query(RelocationWorkflow.state)
        history = await handle.query(RelocationWorkflow.history)
    assert state.run == 1
    assert state.moves_completed == 3
    assert state.placement == b
    assert [o.status for o in history] == [Status.COMPLETED] * 3
    assert await pdns.query_a(name) == [b.address]


@pytest.mark.slow
@pytest.mark.parametrize("hard", [False, True], ids=["sigterm", "sigkill"])
async def test_temporal_restart_mid_workflow_loses_nothing(
    private_stack: Settings,
    clusters: dict[str, Placement],
    unique: str,
    tmp_path: Path,
    hard: bool,
) -> None:
    """Restarting (or killing) the Temporal server during a move: the move resumes, completes."""
    settings = tuned(isolate(private_stack, unique, tmp_path), tmp_path)
    a, b = clusters["edge1"], clusters["edge2"]
    req = make_request(unique, a, b)
    async with relocation_clients(settings) as (client, pdns, local):
        name = await serve_from(local, pdns, req, a)
        gated = Gated(local, "edge2")
        async with running_worker(client, settings, gated, pdns):
            await request_relocation(client, settings.temporal.task_queue, req)
            await until(gated.waiting.is_set)
            await restart_service(settings, "temporal", hard=hard)
            gated.gate.set()
            history = await wait_history(client, req, 1, timeout_s=120)
        assert [o.status for o in history] == [Status.COMPLETED]
        assert await pdns.query_a(name) == [b.address]
        assert local.running() == [(req.app, req.instance, "edge2")]
