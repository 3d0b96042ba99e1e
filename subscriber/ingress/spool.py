"""The local spool: where accepted records wait, durably, while Kafka is unreachable.

A spool is a directory of append-only segment files. Each record is framed as
``length (4 bytes) | crc32 (4 bytes) | payload`` and :meth:`Spool.append` returns only after
``fsync``, so a record it accepted survives a crash. A ``cursor`` file (replaced atomically)
remembers how far the drain has gone; drained segments are deleted. On open, a torn tail (a
frame cut short or failing its CRC, left by a crash mid-write) is truncated: its writer never
got an answer, so nothing acknowledged is lost.

Several processes (granian workers) each claim their own slot directory under one base
directory with an exclusive ``flock``; a slot left behind by a worker that no longer exists can
be adopted and drained by another (see :func:`claim_slots`).

The class is synchronous and not thread-safe: the publisher calls it from one thread at a time.
"""

from __future__ import annotations

import fcntl
import os
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import structlog

from subscriber.errors import SpoolFull

log = structlog.get_logger()

_FRAME = struct.Struct(">II")  # payload length, crc32(payload)
_HEAD = struct.Struct(">HI")  # topic length (| _HAS_HEADERS), key length (_NO_KEY: no key)
_NO_KEY = 0xFFFFFFFF
# Kafka topic names have at most 249 characters, so the top bit of the topic length is free:
# set, a header block follows the key. Records written before headers existed still decode.
_HAS_HEADERS = 0x8000
_COUNT = struct.Struct(">H")
_HEADER = struct.Struct(">HI")  # name length, value length
_SEGMENT_SUFFIX = ".seg"
_MAX_SLOTS = 64


@dataclass(frozen=True)
class SpoolRecord:
    """One Kafka record waiting in the spool."""

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()
    """Kafka record headers (the trace context, see :mod:`subscriber.tracing`)."""

    def encode(self) -> bytes:
        """The record as the payload of one frame."""
        topic = self.topic.encode()
        key = self.key or b""
        flag = _HAS_HEADERS if self.headers else 0
        head = _HEAD.pack(len(topic) | flag, _NO_KEY if self.key is None else len(key))
        if not self.headers:
            return head + topic + key + self.value
        block = [_COUNT.pack(len(self.headers))]
        for name, value in self.headers:
            raw = name.encode()
            block += [_HEADER.pack(len(raw), len(value)), raw, value]
        return head + topic + key + b"".join(block) + self.value

    @classmethod
    def decode(cls, payload: bytes) -> SpoolRecord:
        """Parse a frame payload written by :meth:`encode`."""
        topic_len, key_len = _HEAD.unpack_from(payload)
        pos = _HEAD.size
        has_headers = bool(topic_len & _HAS_HEADERS)
        topic_len &= ~_HAS_HEADERS
        topic = payload[pos : pos + topic_len].decode()
        pos += topic_len
        key: bytes | None = None
        if key_len != _NO_KEY:
            key = payload[pos : pos + key_len]
            pos += key_len
        headers: list[tuple[str, bytes]] = []
        if has_headers:
            (count,) = _COUNT.unpack_from(payload, pos)
            pos += _COUNT.size
            for _ in range(count):
                name_len, value_len = _HEADER.unpack_from(payload, pos)
                pos += _HEADER.size
                name = payload[pos : pos + name_len].decode()
                pos += name_len
                headers.append((name, payload[pos : pos + value_len]))
                pos += value_len
        return cls(topic=topic, key=key, value=payload[pos:], headers=tuple(headers))


@dataclass(frozen=True)
class SpoolBatch:
    """Records read from the cursor on, and where the cursor goes once they are delivered."""

    records: tuple[SpoolRecord, ...]
    end_segment: int
    end_offset: int


def _frame(record: SpoolRecord) -> bytes:
    payload = record.encode()
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def _scan(path: Path, start: int = 0) -> tuple[int, int]:
    """Count the valid frames of a segment from ``start``; return (count, end of the last one)."""
    count = 0
    offset = start
    with path.open("rb") as f:
        f.seek(start)
        while True:
            head = f.read(_FRAME.size)
            if len(head) < _FRAME.size:
                break
            length, crc = _FRAME.unpack(head)
            payload = f.read(length)
            if len(payload) < length or zlib.crc32(payload) != crc:
                break
            count += 1
            offset += _FRAME.size + length
    return count, offset


class Spool:
    """An append-only, fsync'ed, size-bounded queue of Kafka records in one directory.

    Args:
        directory: the slot directory; created if missing.
        max_bytes: the bound on the bytes on disk; :meth:`append` raises ``SpoolFull`` past it.
        segment_bytes: a new segment file starts once the current one reaches this size.
        retry_after_s: what ``SpoolFull`` tells callers to wait before retrying.
    """

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int,
        segment_bytes: int = 16 * 1_048_576,
        retry_after_s: int = 5,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = max(1, min(segment_bytes, max_bytes))
        self.retry_after_s = retry_after_s
        self._lock_file: IO[bytes] | None = None
        self._segments: list[int] = []
        self._sizes: dict[int, int] = {}
        self._writer: IO[bytes] | None = None
        self._cursor = (0, 0)
        self._pending = 0
        self._refused = False

    # -- lifecycle -------------------------------------------------------------------------

    def try_lock(self) -> bool:
        """Take the slot's exclusive lock without waiting; False if another process holds it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        f = (self.directory / "lock").open("ab")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            return False
        self._lock_file = f
        return True

    def open(self) -> None:
        """Lock the slot (if not yet), recover the segments and the cursor."""
        if self._lock_file is None and not self.try_lock():
            raise BlockingIOError(f"spool slot {self.directory} is in use by another process")
        self._segments = sorted(
            int(p.name.removesuffix(_SEGMENT_SUFFIX))
            for p in self.directory.glob(f"*{_SEGMENT_SUFFIX}")
        )
        self._cursor = self._read_cursor()
        self._pending = 0
        for seg in list(self._segments):
            path = self._path(seg)
            if seg < self._cursor[0]:
                path.unlink()
                self._segments.remove(seg)
                continue
            start = self._cursor[1] if seg == self._cursor[0] else 0
            count, end = _scan(path, start)
            size = path.stat().st_size
            if end < size:
                log.warning("spool_torn_tail", segment=seg, valid_bytes=end, file_bytes=size)
                with path.open("r+b") as f:
                    f.truncate(end)
                    os.fsync(f.fileno())
            self._sizes[seg] = end
            self._pending += count
        if not self._segments:
            self._segments = [self._cursor[0]]
            self._sizes[self._cursor[0]] = 0
        self._open_writer()

    def close(self) -> None:
        """Close the files and release the slot's lock."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    # -- state -----------------------------------------------------------------------------

    @property
    def pending_records(self) -> int:
        """How many records wait to be drained."""
        return self._pending

    @property
    def size_bytes(self) -> int:
        """Bytes on disk, counted against ``max_bytes``."""
        return sum(self._sizes.values())

    def is_empty(self) -> bool:
        """True when nothing waits to be drained."""
        return self._pending == 0

    def has_room(self) -> bool:
        """False from a refused append until a drain frees space."""
        return not self._refused and self.size_bytes < self.max_bytes

    # -- writing ---------------------------------------------------------------------------

    def append(self, records: Sequence[SpoolRecord], *, sync: bool = True) -> None:
        """Append records and fsync; all or nothing.

        Args:
            records: what to append, in order.
            sync: fsync before returning; :meth:`append_groups` syncs once for many appends.

        Raises:
            SpoolFull: they do not fit within ``max_bytes``; nothing was written.
        """
        data = b"".join(_frame(r) for r in records)
        if self.size_bytes + len(data) > self.max_bytes:
            self._refused = True
            raise SpoolFull(
                f"spool full: {self.size_bytes} of {self.max_bytes} bytes used",
                retry_after_s=self.retry_after_s,
            )
        if self._sizes[self._segments[-1]] >= self.segment_bytes:
            self._rotate()
        writer = self._writer
        assert writer is not None, "spool is not open"
        seg = self._segments[-1]
        try:
            writer.write(data)
            if sync:
                os.fsync(writer.fileno())
        except OSError:
            # A partial write must not stay in front of later appends: cut it off again.
            writer.truncate(self._sizes[seg])
            raise
        self._sizes[seg] += len(data)
        self._pending += len(records)

    def append_groups(self, groups: Sequence[Sequence[SpoolRecord]]) -> list[SpoolFull | None]:
        """Append several callers' records with one fsync; each group is all or nothing.

        Returns:
            Per group, None when written, or the ``SpoolFull`` that refused it (nothing of it
            was written). Groups are written in order; a refused one does not stop later ones.
        """
        outcome: list[SpoolFull | None] = []
        for group in groups:
            try:
                self.append(group, sync=False)
            except SpoolFull as exc:
                outcome.append(exc)
            else:
                outcome.append(None)
        if any(result is None for result in outcome):
            self._sync()
        return outcome

    # -- draining --------------------------------------------------------------------------

    def read(self, max_records: int) -> SpoolBatch:
        """Read up to ``max_records`` from the cursor on, in append order, without consuming."""
        records: list[SpoolRecord] = []
        seg, offset = self._cursor
        while len(records) < max_records:
            end = self._sizes.get(seg, 0)
            if offset < end:
                with self._path(seg).open("rb") as f:
                    f.seek(offset)
                    while len(records) < max_records and offset < end:
                        length, _crc = _FRAME.unpack(f.read(_FRAME.size))
                        records.append(SpoolRecord.decode(f.read(length)))
                        offset += _FRAME.size + length
            if len(records) >= max_records:
                break
            later = [s for s in self._segments if s > seg]
            if not later:
                break
            seg, offset = later[0], 0
        return SpoolBatch(records=tuple(records), end_segment=seg, end_offset=offset)

    def commit(self, batch: SpoolBatch) -> None:
        """Mark a batch delivered: move the cursor past it and delete drained segments."""
        self._cursor = (batch.end_segment, batch.end_offset)
        self._pending -= len(batch.records)
        self._refused = False
        for seg in [s for s in self._segments if s < batch.end_segment]:
            self._path(seg).unlink(missing_ok=True)
            self._segments.remove(seg)
            del self._sizes[seg]
        if self._pending == 0:
            # Everything is delivered: start over in a fresh, empty segment to give the space back.
            self._rotate()
            for seg in self._segments[:-1]:
                self._path(seg).unlink(missing_ok=True)
                del self._sizes[seg]
            self._segments = self._segments[-1:]
            self._cursor = (self._segments[0], 0)
        self._write_cursor()

    def _sync(self) -> None:
        if self._writer is not None:
            os.fsync(self._writer.fileno())

    # -- files -----------------------------------------------------------------------------

    def _path(self, seg: int) -> Path:
        return self.directory / f"{seg:012d}{_SEGMENT_SUFFIX}"

    def _open_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._writer = self._path(self._segments[-1]).open("ab", buffering=0)

    def _rotate(self) -> None:
        self._sync()  # appends with sync=False may still sit in the segment being closed
        seg = self._segments[-1] + 1
        self._segments.append(seg)
        self._sizes[seg] = 0
        self._open_writer()
        self._fsync_dir()

    def _read_cursor(self) -> tuple[int, int]:
        try:
            seg, offset = (self.directory / "cursor").read_text().split()
            return int(seg), int(offset)
        except (FileNotFoundError, ValueError):
            first = min(
                (int(p.name.removesuffix(_SEGMENT_SUFFIX)) for p in self.directory.glob("*.seg")),
                default=0,
            )
            return first, 0

    def _write_cursor(self) -> None:
        tmp = self.directory / "cursor.tmp"
        with tmp.open("w") as f:
            f.write(f"{self._cursor[0]} {self._cursor[1]}\n")
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.directory / "cursor")
        self._fsync_dir()

    def _fsync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def claim_slots(
    base_dir: Path, *, max_bytes: int, retry_after_s: int = 5
) -> tuple[Spool, list[Spool]]:
    """Claim a free slot under ``base_dir`` for this process, and adopt orphaned non-empty ones.

    Each process writes only to its own slot. A slot nobody holds that still has records (left
    by a worker that is gone, e.g. after the worker count went down) is adopted so it drains;
    adopted slots must drain before the own slot, as they hold older records.

    Returns:
        The own slot and the adopted ones, all open and locked.
    """
    own: Spool | None = None
    adopted: list[Spool] = []
    for i in range(_MAX_SLOTS):
        spool = Spool(base_dir / f"slot-{i}", max_bytes=max_bytes, retry_after_s=retry_after_s)
        exists = spool.directory.exists()
        if own is not None and not exists:
            break
        if not spool.try_lock():
            continue
        spool.open()
        if own is None:
            own = spool
        elif spool.is_empty():
            spool.close()
        else:
            adopted.append(spool)
    if own is None:
        raise BlockingIOError(f"all {_MAX_SLOTS} spool slots under {base_dir} are in use")
    return own, adopted
