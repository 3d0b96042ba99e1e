"""Moves steered by AF traffic influence, end to end on the local stack: the worker asks the fake
free5GC NEF, its SMF's UP_PATH_CH comes back through the real receiver, Kafka and consumer as a
signal, and every failure leaves the UE served from the source."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import orjson
import pytest
from temporalio.client import Client

from subscriber.act.dns import PowerDns
from subscriber.act.signals import request_relocation
from subscriber.app.consumer import open_consumer
from subscriber.app.lifecycle import running
from subscriber.app.receiver import serving_receiver
from subscriber.fakes.core import FakeCoreServer
from subscriber.fakes.local_orchestrator import LocalOrchestrator
from subscriber.ingress.subscriptions import registry_for
from subscriber.relocation import (
    MoveOutcome,
    Placement,
    RelocationRequest,
    Status,
    Steering,
    SteeringPolicy,
    Step,
    workflow_id,
)
from subscriber.settings import PolicySettings, Settings
from tests.support.events import POLICY, TOPOLOGY
from tests.support.influence import UE, UE_IPV4
from tests.support.kafka import create_topic, read_all
from tests.support.ports import free_port
from tests.support.relocation import (
    assert_replays,
    make_request,
    running_worker,
    serve_from,
    wait_history,
)

pytestmark = [pytest.mark.stack]

APP = "video-analytics"


def _request(
    unique: str, a: Placement, b: Placement, via: Steering, deadline_s: float = 10.0
) -> RelocationRequest:
    return make_request(unique, a, b, app=APP).model_copy(
        update={
            "steering": SteeringPolicy(
                via=via,
                confirm_deadline_s=deadline_s,
                source_dnai="mec-tower-1",
                target_dnai="mec-tower-2",
            )
        }
    )


@asynccontextmanager
async def steering_stack(
    settings: Settings,
    client: Client,
    local: LocalOrchestrator,
    pdns: PowerDns,
    instance: str,
) -> AsyncIterator[tuple[FakeCoreServer, Settings]]:
    """The fake core (one PDU session), receiver, consumer and worker, wired as in production."""
    async with FakeCoreServer() as fake:
        fake.core.establish_session(UE, UE_IPV4)
        instances = settings.core.state_dir.parent / "instances.yaml"
        instances.parent.mkdir(parents=True, exist_ok=True)
        instances.write_text(
            f"instances:\n  - {{ue: {UE}, app: {APP}, instance: {instance}, cluster: edge-1, "
            f"ue_ipv4: {UE_IPV4}}}\n"
        )
        settings = settings.model_copy(
            update={
                "core": settings.core.model_copy(update={"nrf_url": fake.url, "retry_attempts": 1}),
                "policy": PolicySettings(topology_file=TOPOLOGY, policy_file=POLICY),
                "act": settings.act.model_copy(update={"instances_file": instances}),
                "receiver": settings.receiver.model_copy(update={"port": 0}),
            }
        )
        kafka = settings.kafka
        await create_topic(kafka.bootstrap_servers, kafka.events_topic)
        async with serving_receiver(settings, registry=registry_for(settings)) as served:
            settings = served.settings
            async with (
                running(open_consumer(settings, temporal=client)),
                running_worker(client, settings, local, pdns),
            ):
                yield fake, settings


async def _move(client: Client, settings: Settings, req: RelocationRequest) -> MoveOutcome:
    await request_relocation(client, settings.temporal.task_queue, req)
    (outcome,) = await wait_history(client, req, 1)
    return outcome


async def test_traffic_influence_moves_the_path_then_removes_the_source(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    local: LocalOrchestrator,
    clusters: dict[str, Placement],
    unique: str,
    tmp_path: Path,
) -> None:
    """The SMF's LATE notification, bound to the UE, confirms the path; DNS stays untouched."""
    a, b = clusters["edge1"], clusters["edge2"]
    req = _request(unique, a, b, Steering.TRAFFIC_INFLUENCE)
    name = await serve_from(local, pdns, req, a)
    async with steering_stack(act_settings, client, local, pdns, req.instance) as (fake, settings):
        outcome = await _move(client, settings, req)
        events = await read_all(settings.kafka.bootstrap_servers, settings.kafka.events_topic, 2)
        await assert_replays(client.get_workflow_handle(workflow_id(req.app, req.instance)))
    assert outcome.status is Status.COMPLETED, outcome
    assert list(outcome.step_ms) == [
        "deploy",
        "readiness",
        "context_transfer",
        "traffic_influence",
        "traffic_confirm",
        "remove_source",
    ]
    assert fake.core.smf.path_changes[-1] == (UE_IPV4, APP, "mec-tower-2")
    assert local.running() == [(req.app, req.instance, "edge2")]
    assert await pdns.query_a(name) == [a.address]
    bodies = [orjson.loads(e.value) for e in events]
    assert {b["dnai_change"]["change_type"] for b in bodies} == {"EARLY", "LATE"}
    for body in bodies:
        assert body["ue"] == {"supi": UE}
        assert body["dnai_change"]["app"] == APP
        assert body["dnai_change"]["instance"] == req.instance
        assert body["dnai_change"]["target_dnai"] == "mec-tower-2"


async def test_both_steers_the_path_and_then_dns(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    local: LocalOrchestrator,
    clusters: dict[str, Placement],
    unique: str,
    tmp_path: Path,
) -> None:
    """``both``: the path is confirmed first, then DNS answers the target."""
    a, b = clusters["edge1"], clusters["edge2"]
    req = _request(unique, a, b, Steering.BOTH)
    name = await serve_from(local, pdns, req, a)
    async with steering_stack(act_settings, client, local, pdns, req.instance) as (_, settings):
        outcome = await _move(client, settings, req)
    assert outcome.status is Status.COMPLETED, outcome
    assert list(outcome.step_ms)[3:6] == ["traffic_influence", "traffic_confirm", "dns"]
    assert await pdns.query_a(name) == [b.address]


FAILURES = {
    "nef_refuses": (Step.TRAFFIC_INFLUENCE, ("target_removed",)),
    "nef_down": (Step.TRAFFIC_INFLUENCE, ("target_removed",)),
    "no_late": (Step.TRAFFIC_CONFIRM, ("traffic_restored", "target_removed")),
    "late_elsewhere": (Step.TRAFFIC_CONFIRM, ("traffic_restored", "target_removed")),
}


@pytest.mark.parametrize("case", list(FAILURES))
async def test_a_failed_path_change_keeps_the_ue_on_the_source(
    case: str,
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    local: LocalOrchestrator,
    clusters: dict[str, Placement],
    unique: str,
    tmp_path: Path,
) -> None:
    """A refusal, a NEF down, no LATE in time or a LATE elsewhere: the source keeps serving."""
    a, b = clusters["edge1"], clusters["edge2"]
    req = _request(unique, a, b, Steering.TRAFFIC_INFLUENCE, deadline_s=3.0)
    await serve_from(local, pdns, req, a)
    settings = act_settings
    if case == "nef_down":
        dead = f"http://127.0.0.1:{free_port()}"
        settings = settings.model_copy(
            update={"core": settings.core.model_copy(update={"nef_url": dead})}
        )
    async with steering_stack(settings, client, local, pdns, req.instance) as (fake, settings):
        if case == "nef_refuses":
            fake.core.pcf.release(UE)
        elif case == "no_late":
            fake.core.smf.faults.drop_late = 1
        elif case == "late_elsewhere":
            fake.core.smf.faults.reroute_to = "mec-metro"
        outcome = await _move(client, settings, req)
    step, compensated = FAILURES[case]
    assert outcome.status is Status.FAILED, outcome
    assert outcome.failed_step is step, outcome
    assert outcome.compensated == compensated, outcome
    assert local.running() == [(req.app, req.instance, "edge1")]
    if step is Step.TRAFFIC_CONFIRM:
        assert fake.core.smf.path_changes[-1] == (UE_IPV4, APP, "mec-tower-1")
