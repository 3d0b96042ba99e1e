"""Tests for the local spool: durable, ordered, bounded, crash-tolerant."""

from __future__ import annotations

from pathlib import Path

import pytest

from subscriber.errors import SpoolFull
from subscriber.ingress.spool import Spool, SpoolRecord, claim_slots


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


def test_corrupt_frame_stops_the_scan(tmp_path: Path) -> None:
    """A frame whose CRC does not match is treated as the end of the valid data."""
    spool = _open(tmp_path)
    spool.append(_records(2))
    spool.close()
    segment = next(tmp_path.glob("*.seg"))
    data = bytearray(segment.read_bytes())
    data[-1] ^= 0xFF
    segment.write_bytes(bytes(data))
    again = _open(tmp_path)
    assert _drain(again) == _records(1)
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
