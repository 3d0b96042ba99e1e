"""Temporal frozen (SIGSTOP) or killed under a running consumer: decisions go on, signals follow."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from subscriber.app.consumer import open_consumer
from subscriber.app.lifecycle import running
from subscriber.relocation import Status
from subscriber.settings import Settings
from subscriber.stack.state import read_state
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
from tests.support.relocation import Recorder, relocation_clients, running_worker
from tests.support.settings import isolate, tuned
from tests.support.waiting import until

pytestmark = [pytest.mark.stack, pytest.mark.slow]


@pytest.mark.parametrize("outage", ["sigstop", "sigkill"])
async def test_decisions_flow_while_temporal_is_away_and_signals_catch_up(
    private_stack: Settings, unique: str, tmp_path: Path, outage: str
) -> None:
    """With the Temporal server frozen or killed, every event is still decided and audited;
    once it is back, every UE is moved exactly once and every offset is committed."""
    settings = tuned(isolate(private_stack, unique, tmp_path), tmp_path)
    settings = configured(settings, tmp_path, edge_port(), unique)
    k = settings.kafka
    events = interleaved()
    recorder = Recorder()
    async with relocation_clients(settings) as (client, pdns, local):
        await create_topic(k.bootstrap_servers, k.events_topic, partitions=3)
        async with (
            running_worker(client, settings, local, pdns),
            running(open_consumer(settings, temporal=client, signal=recorder)) as consumer,
        ):
            await until(lambda: len(consumer.records) == 3, timeout_s=60)
            pid = read_state(private_stack.stack.dir).services["temporal"].pid
            if outage == "sigstop":
                os.kill(pid, signal.SIGSTOP)
            else:
                await asyncio.to_thread(stop_service, private_stack, "temporal", hard=True)
            try:
                started = time.monotonic()
                await produce_events(k.bootstrap_servers, k.events_topic, events)
                decided = await read_decisions(settings, len(events))
                decided_s = time.monotonic() - started
                assert recorder.accepted == [], "Temporal was away: nothing can have been accepted"
                waiting = consumer.signals_waiting
            finally:
                if outage == "sigstop":
                    os.kill(pid, signal.SIGCONT)
                else:
                    await start_service(private_stack, "temporal")
            back = time.monotonic()
            await until(lambda: all_moved_once(client, unique), timeout_s=180)
            await until(lambda: committed_at_least(settings, len(events)), timeout_s=60)
            caught_up_s = time.monotonic() - back
            histories = await move_histories(client, unique)
    print(
        f"\nfault figures (consumer, Temporal {outage}): {len(events)} events decided "
        f"{decided_s:.1f} s after they were produced, with Temporal away; {waiting} signals "
        f"waiting; every move done and every offset committed {caught_up_s:.1f} s after it was "
        "back"
    )
    assert {e.event_id for e in events} <= {str(d["event_id"]) for d in decided}
    assert waiting == len(instances(unique))
    assert histories == {i.instance: [Status.COMPLETED] for i in instances(unique)}
    assert len({r.request_id for r in recorder.accepted}) == len(instances(unique))
