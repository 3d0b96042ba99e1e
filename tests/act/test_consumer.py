"""The consumer against real Kafka and Temporal: audit, dead letters, commits, relocations."""

from __future__ import annotations

import asyncio
import time
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import orjson
import pytest
from temporalio.client import Client

from subscriber.act.consumer import EventConsumer
from subscriber.act.dns import PowerDns, record_name
from subscriber.act.workflows import RelocationWorkflow
from subscriber.app.consumer import open_consumer
from subscriber.app.lifecycle import running
from subscriber.fakes.local_orchestrator import LocalOrchestrator
from subscriber.relocation import Placement, Status, workflow_id
from subscriber.settings import PolicySettings, Settings
from tests.support.events import POLICY, TOPOLOGY, crossing, location_event
from tests.support.kafka import committed, create_topic, produce, produce_events, read_all
from tests.support.ports import EDGE_ADDRESSES, edge_port
from tests.support.relocation import running_worker, serve_from
from tests.support.waiting import until

pytestmark = pytest.mark.stack

UE = "imsi-208930000000001"
EDGE = EDGE_ADDRESSES


def _configured(settings: Settings, tmp_path: Path, port: int) -> Settings:
    # The instance name carries the test's unique part (the task queue's): workflow ids
    # outlive a test, and a second test must not signal the first one's workflow.
    instance = settings.temporal.task_queue
    instances = tmp_path / "instances.yaml"
    instances.write_text(
        f"instances:\n  - {{ue: {UE}, app: video-analytics, instance: {instance}, "
        "cluster: edge-1}\n"
    )
    return settings.model_copy(
        update={
            "policy": PolicySettings(topology_file=TOPOLOGY, policy_file=POLICY),
            "act": settings.act.model_copy(update={"instances_file": instances, "app_port": port}),
        }
    )


def consuming(settings: Settings, client: Client) -> AbstractAsyncContextManager[EventConsumer]:
    """The consumer process's wiring, running in the background for the duration of the block."""
    return running(open_consumer(settings, temporal=client))


async def test_poison_records_go_to_dead_letter_without_blocking(
    act_settings: Settings, client: Client, tmp_path: Path
) -> None:
    """Undecodable records are dead-lettered with their origin; the good ones are decided."""
    settings = _configured(act_settings, tmp_path, 8080)
    kafka = settings.kafka
    await create_topic(kafka.bootstrap_servers, kafka.events_topic)
    good = location_event(0, 1)
    await produce(
        kafka.bootstrap_servers,
        kafka.events_topic,
        [
            (b"junk", b"not json"),
            (good.partition_key(), orjson.dumps(good.model_dump(mode="json"))),
            (b"junk", b'{"schema_version": 7}'),
        ],
    )
    async with consuming(settings, client):
        await until(lambda: _committed_all(settings, 3), timeout_s=30)

    letters = await read_all(kafka.bootstrap_servers, kafka.dead_letter_topic, 2)
    assert [dict(m.headers)["source_offset"] for m in letters] == [b"0", b"2"]
    assert letters[0].value == b"not json"
    (decision,) = await read_all(kafka.bootstrap_servers, kafka.decisions_topic, 1)
    body = orjson.loads(decision.value)
    assert decision.key == b"video-analytics"
    assert body["event_id"] == good.event_id
    assert body["action"] == "stay"
    assert UE not in decision.value.decode()


async def test_ue_crossing_relocates_and_dns_follows(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    local: LocalOrchestrator,
    tmp_path: Path,
) -> None:
    """Events of a UE settling under tower 2 end with DNS at edge-2, serving, edge-1 gone."""
    port = edge_port()
    settings = _configured(act_settings, tmp_path, port)
    kafka = settings.kafka
    await create_topic(kafka.bootstrap_servers, kafka.events_topic)
    source = Placement(cluster="edge-1", address=EDGE["edge-1"], port=port)
    target = Placement(cluster="edge-2", address=EDGE["edge-2"], port=port)

    class _Req:
        app, instance = "video-analytics", settings.temporal.task_queue

    name = await serve_from(local, pdns, _Req(), source)  # type: ignore[arg-type]
    events = crossing()
    # Every event twice: a producer retry or an upstream duplicate must change nothing.
    await produce_events(kafka.bootstrap_servers, kafka.events_topic, events + events)

    async with running_worker(client, settings, local, pdns), consuming(settings, client):
        started = time.monotonic()
        await until(lambda: _answers(pdns, name, EDGE["edge-2"]), timeout_s=60)
        switch_s = time.monotonic() - started
        handle = client.get_workflow_handle_for(
            RelocationWorkflow.run, workflow_id("video-analytics", settings.temporal.task_queue)
        )
        await until(lambda: _completed(handle), timeout_s=30)
        history = await handle.query(RelocationWorkflow.history)

    print(f"\nevent stream consumed -> DNS answers edge-2 in {switch_s:.2f} s")
    assert [h.status for h in history] == [Status.COMPLETED]
    assert (history[0].source_cluster, history[0].target_cluster) == ("edge-1", "edge-2")
    assert await _serves(target)
    assert not await _serves(source)
    decisions = [
        orjson.loads(m.value)
        for m in await read_all(kafka.bootstrap_servers, kafka.decisions_topic, len(events))
    ]
    assert len(decisions) == len(events), "duplicates must not be decided again"
    relocations = [d for d in decisions if d["action"] == "relocate"]
    assert len(relocations) == 1
    assert relocations[0]["reason"] == "RELOCATE_BEST_CANDIDATE"
    assert relocations[0]["target"] == "edge-2"
    assert relocations[0]["candidates"], "the decision explains the candidates"
    assert name == record_name("video-analytics", settings.temporal.task_queue, pdns.zone)


async def _committed_all(settings: Settings, count: int) -> bool:
    kafka = settings.kafka
    done = await committed(kafka.bootstrap_servers, kafka.consumer_group, kafka.events_topic)
    return done >= count


async def _answers(pdns: PowerDns, name: str, address: str) -> bool:
    return await pdns.query_a(name) == [address]


async def _completed(handle: object) -> bool:
    history = await handle.query(RelocationWorkflow.history)  # type: ignore[attr-defined]
    return bool(history)


async def _serves(where: Placement) -> bool:
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(where.address, where.port), timeout=1
        )
    except OSError:
        return False
    writer.close()
    return True


async def test_single_move_report_relocates_after_the_dwell(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    local: LocalOrchestrator,
    tmp_path: Path,
) -> None:
    """A UE reported once in its new cell (as a poller reports) moves once the dwell has passed."""
    port = edge_port()
    settings = _configured(act_settings, tmp_path, port)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.read_text().replace("min_dwell_s: 5", "min_dwell_s: 1"))
    settings = settings.model_copy(
        update={"policy": PolicySettings(topology_file=TOPOLOGY, policy_file=policy)}
    )
    kafka = settings.kafka
    await create_topic(kafka.bootstrap_servers, kafka.events_topic)

    class _Req:
        app, instance = "video-analytics", settings.temporal.task_queue

    source = Placement(cluster="edge-1", address=EDGE["edge-1"], port=port)
    name = await serve_from(local, pdns, _Req(), source)  # type: ignore[arg-type]
    events = [location_event(0, 1), location_event(60, 2)]
    await produce_events(kafka.bootstrap_servers, kafka.events_topic, events)
    async with running_worker(client, settings, local, pdns), consuming(settings, client):
        await until(lambda: _answers(pdns, name, EDGE["edge-2"]), timeout_s=30)
    decisions = [
        orjson.loads(m.value)
        for m in await read_all(kafka.bootstrap_servers, kafka.decisions_topic, 3)
    ]
    assert [(d["trigger"], d["action"], d["reason"]) for d in decisions] == [
        ("event", "stay", "CURRENT_OK"),
        ("event", "defer", "DWELL_NOT_REACHED"),
        ("recheck", "relocate", "RELOCATE_BEST_CANDIDATE"),
    ]
