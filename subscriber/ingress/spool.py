"""The local spool: where accepted records wait, durably, while Kafka is unreachable.

A spool is a directory of append-only segment files. Each record is one frame::

    magic (4) | payload length (4) | crc32(payload) (4) | crc32(the 12 bytes before) (4) | payload

:meth:`Spool.append_groups` writes whole frames only and returns only after ``fsync``; a short
write, ``ENOSPC`` or a failed ``fsync`` cuts the file back to where it was and raises
:class:`~subscriber.errors.SpoolFull`, so what a caller was told is stored is exactly what the
file holds. A ``cursor`` file (checksummed, replaced atomically) remembers how far the drain has
gone; drained segments are deleted.

**Damage.** The header carries its own checksum, so a damaged length is never trusted. A frame
that fails a check is skipped by searching for the next valid header (the magic, then both
checksums): every intact record after the damage is kept, and the damaged bytes are copied to
``damaged/`` beside the segments, counted (:attr:`Spool.damaged_bytes`) and logged without their
content. Bytes after the last valid frame of a segment (a crash mid-write, whose writer never got
an answer) are set aside the same way and cut off. Payloads are our own encoding: topic and key
bytes, orjson values (UTF-8, so never the byte ``0xff`` that starts the magic) and ASCII trace
headers; a body an attacker controls never contains a frame that could be mistaken for ours.

**Upgrade.** The previous release framed records as ``length | crc32(payload) | payload`` with
an unchecksummed ``seg offset`` cursor. On open, a segment in that format (valid frames from
offset 0) is rewritten in this one (new file, fsync, rename, fsync of the directory) before
recovery, dropping what the old cursor says was drained; bytes after its last valid frame are set
aside as a torn tail. Without a readable old cursor, everything drains again: repeats, no loss.

Several processes (granian workers) each claim their own slot directory under one base
directory with an exclusive ``flock``; a slot left behind by a worker that no longer exists can
be adopted and drained by another (see :func:`claim_slots`).

The class is synchronous and not thread-safe: the publisher calls it from one thread at a time.
"""

from __future__ import annotations

import errno
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

_MAGIC = b"\xffSp1"
_LEGACY_FRAME = struct.Struct(">II")  # the previous release's frame: length, crc32(payload)
_FRAME = struct.Struct(">4sIII")  # magic, payload length, crc32(payload), crc32(header[:12])
_HEAD = struct.Struct(">HI")  # topic length (| _HAS_HEADERS), key length (_NO_KEY: no key)
_NO_KEY = 0xFFFFFFFF
# Kafka topic names have at most 249 characters, so the top bit of the topic length is free:
# set, a header block follows the key.
_HAS_HEADERS = 0x8000
_COUNT = struct.Struct(">H")
_HEADER = struct.Struct(">HI")  # name length, value length
_SEGMENT_SUFFIX = ".seg"
_DAMAGED_DIR = "damaged"
_MAX_SLOTS = 64
# After the disk refused a write, readiness comes back once this much is free again.
_DISK_MARGIN_BYTES = 64 * 1024


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


def frame(payload: bytes) -> bytes:
    """One frame around ``payload``."""
    head = _MAGIC + struct.pack(">II", len(payload), zlib.crc32(payload))
    return head + struct.pack(">I", zlib.crc32(head)) + payload


def _frame_end(data: bytes | memoryview, pos: int) -> int | None:
    """Where the frame starting at ``pos`` ends, or None if no valid frame starts there."""
    if len(data) - pos < _FRAME.size:
        return None
    magic: bytes
    length: int
    magic, length, payload_crc, head_crc = _FRAME.unpack_from(data, pos)
    if magic != _MAGIC or zlib.crc32(data[pos : pos + 12]) != head_crc:
        return None
    end = pos + _FRAME.size + length
    if end > len(data) or zlib.crc32(data[pos + _FRAME.size : end]) != payload_crc:
        return None
    return end


@dataclass(frozen=True)
class _Scan:
    """What one segment holds from some offset on."""

    frames: int
    damaged: tuple[tuple[int, int], ...]
    """Byte ranges between valid frames that are no frame."""
    end: int
    """Where the last valid frame ends; anything after it is a torn or damaged tail."""


def _scan(data: bytes, start: int) -> _Scan:
    """Walk the frames of ``data`` from ``start``, resynchronising past damage."""
    frames = 0
    damaged: list[tuple[int, int]] = []
    pos = end = start
    while pos < len(data):
        frame_end = _frame_end(data, pos)
        if frame_end is not None:
            frames += 1
            pos = end = frame_end
            continue
        found = data.find(_MAGIC, pos + 1)
        while found != -1 and _frame_end(data, found) is None:
            found = data.find(_MAGIC, found + 1)
        if found == -1:
            break
        damaged.append((pos, found))
        pos = found
    return _Scan(frames, tuple(damaged), end)


def _legacy_frames(data: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """The previous release's frames from offset 0, as (offset, payload), and where they end.

    Like that release's recovery, the first frame cut short or failing its CRC ends the segment.
    """
    frames: list[tuple[int, bytes]] = []
    pos = 0
    while len(data) - pos >= _LEGACY_FRAME.size:
        length, crc = _LEGACY_FRAME.unpack_from(data, pos)
        payload = data[pos + _LEGACY_FRAME.size : pos + _LEGACY_FRAME.size + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            break
        frames.append((pos, payload))
        pos += _LEGACY_FRAME.size + length
    return frames, pos


def _write_durably(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` via a fsync'ed temporary file; the caller fsyncs the dir."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def _errno_name(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, type(exc).__name__)


class _Damaged(Exception):
    """A frame failed its checks while being read."""


def _read_frame(f: IO[bytes], available: int) -> bytes:
    """The payload of the frame at the file's position, checked; raises ``_Damaged``."""
    head = f.read(_FRAME.size)
    if len(head) < _FRAME.size:
        raise _Damaged
    magic, length, payload_crc, head_crc = _FRAME.unpack(head)
    if magic != _MAGIC or zlib.crc32(head[:12]) != head_crc or length > available - _FRAME.size:
        raise _Damaged
    payload = f.read(length)
    if len(payload) < length or zlib.crc32(payload) != payload_crc:
        raise _Damaged
    return payload


def _write_all(fd: int, data: bytes) -> None:
    """Write every byte or raise: ``os.write`` may write only part of it (a full disk)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


class Spool:
    """An append-only, fsync'ed, size-bounded queue of Kafka records in one directory.

    Args:
        directory: the slot directory; created if missing.
        max_bytes: the bound on the bytes on disk; an append past it raises ``SpoolFull``.
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
        self.damaged_bytes = 0
        """Bytes found damaged (set aside in ``damaged/``) since this spool was opened."""
        self._lock_file: IO[bytes] | None = None
        self._segments: list[int] = []
        self._sizes: dict[int, int] = {}
        self._skips: dict[int, dict[int, int]] = {}
        self._fd: int | None = None
        self._cursor = (0, 0)
        self._pending = 0
        self._refused = False
        self._disk_refused = False
        self._torn = False
        self._seen_damage: set[tuple[int, int]] = set()

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
        self._upgrade()
        self._cursor = self._read_cursor()
        for seg in [s for s in self._segments if s < self._cursor[0]]:
            self._path(seg).unlink()
            self._segments.remove(seg)
        if not self._segments or self._segments[-1] < self._cursor[0]:
            self._segments.append(self._cursor[0])
            self._path(self._cursor[0]).touch()
        self._recover()
        self._open_writer()

    def _upgrade(self) -> None:
        """Rewrite the previous release's segments in this format; see the module's docstring.

        Crash-safe at every step: drained segments go first, each rewrite replaces its segment
        atomically, and the old cursor is replaced last, pointing at the start of its segment,
        which from its rewrite on holds only undelivered records.
        """
        old_cursor: tuple[int, int] | None = None
        try:
            fields = (self.directory / "cursor").read_text().split()
            if len(fields) == 2:
                old_cursor = int(fields[0]), int(fields[1])
        except (FileNotFoundError, ValueError, UnicodeDecodeError):
            pass
        for seg in list(self._segments):
            path = self._path(seg)
            data = path.read_bytes()
            if not data or data.startswith(_MAGIC):
                continue
            frames, end = _legacy_frames(data)
            if not frames:
                continue  # neither format: recovery sets it aside as damage
            drained_to = 0
            if old_cursor is not None and seg <= old_cursor[0]:
                drained_to = old_cursor[1] if seg == old_cursor[0] else len(data)
            if drained_to >= len(data):
                path.unlink()
                self._segments.remove(seg)
                continue
            if end < len(data):
                self._set_aside(seg, end, data[end:], "torn_tail")
            _write_durably(path, b"".join(frame(p) for at, p in frames if at >= drained_to))
            self._fsync_dir()
            log.info("spool_segment_upgraded", segment=seg, bytes=len(data))
        if old_cursor is not None:
            self._cursor = (old_cursor[0], 0)
            self._write_cursor()

    def _recover(self) -> None:
        """Count what waits from the cursor on; set damaged bytes aside; cut torn tails."""
        self._pending = 0
        self._skips = {}
        for seg in self._segments:
            start = self._cursor[1] if seg == self._cursor[0] else 0
            path = self._path(seg)
            data = path.read_bytes()
            scan = _scan(data, min(start, len(data)))
            for begin, end in scan.damaged:
                self._set_aside(seg, begin, data[begin:end], "damaged")
            self._skips[seg] = dict(scan.damaged)
            if scan.end < len(data):
                self._set_aside(seg, scan.end, data[scan.end :], "torn_tail")
                with path.open("r+b") as f:
                    f.truncate(scan.end)
                    os.fsync(f.fileno())
            self._sizes[seg] = scan.end
            self._pending += scan.frames

    def close(self) -> None:
        """Close the files and release the slot's lock."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
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
        """False from a refused append until a drain frees space (or the disk has room again)."""
        if self._disk_refused:
            usage = os.statvfs(self.directory)
            if usage.f_bavail * usage.f_frsize < _DISK_MARGIN_BYTES:
                return False
            self._disk_refused = False
        return not self._refused and self.size_bytes < self.max_bytes

    # -- writing ---------------------------------------------------------------------------

    def append(self, records: Sequence[SpoolRecord]) -> None:
        """Append records and fsync; all or nothing.

        Raises:
            SpoolFull: they do not fit within ``max_bytes``, or the disk refused them (full,
                short write, failed fsync); nothing of them is in the file.
        """
        (error,) = self.append_groups([records])
        if error is not None:
            raise error

    def append_groups(self, groups: Sequence[Sequence[SpoolRecord]]) -> list[SpoolFull | None]:
        """Append several callers' records with one fsync; each group is all or nothing.

        Returns:
            Per group, None when written and fsync'ed, or the ``SpoolFull`` that refused it
            (nothing of it is in the file). A group refused for the size bound does not stop
            later ones; when the disk fails, every group of the call is refused.
        """
        assert self._fd is not None, "spool is not open"
        seg = self._segments[-1]
        start = self._sizes[seg]
        try:
            if self._torn:
                self._cut(seg, start)
            if start >= self.segment_bytes:
                self._rotate()
                seg, start = self._segments[-1], 0
        except OSError as exc:
            return self._refuse(len(groups), exc)
        outcome: list[SpoolFull | None] = []
        records = 0
        for group in groups:
            data = b"".join(frame(r.encode()) for r in group)
            if self.size_bytes + len(data) > self.max_bytes:
                self._refused = True
                outcome.append(self._full(f"{self.size_bytes} of {self.max_bytes} bytes used"))
                continue
            try:
                _write_all(self._fd, data)
            except OSError as exc:
                return self._undo(seg, start, len(groups), exc)
            self._sizes[seg] += len(data)
            records += len(group)
            outcome.append(None)
        if records:
            try:
                os.fsync(self._fd)
            except OSError as exc:
                return self._undo(seg, start, len(groups), exc)
            self._pending += records
        return outcome

    def _full(self, detail: str) -> SpoolFull:
        return SpoolFull(f"spool full: {detail}", retry_after_s=self.retry_after_s)

    def _undo(self, seg: int, start: int, groups: int, exc: OSError) -> list[SpoolFull | None]:
        """Cut the segment back to ``start`` after a failed write or fsync; refuse every group.

        A write cut short (``ENOSPC``) or a failed fsync leaves bytes whose fate is unknown:
        none of them may stay in front of later appends, or be counted as stored.
        """
        self._sizes[seg] = start
        try:
            self._cut(seg, start)
        except OSError as again:
            # Tried again before the next append; until it works, every append is refused.
            log.error("spool_truncate_failed", error=_errno_name(again))
        return self._refuse(groups, exc)

    def _cut(self, seg: int, size: int) -> None:
        assert self._fd is not None
        self._torn = True
        os.ftruncate(self._fd, size)
        os.fsync(self._fd)
        self._torn = False

    def _refuse(self, groups: int, exc: OSError) -> list[SpoolFull | None]:
        self._disk_refused = True
        log.warning("spool_write_refused", error=_errno_name(exc))
        return [self._full(f"the disk refused the write ({_errno_name(exc)})")] * groups

    # -- draining --------------------------------------------------------------------------

    def read(self, max_records: int) -> SpoolBatch:
        """Read up to ``max_records`` from the cursor on, in append order, without consuming."""
        try:
            return self._read(max_records)
        except _Damaged:
            # Damaged after it was opened: recount and skip it as recovery does.
            self._recover()
            return self._read(max_records)

    def _read(self, max_records: int) -> SpoolBatch:
        records: list[SpoolRecord] = []
        seg, offset = self._cursor
        while len(records) < max_records:
            end = self._sizes.get(seg, 0)
            skips = self._skips.get(seg, {})
            if offset < end:
                with self._path(seg).open("rb") as f:
                    while len(records) < max_records:
                        offset = skips.get(offset, offset)
                        if offset >= end:
                            break
                        f.seek(offset)
                        payload = _read_frame(f, end - offset)
                        records.append(SpoolRecord.decode(payload))
                        offset += _FRAME.size + len(payload)
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
        self._pending = max(0, self._pending - len(batch.records))
        self._refused = False
        for seg in [s for s in self._segments if s < batch.end_segment]:
            self._path(seg).unlink(missing_ok=True)
            self._segments.remove(seg)
            self._sizes.pop(seg, None)
            self._skips.pop(seg, None)
        if self._pending == 0 and self._fresh_segment():
            # Everything is delivered: start over in a fresh, empty segment to give the space back.
            for seg in self._segments[:-1]:
                self._path(seg).unlink(missing_ok=True)
                self._sizes.pop(seg, None)
                self._skips.pop(seg, None)
            self._segments = self._segments[-1:]
            self._cursor = (self._segments[0], 0)
        self._write_cursor()

    # -- files -----------------------------------------------------------------------------

    def _path(self, seg: int) -> Path:
        return self.directory / f"{seg:012d}{_SEGMENT_SUFFIX}"

    def _set_aside(self, seg: int, offset: int, data: bytes, kind: str) -> None:
        """Copy damaged bytes to ``damaged/`` (once), count them and log where, not what."""
        if (seg, offset) in self._seen_damage:
            return
        self._seen_damage.add((seg, offset))
        self.damaged_bytes += len(data)
        log.warning(
            "spool_damage_set_aside", kind=kind, segment=seg, offset=offset, bytes=len(data)
        )
        target = self.directory / _DAMAGED_DIR / f"{seg:012d}-{offset:012d}.bin"
        if target.exists():
            return
        try:
            target.parent.mkdir(exist_ok=True)
            _write_durably(target, data)
        except OSError as exc:  # a full disk must not stop recovery of the intact records
            log.error("spool_damage_not_kept", error=type(exc).__name__, bytes=len(data))

    def _open_writer(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        self._fd = os.open(self._path(self._segments[-1]), flags, 0o600)

    def _fresh_segment(self) -> bool:
        try:
            self._rotate()
        except OSError as exc:  # no room for a new file: keep appending to the current one
            log.warning("spool_rotate_failed", error=_errno_name(exc))
            return False
        return True

    def _rotate(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
        seg = self._segments[-1] + 1
        self._segments.append(seg)
        self._sizes[seg] = 0
        self._open_writer()
        self._fsync_dir()

    def _read_cursor(self) -> tuple[int, int]:
        """The checksummed cursor; from the first segment when it is missing or damaged.

        Starting too early only sends records again (consumers dedupe on ``event_id``);
        trusting a damaged cursor could skip acknowledged ones.
        """
        first = min(
            (int(p.name.removesuffix(_SEGMENT_SUFFIX)) for p in self.directory.glob("*.seg")),
            default=0,
        )
        try:
            seg, offset, crc = (self.directory / "cursor").read_text().split()
            if zlib.crc32(f"{seg} {offset}".encode()) != int(crc, 16):
                raise ValueError("checksum")
            return max(int(seg), first), int(offset) if int(seg) >= first else 0
        except FileNotFoundError:
            return first, 0
        except (ValueError, UnicodeDecodeError):
            log.error("spool_cursor_damaged", action="draining from the first segment")
            return first, 0

    def _write_cursor(self) -> None:
        text = f"{self._cursor[0]} {self._cursor[1]}"
        line = f"{text} {zlib.crc32(text.encode()):08x}\n"
        try:
            _write_durably(self.directory / "cursor", line.encode())
            self._fsync_dir()
        except OSError as exc:
            # The batch is on Kafka: a stale cursor only means it is sent again after a restart.
            log.error("spool_cursor_not_saved", error=_errno_name(exc))

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
