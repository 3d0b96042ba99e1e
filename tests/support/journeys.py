"""Six UEs crossing from tower 1 to tower 2 at staggered times, for consumer-process tests.

Used by the consumer tests that kill or add a ``subscriber consume`` process, and by the fault
test that kills the broker under one: the same journeys, the same expectations.
"""

from __future__ import annotations

from pathlib import Path

import orjson
from temporalio.client import Client

from subscriber.act.workflows import RelocationWorkflow
from subscriber.decide.engine import read_bundle
from subscriber.decide.instances import InstanceDoc
from subscriber.decide.step import handle_event
from subscriber.events import LocationEvent
from subscriber.relocation import Status, workflow_id
from subscriber.settings import PolicySettings, Settings
from tests.support.events import POLICY, TOPOLOGY, location_event
from tests.support.kafka import committed, read_all

UES = [f"imsi-20893000000{n:04d}" for n in range(1, 7)]


def journey(i: int, supi: str) -> list[LocationEvent]:
    """UE ``i``: two reports at tower 1, then tower 2 from a UE-specific moment on."""
    cross = 2 + i
    return [location_event(n, 1 if n < cross else 2, supi=supi) for n in range(cross + 24)]


def interleaved() -> list[LocationEvent]:
    """Every UE's journey, one report of each UE in turn."""
    journeys = [journey(i, supi) for i, supi in enumerate(UES)]
    out: list[LocationEvent] = []
    for n in range(max(map(len, journeys))):
        out += [j[n] for j in journeys if n < len(j)]
    return out


def instances(unique: str = "x") -> list[InstanceDoc]:
    """One video-analytics instance per UE, on edge-1."""
    # Instance names carry the test's unique part: workflow ids outlive a test.
    return [
        InstanceDoc(ue=supi, app="video-analytics", instance=f"u{i}-{unique}", cluster="edge-1")
        for i, supi in enumerate(UES)
    ]


def expected_moves() -> dict[str, str]:
    """Per UE, the event whose decision relocates, computed by the pure core alone."""
    bundle = read_bundle(TOPOLOGY, POLICY)
    out = {}
    for i, (supi, inst) in enumerate(zip(UES, instances(), strict=True)):
        record = None
        for event in journey(i, supi):
            h = handle_event(
                event, record, [inst], bundle, ue_alias="x", app_port=1, dedup_window=32
            )
            record = h.record
            if h.requests:
                out[supi] = event.event_id
    return out


def configured(settings: Settings, tmp_path: Path, port: int, unique: str) -> Settings:
    """``settings`` with the example policy and an instances file naming :func:`instances`."""
    lines = [
        f"  - {{ue: {i.ue}, app: {i.app}, instance: {i.instance}, cluster: {i.cluster}}}"
        for i in instances(unique)
    ]
    registry = tmp_path / "instances.yaml"
    registry.write_text("instances:\n" + "\n".join(lines) + "\n")
    return settings.model_copy(
        update={
            "policy": PolicySettings(topology_file=TOPOLOGY, policy_file=POLICY),
            "act": settings.act.model_copy(
                update={"instances_file": registry, "app_port": port, "max_batch": 20}
            ),
            "log": settings.log.model_copy(update={"format": "json"}),
        }
    )


async def committed_at_least(settings: Settings, count: int) -> bool:
    """The consumer group has committed at least ``count`` events."""
    k = settings.kafka
    return await committed(k.bootstrap_servers, k.consumer_group, k.events_topic) >= count


async def move_histories(client: Client, unique: str) -> dict[str, list[Status]]:
    """Per instance, the statuses of its workflow's history."""
    out = {}
    for inst in instances(unique):
        handle = client.get_workflow_handle_for(
            RelocationWorkflow.run, workflow_id(inst.app, inst.instance)
        )
        out[inst.instance] = [h.status for h in await handle.query(RelocationWorkflow.history)]
    return out


async def all_moved_once(client: Client, unique: str) -> bool:
    """Every instance's workflow completed exactly one move."""
    try:
        histories = await move_histories(client, unique)
    except Exception:
        return False
    return all(h == [Status.COMPLETED] for h in histories.values())


async def read_decisions(settings: Settings, count: int) -> list[dict[str, object]]:
    """At least ``count`` records of the decisions topic, decoded."""
    k = settings.kafka
    return [
        orjson.loads(m.value) for m in await read_all(k.bootstrap_servers, k.decisions_topic, count)
    ]
