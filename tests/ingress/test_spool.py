"""Tests for the local spool: durable, ordered, bounded, crash-tolerant."""

from __future__ import annotations

import errno
import os
import struct
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from subscriber.errors import SpoolFull
from subscriber.ingress import spool as spool_module
from subscriber.ingress.publisher import Publisher
from subscriber.ingress.spool import Spool, SpoolRecord, claim_slots, frame
from subscriber.settings import Settings
from tests.support.disks import small_tmpfs
from tests.support.kafka import read_all


def _records(n: int, start: int = 0) -> list[SpoolRecord]:
    return [
        SpoolRecord("events", f"ue-{i % 3}".encode(), f"value-{i}".encode())
        for i in range(start, start + n)
    ]


def _drain(spool: Spool, chunk: int = 4) -> list[SpoolRecord]:
    out: list[SpoolRecord] = []
    while not spool.is_empty():
        batch = spool.read(chunk)
        out.extend(batch.records)
        spool.commit(batch)
    return out


def _open(path: Path, **kwargs: int) -> Spool:
    spool = Spool(path, **{"max_bytes": 1_048_576, **kwargs})
    spool.open()
    return spool


def test_record_codec_round_trips_with_and_without_key() -> None:
    """A record decodes to what was encoded, including a missing key."""
    for record in (
        SpoolRecord("t", b"k", b"v"),
        SpoolRecord("dead", None, b""),
        SpoolRecord("t", b"", b"x"),
    ):
        assert SpoolRecord.decode(record.encode()) == record


def test_records_drain_in_append_order_across_segments(tmp_path: Path) -> None:
    """Records come back in append order even when they span several segment files."""
    spool = _open(tmp_path, segment_bytes=64)
    for i in range(0, 20, 5):
        spool.append(_records(5, i))
    assert len(list(tmp_path.glob("*.seg"))) > 2
    assert spool.pending_records == 20
    assert _drain(spool, chunk=3) == _records(20)
    assert spool.is_empty()
    spool.close()


def test_drained_space_is_given_back(tmp_path: Path) -> None:
    """Once everything is drained the spool holds no bytes and one empty segment."""
    spool = _open(tmp_path, segment_bytes=64)
    spool.append(_records(10))
    _drain(spool)
    assert spool.size_bytes == 0
    assert len(list(tmp_path.glob("*.seg"))) == 1
    spool.close()


def test_cursor_survives_reopen(tmp_path: Path) -> None:
    """A reopened spool resumes after the last committed batch, not from the start."""
    spool = _open(tmp_path)
    spool.append(_records(6))
    spool.commit(spool.read(4))
    spool.close()
    again = _open(tmp_path)
    assert again.pending_records == 2
    assert _drain(again) == _records(6)[4:]
    again.close()


def test_torn_tail_is_truncated_on_open(tmp_path: Path) -> None:
    """A frame cut short by a crash is dropped on open and later appends follow the valid ones."""
    spool = _open(tmp_path)
    spool.append(_records(3))
    spool.close()
    segment = next(tmp_path.glob("*.seg"))
    with segment.open("ab") as f:
        f.write(b"\x00\x00\x01\x00garbage")
    again = _open(tmp_path)
    assert again.pending_records == 3
    again.append(_records(1, 3))
    assert _drain(again) == _records(4)
    again.close()


def test_corrupt_last_frame_is_set_aside_as_a_torn_tail(tmp_path: Path) -> None:
    """A last frame whose CRC does not match is set aside and cut off; earlier ones stay."""
    spool = _open(tmp_path)
    spool.append(_records(2))
    spool.close()
    segment = next(tmp_path.glob("*.seg"))
    data = bytearray(segment.read_bytes())
    data[-1] ^= 0xFF
    segment.write_bytes(bytes(data))
    again = _open(tmp_path)
    assert _drain(again) == _records(1)
    assert again.damaged_bytes == len(data) - len(frame(_records(1)[0].encode()))
    again.close()


def test_full_spool_refuses_and_writes_nothing(tmp_path: Path) -> None:
    """An append past max_bytes raises SpoolFull with a retry hint and changes nothing."""
    spool = _open(tmp_path, max_bytes=100, retry_after_s=7)
    spool.append(_records(2))
    before = (spool.size_bytes, spool.pending_records)
    with pytest.raises(SpoolFull) as err:
        spool.append(_records(5))
    assert err.value.retry_after_s == 7
    assert (spool.size_bytes, spool.pending_records) == before
    assert not spool.has_room()
    spool.commit(spool.read(1))
    assert spool.has_room()
    spool.close()


def test_slot_lock_is_exclusive(tmp_path: Path) -> None:
    """A second spool on a locked slot cannot open it until the first one closes."""
    first = _open(tmp_path)
    second = Spool(tmp_path, max_bytes=1000)
    assert not second.try_lock()
    first.close()
    assert second.try_lock()
    second.close()


def test_claim_slots_gives_each_process_its_own_and_adopts_orphans(tmp_path: Path) -> None:
    """Holders get distinct slots; a free slot with records is adopted, an empty one is not."""
    a, adopted_a = claim_slots(tmp_path, max_bytes=10_000)
    b, _ = claim_slots(tmp_path, max_bytes=10_000)
    c, _ = claim_slots(tmp_path, max_bytes=10_000)
    assert adopted_a == []
    assert len({a.directory, b.directory, c.directory}) == 3
    b.append(_records(2))
    b.close()
    c.close()
    a.close()
    own, adopted = claim_slots(tmp_path, max_bytes=10_000)
    assert own.directory == tmp_path / "slot-0"
    assert [s.directory for s in adopted] == [tmp_path / "slot-1"]
    assert _drain(adopted[0]) == _records(2)
    for spool in (own, *adopted):
        spool.close()


def test_append_groups_keeps_order_and_refuses_only_what_does_not_fit(tmp_path: Path) -> None:
    """Groups go in order with one fsync; a group that does not fit is refused on its own."""
    spool = _open(tmp_path, max_bytes=260, segment_bytes=64)
    outcome = spool.append_groups([_records(2), _records(9, 2), _records(1, 11)])
    assert outcome[0] is None
    assert isinstance(outcome[1], SpoolFull)
    assert outcome[2] is None
    assert _drain(spool) == [*_records(2), *_records(1, 11)]
    spool.close()


def _frames_of(records: list[SpoolRecord]) -> list[int]:
    return [len(frame(r.encode())) for r in records]


def test_a_flipped_byte_loses_only_its_own_record(tmp_path: Path) -> None:
    """300 records, one byte flipped in the 11th: the 299 others drain, the damage is kept aside."""
    records = _records(300)
    spool = _open(tmp_path)
    for record in records:
        spool.append([record])
    spool.close()
    segment = next(tmp_path.glob("*.seg"))
    data = bytearray(segment.read_bytes())
    sizes = _frames_of(records)
    data[sum(sizes[:10]) + 20] ^= 0x01
    segment.write_bytes(bytes(data))
    again = _open(tmp_path)
    assert again.pending_records == 299
    assert _drain(again, chunk=50) == records[:10] + records[11:]
    assert again.damaged_bytes == sizes[10]
    (kept,) = (tmp_path / "damaged").iterdir()
    assert kept.stat().st_size == sizes[10]
    again.close()


def test_a_damaged_length_is_not_trusted(tmp_path: Path) -> None:
    """A frame whose length field claims the rest of the file does not swallow later frames."""
    records = _records(20)
    spool = _open(tmp_path)
    spool.append(records)
    spool.close()
    segment = next(tmp_path.glob("*.seg"))
    data = bytearray(segment.read_bytes())
    start = sum(_frames_of(records)[:5])
    data[start + 4 : start + 8] = (len(data) - start - 16).to_bytes(4, "big")
    segment.write_bytes(bytes(data))
    again = _open(tmp_path)
    assert _drain(again) == records[:5] + records[6:]
    again.close()


def test_damage_found_while_draining_is_skipped(tmp_path: Path) -> None:
    """Bytes that go bad after the spool was opened are skipped at read time, not delivered."""
    records = _records(10)
    spool = _open(tmp_path)
    spool.append(records)
    segment = next(tmp_path.glob("*.seg"))
    at = sum(_frames_of(records)[:3]) + 18
    with segment.open("r+b") as f:
        f.seek(at)
        byte = f.read(1)[0]
        f.seek(at)
        f.write(bytes([byte ^ 0x40]))
    assert _drain(spool, chunk=100) == records[:3] + records[4:]
    assert spool.damaged_bytes == _frames_of(records)[3]
    spool.close()


def test_a_damaged_cursor_drains_again_rather_than_skip(tmp_path: Path) -> None:
    """A cursor failing its checksum restarts the drain at the first segment: repeats, no loss."""
    spool = _open(tmp_path)
    spool.append(_records(6))
    spool.commit(spool.read(4))
    spool.close()
    cursor = tmp_path / "cursor"
    cursor.write_text(cursor.read_text().replace(" ", " 9", 1))
    again = _open(tmp_path)
    assert _drain(again) == _records(6)
    again.close()


class _Disk:
    """Makes the spool's writes and fsyncs fail the way a full or failing disk does."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.writes_left: int | None = None
        self.short = False
        self.fsync_fails = False
        real_write, real_fsync = os.write, os.fsync

        def write(fd: int, data: bytes | memoryview) -> int:
            if self.writes_left is not None:
                if self.writes_left <= 0:
                    raise OSError(errno.ENOSPC, "No space left on device")
                self.writes_left -= 1
                if self.short:
                    return real_write(fd, bytes(data)[: max(1, len(data) // 2)])
            return real_write(fd, data)

        def fsync(fd: int) -> None:
            if self.fsync_fails:
                raise OSError(errno.EIO, "Input/output error")
            real_fsync(fd)

        monkeypatch.setattr(spool_module.os, "write", write)
        monkeypatch.setattr(spool_module.os, "fsync", fsync)


def test_a_short_write_then_enospc_is_refused_and_leaves_the_file_valid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Half a frame written, then ENOSPC: SpoolFull, the half is cut off, later appends whole."""
    disk = _Disk(monkeypatch)
    spool = _open(tmp_path)
    spool.append(_records(3))
    size = next(tmp_path.glob("*.seg")).stat().st_size
    disk.writes_left, disk.short = 1, True
    with pytest.raises(SpoolFull, match="ENOSPC"):
        spool.append(_records(2, 3))
    assert next(tmp_path.glob("*.seg")).stat().st_size == size
    assert spool.pending_records == 3
    disk.writes_left = None
    spool.append(_records(2, 5))
    spool.close()
    again = _open(tmp_path)
    assert again.damaged_bytes == 0
    assert _drain(again) == _records(3) + _records(2, 5)
    again.close()


def test_a_failed_fsync_is_refused_and_cut_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An fsync error refuses every group of the call and leaves none of their bytes behind."""
    disk = _Disk(monkeypatch)
    spool = _open(tmp_path)
    spool.append(_records(1))
    disk.fsync_fails = True
    outcome = spool.append_groups([_records(1, 1), _records(1, 2)])
    assert all(isinstance(error, SpoolFull) for error in outcome)
    disk.fsync_fails = False
    assert spool.pending_records == 1
    spool.append(_records(1, 3))
    assert _drain(spool) == [_records(1)[0], _records(1, 3)[0]]
    spool.close()


def test_after_a_refused_write_readiness_follows_the_free_space(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """has_room() is False after the disk refused a write and True once the file system has room."""
    disk = _Disk(monkeypatch)
    spool = _open(tmp_path)
    disk.writes_left = 0
    with pytest.raises(SpoolFull):
        spool.append(_records(1))
    free = [0]
    monkeypatch.setattr(
        spool_module.os,
        "statvfs",
        lambda _path: os.statvfs_result((4096, 4096, 1, 1, free[0], 1, 1, 1, 0, 255)),
    )
    assert not spool.has_room()
    free[0] = 1000
    assert spool.has_room()
    spool.close()


@given(
    count=st.integers(1, 40),
    committed=st.integers(0, 40),
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), max_size=6),
    cursor_flip=st.booleans(),
)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_damage_never_loses_an_intact_record(
    count: int,
    committed: int,
    flips: list[tuple[float, int]],
    cursor_flip: bool,
) -> None:
    """Random bytes flipped in the segments (and the cursor): recovery never fails, every record
    whose frame is intact and not yet drained comes out, in order, and nothing else does."""
    records = [
        SpoolRecord(
            "events", f"ue-{i % 4}".encode(), f'{{"n":{i},"pad":"{"x" * (i % 7)}"}}'.encode()
        )
        for i in range(count)
    ]
    # In memory where there is a tmpfs: the property is about damage, not about fsync's cost.
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as tmp:
        path = Path(tmp)
        spool = Spool(path, max_bytes=1_048_576, segment_bytes=200)
        spool.open()
        where: list[tuple[Path, int, int]] = []  # segment file, first byte, end of each frame
        for record in records:
            spool.append([record])
            segment = sorted(path.glob("*.seg"))[-1]
            end = segment.stat().st_size
            where.append((segment, end - len(frame(record.encode())), end))
        committed = min(committed, count - 1)
        if committed:
            spool.commit(spool.read(committed))
        spool.close()
        files = sorted(path.glob("*.seg"))
        total = sum(f.stat().st_size for f in files)
        damaged: set[tuple[Path, int]] = set()
        for position, mask in flips:
            at = int(position * total)
            for f in files:
                size = f.stat().st_size
                if at < size:
                    data = bytearray(f.read_bytes())
                    data[at] ^= mask
                    f.write_bytes(bytes(data))
                    damaged.add((f, at))
                    break
                at -= size
        if cursor_flip and (path / "cursor").exists():
            text = bytearray((path / "cursor").read_bytes())
            text[0] ^= 0x01
            (path / "cursor").write_bytes(bytes(text))
        again = Spool(path, max_bytes=1_048_576, segment_bytes=200)
        again.open()
        out = _drain(again, chunk=7)
        again.close()
    intact = [
        r
        for r, (f, start, end) in list(zip(records, where, strict=True))[committed:]
        if not any(df == f and start <= at < end for df, at in damaged)
    ]
    it = iter(out)
    assert all(any(r == o for o in it) for r in intact), "an intact record was lost or reordered"
    assert all(o in records for o in out), "recovery invented a record"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 96 KiB tmpfs: a real file system that runs out of space."""
    with small_tmpfs(tmp_path / "disk", "96k") as mount:
        yield mount


def test_a_full_file_system_refuses_cleanly_and_keeps_every_acknowledged_record(
    small_disk: Path,
) -> None:
    """On a real full disk: appends are refused with SpoolFull (never half-written), readiness
    drops, every acknowledged record survives a reopen undamaged, a drain gives the room back."""
    spool = Spool(small_disk / "slot", max_bytes=64 * 1_048_576, segment_bytes=16 * 1024)
    spool.open()
    acknowledged: list[SpoolRecord] = []
    refused = 0
    for i in range(2_000):
        record = SpoolRecord("events", b"ue", f'{{"n":{i},"pad":"{"x" * (i % 300)}"}}'.encode())
        try:
            spool.append([record])
        except SpoolFull:
            refused += 1
            if refused >= 20:
                break
            continue
        acknowledged.append(record)
    assert refused >= 20
    assert acknowledged
    assert not spool.has_room()
    spool.close()
    again = Spool(small_disk / "slot", max_bytes=64 * 1_048_576, segment_bytes=16 * 1024)
    again.open()
    assert again.damaged_bytes == 0
    assert again.pending_records == len(acknowledged)
    assert _drain(again, chunk=100) == acknowledged
    assert again.has_room()
    again.append(_records(3))
    assert _drain(again) == _records(3)
    again.close()


# -- the previous release's format (before the checksummed headers) --------------------------


def _legacy_payload(record: SpoolRecord) -> bytes:
    """A record as the previous release encoded it, built by hand from that layout."""
    topic = record.topic.encode()
    key = record.key or b""
    flag = 0x8000 if record.headers else 0
    out = struct.pack(">HI", len(topic) | flag, 0xFFFFFFFF if record.key is None else len(key))
    out += topic + key
    if record.headers:
        out += struct.pack(">H", len(record.headers))
        for name, value in record.headers:
            out += struct.pack(">HI", len(name), len(value)) + name.encode() + value
    return out + record.value


def _legacy_segment(records: list[SpoolRecord]) -> bytes:
    """``length | crc32(payload) | payload`` per record, as the previous release wrote them."""
    payloads = [_legacy_payload(r) for r in records]
    return b"".join(struct.pack(">II", len(p), zlib.crc32(p)) + p for p in payloads)


def _legacy_records(topic: str = "events") -> list[SpoolRecord]:
    trace = (("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),)
    return [
        SpoolRecord(topic, f"ue-{i % 3}".encode(), f'{{"n":{i}}}'.encode(), trace if i % 2 else ())
        for i in range(9)
    ] + [SpoolRecord(topic, None, b'{"dead":1}')]


def _write_legacy_spool(slot: Path, records: list[SpoolRecord]) -> int:
    """Segments 3 (drained), 4 and 5, and an old cursor 2 records into segment 4: its offset."""
    slot.mkdir(parents=True, exist_ok=True)
    (slot / "000000000003.seg").write_bytes(_legacy_segment(records[:3]))
    (slot / "000000000004.seg").write_bytes(_legacy_segment(records[3:7]))
    (slot / "000000000005.seg").write_bytes(_legacy_segment(records[7:]))
    offset = len(_legacy_segment(records[3:5]))
    (slot / "cursor").write_text(f"4 {offset}\n")
    return offset


def test_a_spool_of_the_previous_release_drains_what_it_had_not_delivered(tmp_path: Path) -> None:
    """Old-format segments are converted on open; the old cursor is honoured; nothing repeats."""
    records = _legacy_records()
    _write_legacy_spool(tmp_path, records)
    spool = _open(tmp_path)
    assert spool.pending_records == 5
    assert spool.damaged_bytes == 0
    assert all(p.read_bytes().startswith(b"\xffSp1") for p in tmp_path.glob("*.seg"))
    batch = spool.read(2)
    assert batch.records == tuple(records[5:7])
    spool.commit(batch)
    spool.close()
    again = _open(tmp_path)
    assert _drain(again) == records[7:]
    again.close()
    assert not (tmp_path / "damaged").exists()


def test_an_old_segment_with_a_torn_tail_keeps_its_whole_frames(tmp_path: Path) -> None:
    """A crash mid-write under the previous release: whole frames drain, the rest is set aside."""
    records = _legacy_records()
    tail = _legacy_segment(records[4:5])[:-3]
    (tmp_path / "000000000000.seg").write_bytes(_legacy_segment(records[:4]) + tail)
    spool = _open(tmp_path)
    assert spool.damaged_bytes == len(tail)
    spool.append(records[4:5])
    assert _drain(spool) == records[:5]
    spool.close()


def test_an_old_spool_without_a_readable_cursor_drains_everything(tmp_path: Path) -> None:
    """Duplicates rather than loss: an unreadable old cursor drains every old record."""
    records = _legacy_records()
    _write_legacy_spool(tmp_path, records)
    (tmp_path / "cursor").write_bytes(b"4 \xff\n")
    spool = _open(tmp_path)
    assert _drain(spool) == records
    spool.close()


def test_a_crash_while_converting_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash before a rename (temporary file left) or before the cursor: no loss, no repeat."""
    records = _legacy_records()
    _write_legacy_spool(tmp_path, records)
    real_replace = Path.replace

    def crash_on_segment(self: Path, target: Path) -> Path:
        if str(target).endswith("000000000005.seg"):
            raise OSError(errno.EIO, "crash")
        return real_replace(self, target)

    monkeypatch.setattr(Path, "replace", crash_on_segment)
    crashed = Spool(tmp_path, max_bytes=1_048_576)
    with pytest.raises(OSError, match="crash"):
        crashed.open()
    crashed.close()
    assert (tmp_path / "000000000005.seg.tmp").exists()
    monkeypatch.undo()

    def crash(self: Spool) -> None:
        raise OSError(errno.EIO, "crash before the cursor")

    monkeypatch.setattr(Spool, "_write_cursor", crash)
    with pytest.raises(OSError, match="cursor"):
        crashed.open()
    crashed.close()
    monkeypatch.undo()
    spool = _open(tmp_path)
    assert _drain(spool) == records[5:]
    assert spool.damaged_bytes == 0
    spool.close()


def test_a_file_of_neither_format_is_still_set_aside(tmp_path: Path) -> None:
    """Bytes that are no frame of either release go to ``damaged/``; old records beside drain."""
    records = _legacy_records()
    junk = b"\x00\x00\x00\x05not a frame of any release"
    (tmp_path / "000000000000.seg").write_bytes(_legacy_segment(records))
    (tmp_path / "000000000001.seg").write_bytes(junk)
    spool = _open(tmp_path)
    assert spool.damaged_bytes == len(junk)
    assert _drain(spool) == records
    assert [p.read_bytes() for p in (tmp_path / "damaged").iterdir()] == [junk]
    spool.close()


@pytest.mark.stack
async def test_an_upgraded_receiver_publishes_the_old_spool_to_kafka(
    stack_settings: Settings, tmp_path: Path
) -> None:
    """Through the real publisher: exactly the undelivered old records reach the topic, in order."""
    topic = stack_settings.kafka.events_topic
    records = _legacy_records(topic)
    receiver = stack_settings.receiver.model_copy(update={"spool_dir": tmp_path / "spool"})
    _write_legacy_spool(receiver.spool_dir / "slot-0", records)
    async with Publisher(kafka=stack_settings.kafka, receiver=receiver) as pub:
        await pub.wait_drained()
        assert pub.spool_records == 0
    got = await read_all(stack_settings.kafka.bootstrap_servers, topic, 5)
    assert [(r.key, r.value, tuple(r.headers)) for r in got] == [
        (r.key, r.value, r.headers) for r in records[5:]
    ]
