"""Tests for the publisher: Kafka ack or fsync'ed spool before returning, drained in order."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.errors import KafkaConnectionError

from subscriber.errors import SpoolFull
from subscriber.events import (
    Cell,
    Delivery,
    EventRecord,
    EventSource,
    LocationEvent,
    NfType,
    UeIdentity,
    decode_event,
    encode_event,
)
from subscriber.ingress.publisher import DeadLetter, Publisher
from subscriber.ingress.spool import SpoolRecord
from subscriber.settings import Settings
from tests.support.kafka import read_all
from tests.support.waiting import until

T0 = datetime(2026, 7, 1, 8, 14, 2, tzinfo=UTC)


def make_event(ue: int, seq: int) -> LocationEvent:
    """An AMF location event for UE number ``ue``, the ``seq``-th of that UE."""
    return LocationEvent(
        event_id=f"ev-{ue}-{seq}",
        ue=UeIdentity(supi=f"imsi-20893000000{ue:04d}"),
        source=EventSource(
            nf_type=NfType.AMF, delivery=Delivery.NOTIFIED, event_type="LOCATION_REPORT"
        ),
        location=Cell(rat="NR", plmn="20893", tac="000001", cell_id=f"{seq:09x}"),
        event_time=T0,
        event_time_field="ueLocationTimestamp",
        ingest_time=T0,
    )


def records_of(events: list[LocationEvent]) -> list[EventRecord]:
    """What a producer publishes for these events."""
    return [EventRecord(e.event_id, e.partition_key(), encode_event(e)) for e in events]


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def _offline(settings: Settings, tmp_path: Path, spool_max_bytes: int = 1_048_576) -> Settings:
    return settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(
                update={"bootstrap_servers": _closed_port(), "publish_timeout_ms": 500}
            ),
            "receiver": settings.receiver.model_copy(
                update={"spool_dir": tmp_path / "spool", "spool_max_bytes": spool_max_bytes}
            ),
        }
    )


@pytest.mark.stack
async def test_published_events_are_on_the_topic_keyed_by_ue(stack_settings: Settings) -> None:
    """Every published event is on the events topic, keyed by its UE, in publish order."""
    events = [make_event(ue, seq) for seq in range(3) for ue in range(2)]
    async with Publisher(kafka=stack_settings.kafka, receiver=stack_settings.receiver) as pub:
        await pub.publish(records_of(events[:3]))
        await pub.publish(records_of(events[3:]))
        assert pub.kafka_connected
        assert pub.spool_records == 0
    records = await read_all(
        stack_settings.kafka.bootstrap_servers, stack_settings.kafka.events_topic, len(events)
    )
    assert [decode_event(r.value) for r in records] == events
    assert [r.key for r in records] == [e.partition_key() for e in events]


@pytest.mark.stack
async def test_dead_letter_carries_reason_and_capped_body(stack_settings: Settings) -> None:
    """A dead letter lands on the dead-letter topic with its reason and a body cut to the cap."""
    receiver = stack_settings.receiver.model_copy(update={"dead_letter_max_bytes": 10})
    letter = DeadLetter(
        reason="invalid_body",
        detail="bad",
        kind="amf",
        path="/callbacks/amf/k",
        content_type="application/json",
        received_at=T0,
        body=b'{"reportList": "not a list"}',
        body_bytes=28,
    )
    async with Publisher(kafka=stack_settings.kafka, receiver=receiver) as pub:
        await pub.publish_dead_letter(letter)
    (record,) = await read_all(
        stack_settings.kafka.bootstrap_servers, stack_settings.kafka.dead_letter_topic, 1
    )
    doc = orjson.loads(record.value)
    assert doc["reason"] == "invalid_body"
    assert doc["body"] == '{"reportLi'
    assert doc["truncated"] is True
    assert doc["body_bytes"] == 28


async def test_unreachable_kafka_spools_and_stays_ready(tmp_path: Path) -> None:
    """With no broker, publish returns once the events are fsync'ed to the spool."""
    settings = _offline(Settings(), tmp_path)
    async with Publisher(kafka=settings.kafka, receiver=settings.receiver) as pub:
        assert not pub.kafka_connected
        await pub.publish(records_of([make_event(1, 0), make_event(1, 1)]))
        assert pub.spool_records == 2
        assert pub.is_ready()
    async with Publisher(kafka=settings.kafka, receiver=settings.receiver) as pub:
        assert pub.spool_records == 2


async def test_full_spool_raises_spool_full(tmp_path: Path) -> None:
    """With no broker and no room left, publish raises SpoolFull and readiness drops."""
    settings = _offline(Settings(), tmp_path, spool_max_bytes=600)
    async with Publisher(kafka=settings.kafka, receiver=settings.receiver) as pub:
        await pub.publish(records_of([make_event(1, 0)]))
        with pytest.raises(SpoolFull):
            await pub.publish(records_of([make_event(1, seq) for seq in range(1, 4)]))
        assert not pub.is_ready()


@pytest.mark.stack
async def test_spooled_events_drain_in_order_when_kafka_is_back(
    stack_settings: Settings, tmp_path: Path
) -> None:
    """Events spooled while the broker was unreachable reach the topic first, in order."""
    offline = _offline(stack_settings, tmp_path)
    spooled = [make_event(ue, seq) for seq in range(3) for ue in range(2)]
    async with Publisher(kafka=offline.kafka, receiver=offline.receiver) as pub:
        await pub.publish(records_of(spooled))
    online = stack_settings.model_copy(update={"receiver": offline.receiver})
    later = [make_event(ue, seq) for seq in range(3, 5) for ue in range(2)]
    async with Publisher(kafka=online.kafka, receiver=online.receiver) as pub:
        await pub.publish(records_of(later))
        await pub.wait_drained()
        assert pub.spool_records == 0
    records = await read_all(
        stack_settings.kafka.bootstrap_servers, stack_settings.kafka.events_topic, 10
    )
    assert [decode_event(r.value) for r in records] == spooled + later


async def test_dead_letters_never_take_the_room_of_events(tmp_path: Path) -> None:
    """With Kafka away, 80 dead letters of 65 kB (made-up keys) use only their own budget:
    the events still fit, and the dead letters past the budget are dropped and counted."""
    settings = _offline(Settings(), tmp_path, spool_max_bytes=200_000)
    receiver = settings.receiver.model_copy(update={"dead_letter_spool_max_bytes": 300_000})
    body = b"x" * 65_000
    async with Publisher(kafka=settings.kafka, receiver=receiver) as pub:
        for n in range(80):
            letter = DeadLetter(
                reason="unknown_subscription",
                detail="no such key",
                kind="amf",
                path=f"/callbacks/amf/guess-{n}",
                content_type="application/json",
                received_at=T0,
                body=body,
                body_bytes=len(body),
            )
            await pub.publish_dead_letter(letter)
        assert pub.dead_letters_dropped >= 75
        await pub.publish(records_of([make_event(1, seq) for seq in range(50)]))
        assert pub.is_ready()
    assert sum(f.stat().st_size for f in (tmp_path / "spool").rglob("*.seg")) < 520_000


class _FirstFlushFails(Publisher):
    """The real publisher, but its first flush fails once the test says so, as a broker that
    stops answering fails a flush; every later flush reaches the real broker."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.release = asyncio.Event()
        self.failed_producer: Any = None
        self.sent_after_failure = 0

    async def _send_all(self, producer: Any, records: Sequence[SpoolRecord]) -> None:
        if self.failed_producer is None:
            self.failed_producer = producer
            await self.release.wait()
            raise KafkaConnectionError("the broker did not answer this flush")
        if producer is self.failed_producer:
            self.sent_after_failure += len(records)
        await super()._send_all(producer, records)


@pytest.mark.stack
async def test_a_failed_flush_is_never_overtaken_by_the_next(
    stack_settings: Settings, tmp_path: Path
) -> None:
    """A flush fails while the UE's next event waits for the next flush: nothing more goes
    through the producer that failed (its late delivery could overtake the spooled events), both
    are answered, and the topic holds the first copies in publish order."""
    settings = stack_settings.model_copy(
        update={"receiver": stack_settings.receiver.model_copy(update={"spool_dir": tmp_path})}
    )
    first, second, third = (make_event(1, seq) for seq in range(3))
    async with _FirstFlushFails(kafka=settings.kafka, receiver=settings.receiver) as pub:
        failing = asyncio.create_task(pub.publish(records_of([first])))
        await until(lambda: pub.failed_producer is not None)
        waiting = asyncio.create_task(pub.publish(records_of([second])))
        await asyncio.sleep(0.05)  # queued behind the failing flush
        pub.release.set()
        await asyncio.gather(failing, waiting)
        await pub.publish(records_of([third]))
        await pub.wait_drained()
    assert pub.sent_after_failure == 0
    records = await read_all(settings.kafka.bootstrap_servers, settings.kafka.events_topic, 3)
    seen: list[LocationEvent] = []
    for record in records:  # consumers keep the first copy of an event id
        event = decode_event(record.value)
        if event not in seen:
            seen.append(event)
    assert seen == [first, second, third]


@pytest.mark.stack
@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
async def test_every_compression_setting_publishes_and_reads_back(
    stack_settings: Settings, codec: str
) -> None:
    """Each codec ``kafka.compression`` accepts works against the real broker, and the records
    read back intact (without cramjam, snappy, lz4 and zstd failed at the first publish)."""
    kafka = stack_settings.kafka.model_copy(update={"compression": codec})
    events = [make_event(ue, 0) for ue in range(3)]
    async with Publisher(kafka=kafka, receiver=stack_settings.receiver) as pub:
        await pub.publish(records_of(events))
        assert pub.spool_records == 0
    records = await read_all(kafka.bootstrap_servers, kafka.events_topic, len(events))
    assert [decode_event(r.value) for r in records] == events
