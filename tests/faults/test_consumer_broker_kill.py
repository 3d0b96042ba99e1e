"""kill -9 of the Kafka broker under a running ``subscriber consume`` process."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from subscriber.relocation import Status
from subscriber.settings import Settings
from subscriber.stack.supervisor import start_service, stop_service
from tests.support.journeys import (
    all_moved_once,
    committed_at_least,
    configured,
    instances,
    interleaved,
    move_histories,
    read_decisions,
)
from tests.support.kafka import create_topic, produce_events
from tests.support.ports import edge_port
from tests.support.processes import consumer_process
from tests.support.relocation import relocation_clients, running_worker
from tests.support.settings import isolate, tuned
from tests.support.waiting import until

pytestmark = [pytest.mark.stack, pytest.mark.slow]


async def test_broker_killed_under_the_consumer_loses_no_decision(
    private_stack: Settings, unique: str, tmp_path: Path
) -> None:
    """The broker dies mid-stream and comes back; the consumer rides out the rebalance that
    follows without exiting: every event is decided, and every UE is moved exactly once."""
    settings = tuned(isolate(private_stack, unique, tmp_path), tmp_path)
    settings = configured(settings, tmp_path, edge_port(), unique)
    k = settings.kafka
    events = interleaved()
    async with relocation_clients(settings) as (client, pdns, local):
        await create_topic(k.bootstrap_servers, k.events_topic, partitions=3)
        async with running_worker(client, settings, local, pdns):
            with consumer_process(settings, tmp_path / "consumer.log") as consumer:
                half = len(events) // 2
                await produce_events(k.bootstrap_servers, k.events_topic, events[:half])
                await until(lambda: committed_at_least(settings, 20), timeout_s=60)
                await asyncio.to_thread(stop_service, private_stack, "kafka", hard=True)
                killed = time.monotonic()
                await start_service(private_stack, "kafka")
                back = time.monotonic()
                await produce_events(k.bootstrap_servers, k.events_topic, events[half:])
                await until(
                    lambda: (
                        consumer.poll() is not None or committed_at_least(settings, len(events))
                    ),
                    timeout_s=180,
                )
                assert consumer.poll() is None, "the consumer exited after the broker restart"
                caught_up = time.monotonic()
                await until(lambda: all_moved_once(client, unique), timeout_s=120)
                assert consumer.poll() is None
            histories = await move_histories(client, unique)
    print(
        f"\nfault figures (consumer, kafka kill -9): broker back after {back - killed:.1f} s, "
        f"all {len(events)} events committed {caught_up - back:.1f} s later by the same process"
    )
    assert histories == {i.instance: [Status.COMPLETED] for i in instances(unique)}
    decided = {d["event_id"] for d in await read_decisions(settings, len(events))}
    assert decided == {e.event_id for e in events}, "a decision was lost"
