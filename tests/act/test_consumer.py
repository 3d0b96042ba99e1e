"""The consumer against real Kafka and Temporal: audit, dead letters, commits, relocations."""

from __future__ import annotations

import asyncio
import time
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

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
from tests.support.kafka import (
    alter_topic,
    committed,
    create_topic,
    produce,
    produce_events,
    read_all,
)
from tests.support.ports import EDGE_ADDRESSES, edge_port
from tests.support.relocation import Recorder, running_worker, serve_from
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


def consuming(
    settings: Settings, client: Client, recorder: Recorder | None = None
) -> AbstractAsyncContextManager[EventConsumer]:
    """The consumer process's wiring, running in the background for the duration of the block."""
    if recorder is None:
        return running(open_consumer(settings, temporal=client))
    return running(open_consumer(settings, temporal=client, signal=recorder))


def _registry(tmp_path: Path, entries: list[tuple[str, str, str]]) -> Path:
    """An instances file of (UE, instance, cluster), one video-analytics instance each."""
    path = tmp_path / "instances.yaml"
    lines = "".join(
        f"  - {{ue: {ue}, app: video-analytics, instance: {i}, cluster: {c}}}\n"
        for ue, i, c in entries
    )
    path.write_text("instances:\n" + lines if lines else "instances: []\n")
    return path


async def _decisions(settings: Settings, count: int) -> list[dict[str, Any]]:
    k = settings.kafka
    return [
        orjson.loads(m.value) for m in await read_all(k.bootstrap_servers, k.decisions_topic, count)
    ]


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

    async with (
        running_worker(client, settings, local, pdns),
        consuming(settings, client) as consumer,
    ):
        started = time.monotonic()
        await until(lambda: _answers(pdns, name, EDGE["edge-2"]), timeout_s=60)
        switch_s = time.monotonic() - started
        handle = client.get_workflow_handle_for(
            RelocationWorkflow.run, workflow_id("video-analytics", settings.temporal.task_queue)
        )
        await until(lambda: _completed(handle), timeout_s=30)
        history = await handle.query(RelocationWorkflow.history)
        # The workflow's outcome comes back through Kafka: the move is confirmed, and the
        # capacity it took on edge-2 stays counted while edge-1's is given back.
        key = f"video-analytics/{settings.temporal.task_queue}"
        await until(lambda: not consumer.records[0][UE].unconfirmed, timeout_s=30)
        assert consumer.records[0][UE].placement_of(key) == "edge-2"
        assert consumer.ledger.extra["edge-2"].apps == 1
        assert consumer.ledger.extra["edge-1"].apps == -1

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


async def test_a_record_that_cannot_be_handled_is_dead_lettered_and_the_rest_go_on(
    act_settings: Settings, client: Client, tmp_path: Path
) -> None:
    """A valid-looking event with a 250-character event id goes to the dead-letter topic with its
    reason; the consumer neither stops nor skips the records after it."""
    settings = _configured(act_settings, tmp_path, 8080)
    kafka = settings.kafka
    await create_topic(kafka.bootstrap_servers, kafka.events_topic)
    good = [location_event(n, 1) for n in range(3)]
    doc = good[1].model_dump(mode="json")
    doc["event_id"] = "e" * 250
    bad = orjson.dumps(doc)
    records = [(e.partition_key(), orjson.dumps(e.model_dump(mode="json"))) for e in good]
    await produce(
        kafka.bootstrap_servers,
        kafka.events_topic,
        [records[0], (good[1].partition_key(), bad), *records[1:]],
    )
    async with consuming(settings, client):
        await until(lambda: _committed_all(settings, 4), timeout_s=30)
    (letter,) = await read_all(kafka.bootstrap_servers, kafka.dead_letter_topic, 1)
    headers = dict(letter.headers)
    assert headers["source_offset"] == b"1"
    assert b"event_id" in headers["reason"]
    decided = {d["event_id"] for d in await _decisions(settings, 3)}
    assert decided == {e.event_id for e in good}


async def test_a_refused_audit_batch_holds_the_commit_and_loses_nothing(
    act_settings: Settings, client: Client, tmp_path: Path
) -> None:
    """The broker refuses every batch of decisions (the audit topic's record limit is below one
    record): nothing is committed past them and the consumer goes on; once the broker takes them,
    each event's decision is there once and every offset is committed."""
    settings = _configured(act_settings, tmp_path, 8080)
    kafka = settings.kafka
    await create_topic(kafka.bootstrap_servers, kafka.events_topic)
    await create_topic(
        kafka.bootstrap_servers, kafka.decisions_topic, configs={"max.message.bytes": "128"}
    )
    events = [location_event(n, 1) for n in range(5)]
    await produce_events(kafka.bootstrap_servers, kafka.events_topic, events)
    async with consuming(settings, client):
        await asyncio.sleep(4)  # handled, refused and retried a few times
        assert (
            await committed(kafka.bootstrap_servers, kafka.consumer_group, kafka.events_topic) == 0
        )
        await alter_topic(
            kafka.bootstrap_servers, kafka.decisions_topic, {"max.message.bytes": "1000000"}
        )
        await until(lambda: _committed_all(settings, len(events)), timeout_s=60)
    decided = [d["event_id"] for d in await _decisions(settings, len(events))]
    assert sorted(decided) == sorted(e.event_id for e in events)


async def test_placements_count_against_capacity_at_once(
    act_settings: Settings, client: Client, tmp_path: Path
) -> None:
    """Ten UEs settling under tower 2, whose edge has room for three more video-analytics
    instances: three are sent there, the others elsewhere."""
    ues = [f"imsi-20893000000{n:04d}" for n in range(10)]
    settings = _configured(act_settings, tmp_path, 8080)
    queue = act_settings.temporal.task_queue
    registry = _registry(tmp_path, [(ue, f"{queue}-{i}", "edge-1") for i, ue in enumerate(ues)])
    settings = settings.model_copy(
        update={"act": settings.act.model_copy(update={"instances_file": registry})}
    )
    kafka = settings.kafka
    await create_topic(kafka.bootstrap_servers, kafka.events_topic, partitions=2)
    events = [e for ue in ues for e in crossing(ue)]
    await produce_events(kafka.bootstrap_servers, kafka.events_topic, events)
    recorder = Recorder()
    async with consuming(settings, client, recorder):
        await until(lambda: _committed_all(settings, len(events)), timeout_s=60)
    moves = [d for d in await _decisions(settings, len(events)) if d["action"] == "relocate"]
    assert len(moves) == 10
    assert sum(d["target"] == "edge-2" for d in moves) == 3
    assert len(recorder.accepted) == 10


async def test_a_maintenance_reload_evacuates_at_once(
    act_settings: Settings, client: Client, tmp_path: Path
) -> None:
    """Putting edge-1 into maintenance under a running consumer moves its instances away at
    once, though their UEs send nothing, within the other clusters' capacity."""
    queue = act_settings.temporal.task_queue
    ues = [f"imsi-20893000001{n:04d}" for n in range(4)]
    registry = _registry(tmp_path, [(ue, f"{queue}-{i}", "edge-1") for i, ue in enumerate(ues)])
    topology = tmp_path / "topology.yaml"
    topology.write_text(TOPOLOGY.read_text())
    settings = act_settings.model_copy(
        update={
            "policy": PolicySettings(
                topology_file=topology, policy_file=POLICY, reload_interval_s=0.2
            ),
            "act": act_settings.act.model_copy(update={"instances_file": registry}),
        }
    )
    await create_topic(settings.kafka.bootstrap_servers, settings.kafka.events_topic)
    recorder = Recorder()
    async with consuming(settings, client, recorder) as consumer:
        await until(lambda: 0 in consumer.records, timeout_s=30)
        topology.write_text(
            TOPOLOGY.read_text().replace(
                "    zone: zone-tower-1\n", "    zone: zone-tower-1\n    state: maintenance\n", 1
            )
        )
        await until(lambda: len(recorder.accepted) == 4, timeout_s=30)
    decisions = await _decisions(settings, 4)
    assert {(d["trigger"], d["action"], d["reason"]) for d in decisions} == {
        ("evacuate", "relocate", "CLUSTER_MAINTENANCE")
    }
    assert all(d["target"] != "edge-1" for d in decisions)
    assert sum(d["target"] == "edge-2" for d in decisions) <= 3
    assert {r.instance for r in recorder.accepted} == {f"{queue}-{i}" for i in range(4)}


async def test_the_instances_file_is_reloaded(
    act_settings: Settings, client: Client, tmp_path: Path
) -> None:
    """An instance added to the instances file under a running consumer is decided for."""
    settings = _configured(act_settings, tmp_path, 8080)
    registry = _registry(tmp_path, [])
    settings = settings.model_copy(
        update={
            "act": settings.act.model_copy(update={"instances_file": registry}),
            "policy": settings.policy.model_copy(update={"reload_interval_s": 0.2}),
        }
    )
    kafka = settings.kafka
    await create_topic(kafka.bootstrap_servers, kafka.events_topic)
    async with consuming(settings, client):
        await produce_events(kafka.bootstrap_servers, kafka.events_topic, [location_event(0, 1)])
        await until(lambda: _committed_all(settings, 1), timeout_s=30)
        _registry(tmp_path, [(UE, settings.temporal.task_queue, "edge-1")])
        await asyncio.sleep(1.0)  # a few reload intervals
        await produce_events(kafka.bootstrap_servers, kafka.events_topic, [location_event(1, 1)])
        await until(lambda: _committed_all(settings, 2), timeout_s=30)
    (decision,) = await _decisions(settings, 1)
    assert decision["event_id"] == location_event(1, 1).event_id
    assert decision["instance"] == settings.temporal.task_queue


async def test_quiet_ues_are_forgotten_with_tombstones(
    act_settings: Settings, client: Client, tmp_path: Path
) -> None:
    """UEs quiet for longer than act.ue_ttl_s leave memory, and the changelog gets tombstones."""
    settings = _configured(act_settings, tmp_path, 8080)
    settings = settings.model_copy(
        update={"act": settings.act.model_copy(update={"ue_ttl_s": 1.0})}
    )
    kafka = settings.kafka
    await create_topic(kafka.bootstrap_servers, kafka.events_topic)
    ues = [f"imsi-20893000002{n:04d}" for n in range(5)]
    events = [location_event(0, 1, supi=ue) for ue in ues]
    async with consuming(settings, client) as consumer:
        await produce_events(kafka.bootstrap_servers, kafka.events_topic, events)
        await until(lambda: _committed_all(settings, len(events)), timeout_s=30)
        await until(lambda: not consumer.records.get(0), timeout_s=30)
    changelog = await read_all(kafka.bootstrap_servers, kafka.state_topic, 10)
    last = {m.key.decode(): m.value for m in changelog}
    assert last == dict.fromkeys(ues)
    async with consuming(settings, client) as again:
        await until(lambda: 0 in again.records, timeout_s=30)
        assert not again.records.get(0), "a restart restores nothing of them"
