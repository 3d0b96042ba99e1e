"""Consumer processes: killed mid-stream, and a second member joining the group."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from temporalio.client import Client

from subscriber.act.dns import PowerDns
from subscriber.fakes.local_orchestrator import LocalOrchestrator
from subscriber.relocation import Status
from subscriber.settings import Settings
from tests.support.journeys import (
    all_moved_once,
    committed_at_least,
    configured,
    expected_moves,
    instances,
    interleaved,
    move_histories,
    read_decisions,
)
from tests.support.kafka import create_topic, produce_events
from tests.support.ports import edge_port
from tests.support.processes import consumer_process
from tests.support.relocation import running_worker
from tests.support.waiting import until

pytestmark = pytest.mark.stack


async def test_killed_consumer_loses_no_decision_and_moves_nothing_twice(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    local: LocalOrchestrator,
    tmp_path: Path,
    unique: str,
) -> None:
    """SIGKILL mid-stream, then a restart: every event decided, every UE moved exactly once."""
    settings = configured(act_settings, tmp_path, edge_port(), unique)
    k = settings.kafka
    events = interleaved()
    await create_topic(k.bootstrap_servers, k.events_topic, partitions=3)
    async with running_worker(client, settings, local, pdns):
        with consumer_process(settings, tmp_path / "c1.log") as first:
            await produce_events(k.bootstrap_servers, k.events_topic, events[: len(events) // 2])
            await until(lambda: committed_at_least(settings, 20), timeout_s=60)
            await produce_events(k.bootstrap_servers, k.events_topic, events[len(events) // 2 :])
            await asyncio.sleep(0.3)
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        with consumer_process(settings, tmp_path / "c2.log"):
            await until(lambda: committed_at_least(settings, len(events)), timeout_s=120)
            await until(lambda: all_moved_once(client, unique), timeout_s=120)
        histories = await move_histories(client, unique)

    assert histories == {i.instance: [Status.COMPLETED] for i in instances(unique)}
    decided = {d["event_id"] for d in await read_decisions(settings, len(events))}
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
    settings = configured(act_settings, tmp_path, edge_port(), unique)
    k = settings.kafka
    events = interleaved()
    split = 6 * 5  # every UE has crossed, none has dwelt long enough to move
    await create_topic(k.bootstrap_servers, k.events_topic, partitions=4)
    async with running_worker(client, settings, local, pdns):
        with consumer_process(settings, tmp_path / "a.log"):
            await produce_events(k.bootstrap_servers, k.events_topic, events[:split])
            await until(lambda: committed_at_least(settings, split), timeout_s=60)
            with consumer_process(settings, tmp_path / "b.log"):
                await until(lambda: _joined(tmp_path / "b.log"), timeout_s=60)
                await produce_events(k.bootstrap_servers, k.events_topic, events[split:])
                await until(lambda: committed_at_least(settings, len(events)), timeout_s=120)
                await until(lambda: all_moved_once(client, unique), timeout_s=120)

    moves = {
        str(d["ue"]): str(d["event_id"])
        for d in await read_decisions(settings, len(events))
        if d["action"] == "relocate"
    }
    assert sorted(moves.values()) == sorted(expected_moves().values())
    assert "consumer.event" in (tmp_path / "b.log").read_text(), "the second member took work"


def _joined(log_file: Path) -> bool:
    return "consumer.restored" in log_file.read_text() if log_file.exists() else False
