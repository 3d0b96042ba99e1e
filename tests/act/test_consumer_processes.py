"""Consumer processes: killed mid-stream, and a second member joining the group."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest
from temporalio.client import Client

from subscriber.act.dns import PowerDns
from subscriber.act.workflows import RelocationWorkflow
from subscriber.decide.engine import read_bundle
from subscriber.decide.instances import InstanceDoc
from subscriber.decide.step import handle_event
from subscriber.events import LocationEvent
from subscriber.fakes.local_orchestrator import LocalOrchestrator
from subscriber.relocation import Status, workflow_id
from subscriber.settings import PolicySettings, Settings, to_env

from .conftest import running_worker, until
from .events import POLICY, TOPOLOGY, location_event
from .kafka_util import committed, create_topic, produce_events, read_all
from .test_consumer import _port_free_on_both

pytestmark = pytest.mark.stack

UES = [f"imsi-20893000000{n:04d}" for n in range(1, 7)]


def _journey(i: int, supi: str) -> list[LocationEvent]:
    """UE ``i``: two reports at tower 1, then tower 2 from a UE-specific moment on."""
    cross = 2 + i
    return [location_event(n, 1 if n < cross else 2, supi=supi) for n in range(cross + 24)]


def _interleaved() -> list[LocationEvent]:
    journeys = [_journey(i, supi) for i, supi in enumerate(UES)]
    out: list[LocationEvent] = []
    for n in range(max(map(len, journeys))):
        out += [j[n] for j in journeys if n < len(j)]
    return out


def _instances(unique: str = "x") -> list[InstanceDoc]:
    # Instance names carry the test's unique part: workflow ids outlive a test.
    return [
        InstanceDoc(ue=supi, app="video-analytics", instance=f"u{i}-{unique}", cluster="edge-1")
        for i, supi in enumerate(UES)
    ]


def _expected_moves() -> dict[str, str]:
    """Per UE, the event whose decision relocates, computed by the pure core alone."""
    bundle = read_bundle(TOPOLOGY, POLICY)
    out = {}
    for i, (supi, inst) in enumerate(zip(UES, _instances(), strict=True)):
        record = None
        for event in _journey(i, supi):
            h = handle_event(
                event, record, [inst], bundle, ue_alias="x", app_port=1, dedup_window=32
            )
            record = h.record
            if h.requests:
                out[supi] = event.event_id
    return out


def _configured(settings: Settings, tmp_path: Path, port: int, unique: str) -> Settings:
    lines = [
        f"  - {{ue: {i.ue}, app: {i.app}, instance: {i.instance}, cluster: {i.cluster}}}"
        for i in _instances(unique)
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


@contextmanager
def consumer_process(settings: Settings, log_file: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``subscriber consume`` as its own process; stopped (SIGTERM) at the end if alive."""
    env = {**os.environ, **to_env(settings)}
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "subscriber", "consume"], env=env, stdout=log, stderr=log
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise


async def _committed_at_least(settings: Settings, count: int) -> bool:
    k = settings.kafka
    return await committed(k.bootstrap_servers, k.consumer_group, k.events_topic) >= count


async def _histories(client: Client, unique: str) -> dict[str, list[Status]]:
    out = {}
    for inst in _instances(unique):
        handle = client.get_workflow_handle_for(
            RelocationWorkflow.run, workflow_id(inst.app, inst.instance)
        )
        out[inst.instance] = [h.status for h in await handle.query(RelocationWorkflow.history)]
    return out


async def _all_moved_once(client: Client, unique: str) -> bool:
    try:
        histories = await _histories(client, unique)
    except Exception:
        return False
    return all(h == [Status.COMPLETED] for h in histories.values())


async def _decisions(settings: Settings, count: int) -> list[dict[str, object]]:
    k = settings.kafka
    return [
        orjson.loads(m.value) for m in await read_all(k.bootstrap_servers, k.decisions_topic, count)
    ]


async def test_killed_consumer_loses_no_decision_and_moves_nothing_twice(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    local: LocalOrchestrator,
    tmp_path: Path,
    unique: str,
) -> None:
    """SIGKILL mid-stream, then a restart: every event decided, every UE moved exactly once."""
    settings = _configured(act_settings, tmp_path, _port_free_on_both(), unique)
    k = settings.kafka
    events = _interleaved()
    await create_topic(k.bootstrap_servers, k.events_topic, partitions=3)
    async with running_worker(client, settings, local, pdns):
        with consumer_process(settings, tmp_path / "c1.log") as first:
            await produce_events(k.bootstrap_servers, k.events_topic, events[: len(events) // 2])
            await until(lambda: _committed_at_least(settings, 20), timeout_s=60)
            await produce_events(k.bootstrap_servers, k.events_topic, events[len(events) // 2 :])
            await asyncio.sleep(0.3)
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        with consumer_process(settings, tmp_path / "c2.log"):
            await until(lambda: _committed_at_least(settings, len(events)), timeout_s=120)
            await until(lambda: _all_moved_once(client, unique), timeout_s=120)
        histories = await _histories(client, unique)

    assert histories == {i.instance: [Status.COMPLETED] for i in _instances(unique)}
    decided = {d["event_id"] for d in await _decisions(settings, len(events))}
    assert decided == {e.event_id for e in events}, "a decision was lost"


async def test_state_follows_partitions_to_a_second_consumer(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    local: LocalOrchestrator,
    tmp_path: Path,
    unique: str,
) -> None:
    """A member joining mid-journey restores the UEs it takes over: moves happen on time."""
    settings = _configured(act_settings, tmp_path, _port_free_on_both(), unique)
    k = settings.kafka
    events = _interleaved()
    split = 6 * 5  # every UE has crossed, none has dwelt long enough to move
    await create_topic(k.bootstrap_servers, k.events_topic, partitions=4)
    async with running_worker(client, settings, local, pdns):
        with consumer_process(settings, tmp_path / "a.log"):
            await produce_events(k.bootstrap_servers, k.events_topic, events[:split])
            await until(lambda: _committed_at_least(settings, split), timeout_s=60)
            with consumer_process(settings, tmp_path / "b.log"):
                await until(lambda: _joined(tmp_path / "b.log"), timeout_s=60)
                await produce_events(k.bootstrap_servers, k.events_topic, events[split:])
                await until(lambda: _committed_at_least(settings, len(events)), timeout_s=120)
                await until(lambda: _all_moved_once(client, unique), timeout_s=120)

    moves = {
        str(d["ue"]): str(d["event_id"])
        for d in await _decisions(settings, len(events))
        if d["action"] == "relocate"
    }
    assert sorted(moves.values()) == sorted(_expected_moves().values())
    assert "consumer.event" in (tmp_path / "b.log").read_text(), "the second member took work"


def _joined(log_file: Path) -> bool:
    return "consumer.restored" in log_file.read_text() if log_file.exists() else False
