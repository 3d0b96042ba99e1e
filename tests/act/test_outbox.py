"""The consumer's outbox against the real broker: batched sends, refusals, order, callbacks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer

from subscriber.act.consumer import partition_of
from subscriber.act.outbox import Outbox
from subscriber.settings import Settings
from tests.support.kafka import alter_topic, create_topic, read_all, read_to_end
from tests.support.waiting import until

pytestmark = pytest.mark.stack


@pytest.fixture
async def producer(stack_settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    """The consumer's kind of producer: idempotent, every replica acknowledges."""
    started = AIOKafkaProducer(
        bootstrap_servers=stack_settings.kafka.bootstrap_servers,
        enable_idempotence=True,
        acks="all",
        request_timeout_ms=5000,
    )
    await started.start()
    yield started
    await started.stop()


async def test_a_refused_batch_is_acknowledged_only_once_the_broker_takes_it(
    stack_settings: Settings, producer: AIOKafkaProducer
) -> None:
    """The broker refuses the batch (the topic's record limit is too small for it): no record
    counts as sent, none is lost; once the limit is raised each record is there once, in the
    order sent, and only then is it acknowledged."""
    bootstrap = stack_settings.kafka.bootstrap_servers
    topic = stack_settings.kafka.decisions_topic
    await create_topic(bootstrap, topic, 1, {"max.message.bytes": "256"})
    outbox = Outbox(producer)
    acked: list[int] = []
    for n in range(20):
        outbox.send(topic, b"%03d" % n + b"x" * 300, key=b"app", then=lambda n=n: acked.append(n))
    try:
        await asyncio.sleep(3)  # several refusals and retries
        assert acked == []
        await alter_topic(bootstrap, topic, {"max.message.bytes": "1000000"})
        await until(lambda: len(acked) == 20, timeout_s=30)
    finally:
        await outbox.close()
    assert acked == list(range(20))
    got = await read_to_end(bootstrap, topic)
    assert [m.value[:3] for m in got] == [b"%03d" % n for n in range(20)]


async def test_records_go_where_the_producer_puts_them_and_keep_their_order(
    stack_settings: Settings, producer: AIOKafkaProducer
) -> None:
    """Keyed records land on their key's partition (as producer.send() puts them), those with a
    partition on it; each partition keeps the order they were queued in."""
    bootstrap = stack_settings.kafka.bootstrap_servers
    topic = stack_settings.kafka.decisions_topic
    await create_topic(bootstrap, topic, 4)
    outbox = Outbox(producer)
    keys = [f"app-{n % 7}".encode() for n in range(200)]
    acked: list[int] = []
    for n, key in enumerate(keys):
        pinned = 3 if n % 10 == 0 else None
        outbox.send(topic, b"%d" % n, key=key, partition=pinned, then=lambda: acked.append(1))
    try:
        await until(lambda: len(acked) == 200, timeout_s=30)
    finally:
        await outbox.close()
    got = await read_all(bootstrap, topic, 200)
    for m in got:
        n = int(m.value)
        want = 3 if n % 10 == 0 else partition_of(keys[n].decode(), 4)
        assert m.partition == want, n
    for p in range(4):
        order = [int(m.value) for m in got if m.partition == p]
        assert order == sorted(order)
