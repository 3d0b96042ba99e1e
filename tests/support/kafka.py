"""Small real-Kafka helpers: topics, producing, reading back, committed offsets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from subscriber.events import LocationEvent, decode_event, encode_event
from subscriber.settings import KafkaSettings


async def create_topic(
    bootstrap: str, topic: str, partitions: int = 1, configs: dict[str, str] | None = None
) -> None:
    """Create ``topic`` with ``partitions`` partitions (and topic ``configs``, if any)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1, topic_configs=configs or {})])
    finally:
        await admin.close()


async def alter_topic(bootstrap: str, topic: str, configs: dict[str, str]) -> None:
    """Change topic configs of a running topic (the broker applies them at once)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs)])
    finally:
        await admin.close()


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    """Send ``(key, value)`` records in order with an idempotent producer."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def produce_events(
    bootstrap: str,
    topic: str,
    events: Sequence[LocationEvent],
    timestamps_ms: Sequence[int] | None = None,
) -> None:
    """Send events keyed by UE, in order, as the publisher does; optionally with record times."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        times = timestamps_ms if timestamps_ms is not None else [None] * len(events)
        for event, ts in zip(events, times, strict=True):
            await producer.send(
                topic, encode_event(event), key=event.partition_key(), timestamp_ms=ts
            )
        await producer.flush()
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def _from_beginning(
    bootstrap: str, topic: str
) -> AsyncIterator[tuple[AIOKafkaConsumer, list[TopicPartition]]]:
    """A consumer assigned every partition of ``topic``, at the beginning.

    The topic may not exist yet: the process under test creates it with its first record (the
    broker auto-creates it), maybe after the test started reading. Wait for it, bounded.
    """
    partitions = await partitions_of(bootstrap, topic)
    for _ in range(120):
        if partitions:
            break
        await asyncio.sleep(0.5)
        partitions = await partitions_of(bootstrap, topic)
    else:
        raise AssertionError(f"topic {topic} has no partitions after 60 s")
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        yield consumer, tps
    finally:
        await consumer.stop()


async def read_all(bootstrap: str, topic: str, count: int, timeout_s: float = 60) -> list[Any]:
    """At least ``count`` records of ``topic`` from the beginning (all partitions)."""
    async with _from_beginning(bootstrap, topic) as (consumer, _):
        got: list[Any] = []
        async with asyncio.timeout(timeout_s):
            while len(got) < count:
                batch = await consumer.getmany(timeout_ms=500)
                for msgs in batch.values():
                    got += msgs
        return got


async def partitions_of(bootstrap: str, topic: str) -> list[int]:
    """The partition numbers of ``topic``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (meta,) = await admin.describe_topics([topic])
        return sorted(p["partition"] for p in meta.get("partitions") or [])
    finally:
        await admin.close()


async def committed(bootstrap: str, group: str, topic: str) -> int:
    """The sum of the group's committed offsets over the topic's partitions."""
    partitions = await partitions_of(bootstrap, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        total = 0
        for p in partitions:
            total += await consumer.committed(TopicPartition(topic, p)) or 0
        return total
    finally:
        await consumer.stop()


async def read_to_end(bootstrap: str, topic: str) -> list[Any]:
    """Every record of ``topic`` (all partitions), up to its end offsets as of now."""
    async with _from_beginning(bootstrap, topic) as (consumer, tps):
        end = await consumer.end_offsets(tps)
        got: list[Any] = []
        while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
            for msgs in (await consumer.getmany(timeout_ms=500)).values():
                got += msgs
        return got


async def cells_by_ue(
    kafka: KafkaSettings, expected: int, timeout_s: float
) -> dict[bytes, list[int]]:
    """The first copy of each of ``expected`` events, as cell sequence numbers per UE key.

    Delivery is at least once: a redelivered event (same ``event_id``) is counted once, where it
    first appeared; the cell id is read as the hex sequence number the test put in it.
    """
    consumer = AIOKafkaConsumer(
        kafka.events_topic,
        bootstrap_servers=kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    seen: set[str] = set()
    order: dict[bytes, list[int]] = {}
    await consumer.start()
    try:
        async with asyncio.timeout(timeout_s):
            while len(seen) < expected:
                for batch in (await consumer.getmany(timeout_ms=1000, max_records=5000)).values():
                    for record in batch:
                        event = decode_event(record.value)
                        if event.event_id in seen:
                            continue
                        seen.add(event.event_id)
                        assert event.location is not None
                        assert event.location.cell_id is not None
                        order.setdefault(record.key or b"", []).append(
                            int(event.location.cell_id, 16)
                        )
    finally:
        await consumer.stop()
    return order
