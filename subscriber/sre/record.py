"""Copy events from Kafka, or callbacks from the receiver's capture files, into a recording.

From Kafka (``subscriber record --output F``): every partition of the events topic, from a start
(the beginning, an offset, or the first record at or after ``--since``) to the end offsets taken
when the command starts, like arq's burst mode: records produced meanwhile are not waited for.
``--until`` stops each partition at its first record after that time; ``--ue`` and ``--cell``
keep only matching events. Each item's ``t`` is the Kafka record timestamp; items keep their
partition order, so each UE's events stay in order.

From capture files (``subscriber record --from-capture DIR_OR_FILE``): the receiver's raw
callbacks, sorted by receive time, into a callbacks recording that ``replay`` sends to a
receiver again.
"""

from __future__ import annotations

import heapq
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import structlog

from subscriber.errors import InvalidCallback, SubscriberError, UndecodableEvent
from subscriber.events import LocationEvent, decode_event
from subscriber.options import RecordOptions
from subscriber.settings import Settings
from subscriber.sre.recording import (
    Header,
    Item,
    RecordingWriter,
    open_recording,
    parse_item,
)

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events to keep: any of ``ues`` (SUPI, GPSI or key), any of ``cells``.

    A cell is given as ``CELL_ID``, ``TAC:CELL_ID`` or ``TAC:`` (a whole tracking area); an
    empty set keeps everything.
    """

    ues: frozenset[str] = frozenset()
    cells: frozenset[str] = frozenset()

    def keeps(self, event: LocationEvent) -> bool:
        """Whether ``event`` passes both filters."""
        if self.ues:
            ue = event.ue
            if not ({ue.supi, ue.gpsi, ue.session_ref, ue.key()} & self.ues):
                return False
        if self.cells:
            cell = event.location
            if cell is None:
                return False
            names = {f"{cell.tac}:"}
            if cell.cell_id is not None:
                names |= {cell.cell_id, f"{cell.tac}:{cell.cell_id}"}
            if not (names & self.cells):
                return False
        return True

    def keeps_callback(self, item: Item) -> bool:
        """Whether a raw callback is about a kept UE and cell (it is normalized to tell)."""
        if not self.ues and not self.cells:
            return True
        return any(self.keeps(e) for e in _callback_events(item))


def _callback_events(item: Item) -> Sequence[LocationEvent]:
    from subscriber.ingress.normalize import BodyKind, normalize_body

    callback = item.callback
    assert callback is not None
    kind = {
        "amf": BodyKind.AMF_NOTIFICATION,
        "smf": BodyKind.SMF_NOTIFICATION,
        "nef": BodyKind.NEF_NOTIFICATION,
    }.get(callback.path.removeprefix("/callbacks/").partition("/")[0])
    if kind is None:
        return ()
    at = callback.received_at or datetime.fromtimestamp(item.t, UTC)
    try:
        return normalize_body(kind, callback.body, ingest_time=at).events
    except InvalidCallback:
        return ()


def capture_files(paths: Iterable[Path]) -> list[Path]:
    """The capture files named, directories expanded to their ``*.jsonl.gz`` files, sorted."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(path.glob("*.jsonl.gz"))
        else:
            files.append(path)
    return files


def record_capture(
    paths: Sequence[Path],
    output: Path,
    *,
    keep: EventFilter = EventFilter(),
    since_s: float | None = None,
    until_s: float | None = None,
    created_at: datetime | None = None,
) -> Header:
    """Convert receiver capture files into one callbacks recording, in receive order."""
    items: list[Item] = []
    for path in capture_files(paths):
        with open_recording(path) as rec:
            for item in rec:
                if since_s is not None and item.t < since_s:
                    continue
                if until_s is not None and item.t > until_s:
                    continue
                if keep.keeps_callback(item):
                    items.append(item)
    items.sort(key=lambda i: i.t)  # stable: same-time callbacks keep their file order
    source = {"type": "receiver capture", "files": [str(p) for p in capture_files(paths)]}
    with RecordingWriter(output, kind="callbacks", source=source, created_at=created_at) as w:
        for item in items:
            w.write(item)
        return w.header()


Offsets = dict[Any, int]


async def _partitions(bootstrap: str, topic: str) -> list[int]:
    """The partition numbers of ``topic`` (the admin client asks the broker, not a cache).

    Raises:
        SubscriberError: the topic does not exist.
    """
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        # Ask the list first: describing a missing topic may make the broker auto-create it.
        if topic not in await admin.list_topics():
            raise SubscriberError(f"topic {topic} does not exist at {bootstrap}")
        (meta,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = sorted(p["partition"] for p in meta.get("partitions") or [])
    if meta.get("error_code") or not partitions:
        raise SubscriberError(f"topic {topic} does not exist at {bootstrap}")
    return partitions


async def _bounds(
    consumer: Any,
    tps: Sequence[Any],
    since_s: float | None,
    until_s: float | None,
    start_offset: int | None,
    end_offset: int | None,
) -> tuple[Offsets, Offsets]:
    """Where each partition starts, and the offset it stops before (end offsets taken now)."""
    begin = await consumer.beginning_offsets(tps)
    stop: Offsets = dict(await consumer.end_offsets(tps))
    if until_s is not None:
        after = await consumer.offsets_for_times({tp: int(until_s * 1000) + 1 for tp in tps})
        for tp, found in after.items():
            if found is not None:
                stop[tp] = min(stop[tp], found.offset)
    if end_offset is not None:
        stop = {tp: min(v, end_offset) for tp, v in stop.items()}
    start: Offsets = {tp: max(begin[tp], start_offset or 0) for tp in tps}
    if since_s is not None:
        at = await consumer.offsets_for_times({tp: int(since_s * 1000) for tp in tps})
        start = {tp: (at[tp].offset if at.get(tp) else stop[tp]) for tp in tps}
    return start, stop


async def _copy(
    consumer: Any, start: Offsets, stop: Offsets, writer: RecordingWriter, keep: EventFilter
) -> int:
    """Read every partition from ``start`` to ``stop`` into ``writer``; return records skipped.

    Partitions are merged by record timestamp, so a replay at x1 interleaves them as they were
    produced; the merge only ever takes the head of a partition, so each partition (and so each
    UE) keeps its order even if its timestamps go backwards. Each partition is first spilled to
    a side file next to the output, so memory stays constant whatever the topic holds.
    """
    skipped = 0
    live = []
    for tp in start:
        if start[tp] < stop[tp]:
            consumer.seek(tp, start[tp])
            live.append(tp)
        else:
            consumer.pause(tp)
    with tempfile.TemporaryDirectory(dir=writer.path.parent, prefix=".record-") as tmp:
        spills = {tp: Path(tmp) / f"{tp.partition}.jsonl" for tp in start}
        files = {tp: path.open("wb") for tp, path in spills.items()}
        try:
            while live:
                batches = await consumer.getmany(*live, timeout_ms=500, max_records=5000)
                for tp, records in batches.items():
                    for record in records:
                        if record.offset >= stop[tp]:
                            break
                        try:
                            event = decode_event(record.value or b"")
                        except UndecodableEvent:
                            skipped += 1
                            continue
                        if keep.keeps(event):
                            item = Item(record.timestamp / 1000, event.ue.key(), event=record.value)
                            files[tp].write(item.to_json() + b"\n")
                for tp in list(live):
                    if await consumer.position(tp) >= stop[tp]:
                        live.remove(tp)
                        consumer.pause(tp)
        finally:
            for f in files.values():
                f.close()
        for item in heapq.merge(*(_spilled(p) for p in spills.values()), key=lambda i: i.t):
            writer.write(item)
    return skipped


def _spilled(path: Path) -> Iterator[Item]:
    with path.open("rb") as f:
        for line in f:
            yield parse_item(line)


async def record_kafka(
    bootstrap: str,
    topic: str,
    output: Path,
    *,
    keep: EventFilter = EventFilter(),
    since_s: float | None = None,
    until_s: float | None = None,
    start_offset: int | None = None,
    end_offset: int | None = None,
    created_at: datetime | None = None,
) -> Header:
    """Copy ``topic`` into a recording, up to the end offsets seen at start.

    Args:
        bootstrap: Kafka bootstrap servers.
        topic: the events topic.
        output: the recording to write.
        keep: UE and cell filters.
        since_s: start each partition at its first record at or after this time.
        until_s: stop each partition at its first record after this time.
        start_offset: start each partition at this offset (ignored with ``since_s``).
        end_offset: stop each partition before this offset.
        created_at: stamped in the header.

    Raises:
        SubscriberError: Kafka cannot be reached or the topic does not exist.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.errors import KafkaError

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None
    )
    try:
        await consumer.start()
    except KafkaError as exc:
        raise SubscriberError(f"Kafka at {bootstrap} cannot be reached: {exc}") from exc
    source = {"type": "kafka", "topic": topic, "bootstrap": bootstrap}
    try:
        partitions = await _partitions(bootstrap, topic)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        start, stop = await _bounds(consumer, tps, since_s, until_s, start_offset, end_offset)
        with RecordingWriter(output, kind="events", source=source, created_at=created_at) as w:
            skipped = await _copy(consumer, start, stop, w, keep)
            header = w.header()
    except KafkaError as exc:
        raise SubscriberError(f"reading {topic} failed: {exc}") from exc
    finally:
        await consumer.stop()
    if skipped:
        log.warning("record.undecodable_skipped", count=skipped, topic=topic)
    return header


def _time_s(text: str | None) -> float | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _offsets(text: str | None) -> tuple[int | None, int | None]:
    if not text:
        return None, None
    first, _, last = text.partition(":")
    return (int(first) if first else None, int(last) if last else None)


async def run(settings: Settings, options: RecordOptions) -> int:
    """``subscriber record``."""
    keep = EventFilter(ues=frozenset(options.ue or ()), cells=frozenset(options.cell or ()))
    since_s, until_s = _time_s(options.since), _time_s(options.until)
    started = time.monotonic()
    now = datetime.now(UTC)
    if options.from_capture:
        header = record_capture(
            options.from_capture,
            options.output,
            keep=keep,
            since_s=since_s,
            until_s=until_s,
            created_at=now,
        )
    else:
        start_offset, end_offset = _offsets(options.offsets)
        header = await record_kafka(
            settings.kafka.bootstrap_servers,
            options.topic or settings.kafka.events_topic,
            options.output,
            keep=keep,
            since_s=since_s,
            until_s=until_s,
            start_offset=start_offset,
            end_offset=end_offset,
            created_at=now,
        )
    span = (
        f"{header.start.isoformat()} to {header.end.isoformat()}"
        if header.start and header.end
        else "empty"
    )
    print(
        f"recorded {header.count} {header.kind} into {options.output} ({span}) "
        f"in {time.monotonic() - started:.2f} s"
    )
    print(orjson.dumps({"source": header.source}).decode())
    return 0
