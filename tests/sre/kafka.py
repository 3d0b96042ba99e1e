"""Small real-Kafka helpers for the SRE tests."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from subscriber.events import LocationEvent, encode_event


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    """Create ``topic`` with ``partitions`` partitions."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


async def produce_events(
    bootstrap: str, topic: str, events: Sequence[LocationEvent], timestamps_ms: Sequence[int]
) -> None:
    """Send events keyed by UE, in order, each with its record timestamp."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for event, ts in zip(events, timestamps_ms, strict=True):
            await producer.send(
                topic, encode_event(event), key=event.partition_key(), timestamp_ms=ts
            )
        await producer.flush()
    finally:
        await producer.stop()


async def read_all(bootstrap: str, topic: str, count: int, timeout_s: float = 60) -> list[Any]:
    """The first ``count`` records of every partition of ``topic``, partition by partition."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (meta,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        async with asyncio.timeout(timeout_s):
            tps = [TopicPartition(topic, p["partition"]) for p in meta["partitions"]]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            got: list[Any] = []
            while len(got) < count:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    got += records
        return got
    finally:
        await consumer.stop()
