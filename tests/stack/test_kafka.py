"""The real Kafka broker does what the pipeline relies on."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from subscriber.stack import StackInfo
from tests.support.kafka import create_topic

pytestmark = pytest.mark.stack


async def test_idempotent_producer_round_trip(stack: StackInfo, unique: str) -> None:
    """An idempotent acks=all producer's records come back in order, once each."""
    topic = f"roundtrip-{unique}"
    await create_topic(stack.kafka_bootstrap, topic)
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.kafka_bootstrap,
        enable_idempotence=True,
        acks="all",
        compression_type="gzip",
    )
    await producer.start()
    try:
        for i in range(20):
            await producer.send(topic, key=b"ue-1", value=f"m{i}".encode())
        await producer.flush()
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=stack.kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        got = []
        while len(got) < 20:
            batch = await consumer.getmany(timeout_ms=5000)
            assert batch, "no records within 5 s"
            got += [r.value.decode() for records in batch.values() for r in records]
    finally:
        await consumer.stop()
    assert got == [f"m{i}" for i in range(20)]


async def _consume(bootstrap: str, topic: str, group: str, count: int) -> list[str]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        got: list[str] = []
        while len(got) < count:
            batch = await consumer.getmany(timeout_ms=5000, max_records=count - len(got))
            assert batch, "no records within 5 s"
            got += [r.value.decode() for records in batch.values() for r in records]
        await consumer.commit()
    finally:
        await consumer.stop()
    return got


async def test_consumer_group_resumes_at_committed_offset(stack: StackInfo, unique: str) -> None:
    """A restarted group member starts after the last offset its group committed."""
    topic, group = f"resume-{unique}", f"group-{unique}"
    await create_topic(stack.kafka_bootstrap, topic)
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.kafka_bootstrap, enable_idempotence=True, acks="all"
    )
    await producer.start()
    try:
        for i in range(10):
            await producer.send_and_wait(topic, value=f"m{i}".encode())
    finally:
        await producer.stop()

    first = await _consume(stack.kafka_bootstrap, topic, group, 4)
    second = await _consume(stack.kafka_bootstrap, topic, group, 6)

    assert first == [f"m{i}" for i in range(4)]
    assert second == [f"m{i}" for i in range(4, 10)]

    check = AIOKafkaConsumer(bootstrap_servers=stack.kafka_bootstrap, group_id=group)
    await check.start()
    try:
        assert await check.committed(TopicPartition(topic, 0)) == 10
    finally:
        await check.stop()
