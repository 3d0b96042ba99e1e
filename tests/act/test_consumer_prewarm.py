"""Pre-warming through the consumer, against real Kafka, Temporal and PowerDNS: commuters teach
the predictor a route, the next one finds the app already running where it goes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from temporalio.client import Client

from subscriber.act.dns import PowerDns
from subscriber.act.workflows import RelocationWorkflow
from subscriber.fakes.local_orchestrator import LocalOrchestrator
from subscriber.relocation import MoveOutcome, Placement, RequestKind, Status, Step, workflow_id
from subscriber.settings import PolicySettings, Settings
from tests.act.test_consumer import consuming
from tests.support.events import POLICY, TOPOLOGY
from tests.support.kafka import create_topic, produce_events, read_all
from tests.support.policy import at
from tests.support.ports import CLUSTER_ADDRESSES, edge_port
from tests.support.relocation import Faulty, Recorder, running_worker, serve_from
from tests.support.waiting import until

pytestmark = pytest.mark.stack

VA = "video-analytics"
ROUTE = ["tower-3", "tower-1", "tower-1", "tower-2", "tower-2"]
STEP_S = 200.0  # between reports: past the cooldown, and the stateful dwell at tower 1


def _settings(
    settings: Settings, tmp_path: Path, port: int, subjects: int, **prewarm: Any
) -> Settings:
    """Pre-warming on; ``subjects`` UEs each with a video-analytics instance on edge-3."""
    doc = yaml.safe_load(POLICY.read_text())
    doc["prewarm"].update(
        {"enabled": True, "min_evidence": 3, "half_life_s": 86400, "max_per_cluster": 4} | prewarm
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(doc))
    instances = tmp_path / "instances.yaml"
    instances.write_text(
        "instances:\n"
        + "".join(
            f"  - {{ue: {_subject(k)}, app: {VA}, instance: {_instance(settings, k)}, "
            "cluster: edge-3}\n"
            for k in range(subjects)
        )
    )
    return settings.model_copy(
        update={
            "policy": PolicySettings(topology_file=TOPOLOGY, policy_file=policy),
            "act": settings.act.model_copy(update={"instances_file": instances, "app_port": port}),
        }
    )


def _subject(k: int) -> str:
    return f"imsi-20893000000090{k}"


def _instance(settings: Settings, k: int) -> str:
    # Workflow ids outlive a test: the task queue's unique part keeps them apart.
    return f"{settings.temporal.task_queue}-{k}"


def _trainers(now: float) -> list[Any]:
    """Six commuters along the route, long before the subject: the predictor's evidence."""
    return [
        at(place, now - 20_000 + 1000 * k + STEP_S * i, ue=f"imsi-20893000000010{k}")
        for k in range(6)
        for i, place in enumerate(ROUTE)
    ]


async def _history(client: Client, settings: Settings, k: int) -> list[MoveOutcome]:
    handle = client.get_workflow_handle(workflow_id(VA, _instance(settings, k)))
    try:
        return await handle.query(RelocationWorkflow.history)
    except Exception:
        return []


async def _serving(
    act_settings: Settings,
    tmp_path: Path,
    local: LocalOrchestrator,
    pdns: PowerDns,
    subjects: int,
    **prewarm: Any,
) -> tuple[Settings, list[str]]:
    port = edge_port()
    settings = _settings(act_settings, tmp_path, port, subjects, **prewarm)
    await create_topic(settings.kafka.bootstrap_servers, settings.kafka.events_topic)
    names = []
    for k in range(subjects):

        class _Req:
            app, instance = VA, _instance(settings, k)

        where = Placement(cluster="edge-3", address=CLUSTER_ADDRESSES[2], port=port)
        names.append(await serve_from(local, pdns, _Req(), where))  # type: ignore[arg-type]
    return settings, names


async def test_a_predicted_route_prewarms_and_the_move_only_steers(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    local: LocalOrchestrator,
    tmp_path: Path,
) -> None:
    """After commuters went tower 3, 1, 2, the next one gets the app warmed on edge-2 (audited
    with its confidence); on arrival the move skips the dwell, deploy and readiness."""
    settings, name = await _warmed(act_settings, tmp_path, local, pdns)
    kafka = settings.kafka
    async with running_worker(client, settings, local, pdns), consuming(settings, client) as c:
        await until(lambda: _done(client, settings, 2), timeout_s=60)
        assert sorted(cl for *_, cl in local.running()) == ["edge-1", "edge-2"]
        assert await pdns.query_a(name) == [CLUSTER_ADDRESSES[0]]
        arrival = at("tower-2", time.time(), ue=_subject(0))
        await produce_events(kafka.bootstrap_servers, kafka.events_topic, [arrival])
        await until(lambda: _done(client, settings, 3), timeout_s=60)
        history = await _history(client, settings, 0)
        assert c.warming is not None
        stats = c.warming.pool.stats
    moved, warmed, arrived = history
    assert [o.status for o in history] == [Status.COMPLETED] * 3
    assert (moved.target_cluster, warmed.target_cluster) == ("edge-1", "edge-2")
    assert list(warmed.step_ms) == [Step.DEPLOY.value, Step.READINESS.value]
    assert arrived.target_cluster == "edge-2"
    assert Step.DEPLOY.value not in arrived.step_ms
    assert Step.READINESS.value not in arrived.step_ms
    assert await pdns.query_a(name) == [CLUSTER_ADDRESSES[1]]
    assert local.running() == [(VA, _instance(settings, 0), "edge-2")]
    assert (stats.hits, stats.misses, stats.expired) == (1, 0, 0)
    decisions = await _audit(settings, 4 + 2)
    warm = [d for d in decisions if d.get("kind") == "prewarm"]
    assert [d["verdict"] for d in warm] == ["PREWARM", "USED"]
    assert warm[0]["target"] == "edge-2"
    assert warm[0]["confidence"] >= 0.7
    assert warm[0]["ue"].startswith("~")
    assert [d["reason"] for d in decisions if "reason" in d][-1] == "RELOCATE_PREWARMED"
    assert "imsi" not in str(decisions)


async def _audit(settings: Settings, count: int) -> list[dict[str, Any]]:
    k = settings.kafka
    return [
        orjson.loads(m.value)
        for m in await read_all(k.bootstrap_servers, k.decisions_topic, count, timeout_s=30)
    ]


async def _done(client: Client, settings: Settings, count: int) -> bool:
    history = await _history(client, settings, 0)
    return len(history) >= count


async def test_an_unused_warm_instance_is_removed_after_its_ttl(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    local: LocalOrchestrator,
    tmp_path: Path,
) -> None:
    """A subject that never reaches tower 2: its warm instance on edge-2 expires after the TTL,
    is removed, and the expiry is audited as waste."""
    ttl_s = 500.0
    settings, (name,) = await _serving(act_settings, tmp_path, local, pdns, 1, ttl_s=ttl_s)
    kafka = settings.kafka
    now = time.time()
    warmed_at = now - ttl_s + 20  # expires about 20 s from now: after the prewarm is done
    base = warmed_at - 2 * STEP_S
    subject = [at(p, base + STEP_S * i, ue=_subject(0)) for i, p in enumerate(ROUTE[:3])]
    await produce_events(kafka.bootstrap_servers, kafka.events_topic, [*_trainers(now), *subject])
    async with running_worker(client, settings, local, pdns), consuming(settings, client) as c:
        await until(lambda: _done(client, settings, 3), timeout_s=90)
        history = await _history(client, settings, 0)
        assert c.warming is not None
        stats = c.warming.pool.stats
    moved, warmed, cooled = history
    assert (moved.target_cluster, warmed.target_cluster) == ("edge-1", "edge-2")
    assert list(warmed.step_ms) == [Step.DEPLOY.value, Step.READINESS.value]
    assert cooled.status is Status.COMPLETED, cooled
    assert list(cooled.step_ms) == [Step.REMOVE_WARM.value]
    assert local.running() == [(VA, _instance(settings, 0), "edge-1")]
    assert await pdns.query_a(name) == [CLUSTER_ADDRESSES[0]]
    assert stats.expired == 1
    assert stats.wasted_s == pytest.approx(ttl_s)
    decisions = await _audit(settings, 3 + 2)
    assert [d["verdict"] for d in decisions if d.get("kind") == "prewarm"] == [
        "PREWARM",
        "EXPIRED",
    ]


async def test_an_exhausted_budget_prewarms_nothing(
    act_settings: Settings, client: Client, tmp_path: Path
) -> None:
    """Two subjects on the route with one warm instance allowed per cluster: only the first
    one's app is warmed; the second is refused quietly (counted, not signalled)."""
    settings = _settings(act_settings, tmp_path, edge_port(), 2, ttl_s=1000, max_per_cluster=1)
    kafka = settings.kafka
    await create_topic(kafka.bootstrap_servers, kafka.events_topic)
    now = time.time()
    base = now - 3 * STEP_S
    subjects = [
        at(p, base + STEP_S * i + k, ue=_subject(k))
        for i, p in enumerate(ROUTE[:3])
        for k in range(2)
    ]
    await produce_events(kafka.bootstrap_servers, kafka.events_topic, [*_trainers(now), *subjects])
    recorder = Recorder()  # no worker: the requests are only accepted by Temporal
    async with consuming(settings, client, recorder) as c:
        await until(lambda: len(recorder.accepted) >= 3, timeout_s=60)
        await _audit(settings, 2 * 3 + 1)
        assert c.warming is not None
        quiet = dict(c.warming.pool.stats.quiet)
    kinds = sorted((r.instance[-1], r.kind.value, r.target.cluster) for r in recorder.accepted)
    assert kinds == [("0", "move", "edge-1"), ("0", "prewarm", "edge-2"), ("1", "move", "edge-1")]
    assert quiet.get("CLUSTER_BUDGET") == 1, quiet


async def _warmed(act_settings: Settings, tmp_path: Path, local: LocalOrchestrator, pdns: PowerDns):  # type: ignore[no-untyped-def]
    """One subject on the route, reports produced: its app will be warmed on edge-2."""
    settings, (name,) = await _serving(act_settings, tmp_path, local, pdns, 1, ttl_s=1000)
    kafka = settings.kafka
    now = time.time()
    base = now - 3 * STEP_S
    subject = [at(p, base + STEP_S * i, ue=_subject(0)) for i, p in enumerate(ROUTE[:3])]
    await produce_events(kafka.bootstrap_servers, kafka.events_topic, [*_trainers(now), *subject])
    return settings, name


async def test_a_failed_prewarm_gives_its_room_back(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    local: LocalOrchestrator,
    tmp_path: Path,
) -> None:
    """The prewarm's deploy fails: its outcome ends the warm instance in the pool at once
    (budget, capacity and owner), audited, instead of holding them until the TTL."""
    settings, _ = await _warmed(act_settings, tmp_path, local, pdns)
    faulty = Faulty(local, deploy="edge-2")
    async with running_worker(client, settings, faulty, pdns), consuming(settings, client) as c:
        await until(lambda: _done(client, settings, 2), timeout_s=60)
        assert c.warming is not None
        pool = c.warming.pool
        await until(lambda: len(pool) == 0, timeout_s=30)
        history = await _history(client, settings, 0)
        decisions = await _audit(settings, 3 + 2)
        left = c.ledger.extra.get("edge-2")
    assert (history[1].kind, history[1].status) == (RequestKind.PREWARM, Status.FAILED)
    assert left is None or left.apps == 0
    assert pool.on_cluster("edge-2") == 0
    assert [d["verdict"] for d in decisions if d.get("kind") == "prewarm"] == [
        "PREWARM",
        "EXPIRED",
    ]


async def test_turning_prewarming_off_cools_what_was_warm(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    local: LocalOrchestrator,
    tmp_path: Path,
) -> None:
    """A policy reload with pre-warming off: the warm instance is removed at once (not left
    running, counted against capacity, until the UE's next move)."""
    settings, name = await _warmed(act_settings, tmp_path, local, pdns)
    policy = settings.policy.policy_file
    async with running_worker(client, settings, local, pdns), consuming(settings, client) as c:
        await until(lambda: _done(client, settings, 2), timeout_s=60)
        doc = yaml.safe_load(policy.read_text())
        doc["prewarm"]["enabled"] = False
        fresh = policy.with_suffix(".new")
        fresh.write_text(yaml.safe_dump(doc))
        fresh.replace(policy)
        await until(lambda: _done(client, settings, 3), timeout_s=60)
        history = await _history(client, settings, 0)
        warming = c.warming
        left = c.ledger.extra.get("edge-2")
    cooled = history[2]
    assert (cooled.kind, cooled.status) == (RequestKind.COOL, Status.COMPLETED), cooled
    assert list(cooled.step_ms) == [Step.REMOVE_WARM.value]
    assert warming is None
    assert left is None or left.apps == 0
    assert local.running() == [(VA, _instance(settings, 0), "edge-1")]
    assert await pdns.query_a(name) == [CLUSTER_ADDRESSES[0]]


async def test_a_revoked_partition_cools_its_warm_instances(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    local: LocalOrchestrator,
    tmp_path: Path,
) -> None:
    """The subject's partition goes to another consumer, which does not know the warm
    instance: this one ends it (audited, room given back) and signals its cool at once."""
    settings, name = await _warmed(act_settings, tmp_path, local, pdns)
    async with running_worker(client, settings, local, pdns), consuming(settings, client) as c:
        await until(lambda: _done(client, settings, 2), timeout_s=60)
        assert c.warming is not None
        pool = c.warming.pool
        await c.revoked(set(c.records))
        await until(lambda: _done(client, settings, 3), timeout_s=60)
        history = await _history(client, settings, 0)
        left = c.ledger.extra.get("edge-2")
    cooled = history[2]
    assert (cooled.kind, cooled.status) == (RequestKind.COOL, Status.COMPLETED), cooled
    assert len(pool) == 0
    assert left is None or left.apps == 0
    assert local.running() == [(VA, _instance(settings, 0), "edge-1")]
    assert await pdns.query_a(name) == [CLUSTER_ADDRESSES[0]]
