"""kill -9 of the Kafka broker under a running ``subscriber consume`` process."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from subscriber.act.dns import PowerDns
from subscriber.act.signals import connect
from subscriber.fakes.local_orchestrator import LocalOrchestrator
from subscriber.relocation import Status
from subscriber.settings import Settings
from subscriber.stack.supervisor import start_service, stop_service
from tests.act.conftest import running_worker, tuned, until
from tests.act.kafka_util import create_topic, produce_events
from tests.act.test_consumer import _port_free_on_both
from tests.act.test_consumer_processes import (
    _all_moved_once,
    _committed_at_least,
    _configured,
    _decisions,
    _histories,
    _instances,
    _interleaved,
    consumer_process,
)
from tests.conftest import isolate

pytestmark = [pytest.mark.stack, pytest.mark.slow]


async def test_broker_killed_under_the_consumer_loses_no_decision(
    private_stack: Settings, unique: str, tmp_path: Path
) -> None:
    """The broker dies mid-stream and comes back; the consumer, stopped by the failed commit
    that follows the group's rebalance, is started again: every event is decided, and every UE
    is moved exactly once."""
    settings = tuned(isolate(private_stack, unique, tmp_path), tmp_path)
    settings = _configured(settings, tmp_path, _port_free_on_both(), unique)
    k = settings.kafka
    events = _interleaved()
    client = await connect(settings.temporal)
    async with (
        PowerDns(settings.powerdns) as pdns,
        LocalOrchestrator(
            state_dir=settings.relocation.local_dir, warmup_s=settings.relocation.local_warmup_s
        ) as local,
    ):
        await pdns.ensure_zone()
        try:
            await create_topic(k.bootstrap_servers, k.events_topic, partitions=3)
            async with running_worker(client, settings, local, pdns):
                with consumer_process(settings, tmp_path / "consumer-1.log") as consumer:
                    half = len(events) // 2
                    await produce_events(k.bootstrap_servers, k.events_topic, events[:half])
                    await until(lambda: _committed_at_least(settings, 20), timeout_s=60)
                    await asyncio.to_thread(stop_service, private_stack, "kafka", hard=True)
                    killed = time.monotonic()
                    await start_service(private_stack, "kafka")
                    back = time.monotonic()
                    await produce_events(k.bootstrap_servers, k.events_topic, events[half:])
                    # The group rebalanced while the broker was away: the consumer's next commit
                    # fails and, by design, stops it; its supervisor starts it again.
                    await until(
                        lambda: (
                            consumer.poll() is not None
                            or _committed_at_least(settings, len(events))
                        ),
                        timeout_s=120,
                    )
                exit_code = consumer.poll()
                with consumer_process(settings, tmp_path / "consumer-2.log"):
                    await until(lambda: _committed_at_least(settings, len(events)), timeout_s=180)
                    caught_up = time.monotonic()
                    await until(lambda: _all_moved_once(client, unique), timeout_s=120)
                histories = await _histories(client, unique)
        finally:
            local.remove_all()
    print(
        f"\nfault figures (consumer, kafka kill -9): broker back after {back - killed:.1f} s, "
        f"all {len(events)} events committed {caught_up - back:.1f} s later; first consumer "
        f"exit code {exit_code}"
    )
    assert histories == {i.instance: [Status.COMPLETED] for i in _instances(unique)}
    decided = {d["event_id"] for d in await _decisions(settings, len(events))}
    assert decided == {e.event_id for e in events}, "a decision was lost"
