"""The recording file format: a gzip'ed JSON-lines file with a header line.

A recording holds either normalized events (``kind: events``, copied from Kafka or simulated) or
raw callbacks as the receiver got them (``kind: callbacks``), so a replay can exercise the
receiver itself. The first line is the header::

    {"format": "subscriber-recording", "version": 1, "kind": "events", "schema_version": 1,
     "source": {"type": "kafka", "topic": "...", "bootstrap": "..."}, "start": "...",
     "end": "...", "count": 42, "created_at": "..."}

Each following line is one item, in the order it is to be replayed::

    {"t": 1782893670.5, "ue": "imsi-208930000000001", "event": {...LocationEvent...}}
    {"t": 1782893670.5, "ue": "imsi-...", "callback": {"method": "POST", "path":
     "/callbacks/amf/loc-1", "content_type": "application/json", "received_at": "...",
     "body": "..."}}

``t`` (seconds since the epoch) paces a replay: the Kafka record timestamp, the receive time of
a callback, or the simulated time. ``ue`` is the key that orders a replay (one UE's items are
never reordered).

gzip, not zstd: it is in the standard library, the receiver's capture files already use it, and
``zcat | jq`` reads a recording anywhere; recordings are small next to what zstd would save. The
header is known only at the end (count, time span), so the body is written to a side file as its
own gzip member and the header member is put in front of it at close: gzip readers read
concatenated members as one stream, and nothing is compressed twice.

:func:`open_recording` also reads the receiver's raw capture files
(:class:`subscriber.ingress.receiver.CaptureWriter`) directly, as a callbacks recording.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import io
import os
import shutil
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import orjson

from subscriber.errors import SubscriberError
from subscriber.events import SCHEMA_VERSION

FORMAT = "subscriber-recording"
FORMAT_VERSION = 1

Kind = Literal["events", "callbacks"]


class BadRecording(SubscriberError):
    """Raised when a file is not a recording (or capture) this version can read."""


@dataclass(frozen=True, slots=True)
class Header:
    """What the first line of a recording says."""

    kind: Kind
    source: dict[str, Any]
    count: int = 0
    start: datetime | None = None
    end: datetime | None = None
    schema_version: int = SCHEMA_VERSION
    version: int = FORMAT_VERSION
    created_at: datetime | None = None

    def to_json(self) -> bytes:
        """The header line, without its newline."""
        return orjson.dumps(
            {
                "format": FORMAT,
                "version": self.version,
                "kind": self.kind,
                "schema_version": self.schema_version,
                "source": self.source,
                "start": self.start.isoformat() if self.start else None,
                "end": self.end.isoformat() if self.end else None,
                "count": self.count,
                "created_at": self.created_at.isoformat() if self.created_at else None,
            }
        )

    @property
    def span_s(self) -> float:
        """Seconds between the first and the last item."""
        if self.start is None or self.end is None:
            return 0.0
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True, slots=True)
class RawCallback:
    """One callback as received: enough to send it again exactly."""

    path: str
    body: bytes
    content_type: str | None = "application/json"
    method: str = "POST"
    received_at: datetime | None = None
    headers: tuple[tuple[str, str], ...] = field(default=())

    def to_doc(self) -> dict[str, Any]:
        """The ``callback`` object of a recording line."""
        doc: dict[str, Any] = {"method": self.method, "path": self.path}
        if self.content_type is not None:
            doc["content_type"] = self.content_type
        if self.received_at is not None:
            doc["received_at"] = self.received_at.isoformat()
        try:
            doc["body"] = self.body.decode()
        except UnicodeDecodeError:
            doc["body_base64"] = base64.b64encode(self.body).decode()
        return doc


@dataclass(frozen=True, slots=True)
class Item:
    """One line of a recording: an event (raw JSON of a LocationEvent) or a raw callback."""

    t: float
    ue: str
    event: bytes | None = None
    callback: RawCallback | None = None

    def to_json(self) -> bytes:
        """The line, without its newline."""
        doc: dict[str, Any] = {"t": self.t, "ue": self.ue}
        if self.event is not None:
            doc["event"] = orjson.Fragment(self.event)
        if self.callback is not None:
            doc["callback"] = self.callback.to_doc()
        return orjson.dumps(doc)


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def callback_ue_key(body: bytes, path: str) -> str:
    """The UE a callback is about (first report's SUPI or GPSI), else its callback path.

    Only used to keep one UE's callbacks in order on replay; a body that does not parse is
    ordered with the other callbacks of its subscription.
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return path
    if isinstance(doc, dict):
        for list_name in ("reportList", "monitoringEventReports", "eventNotifs"):
            reports = doc.get(list_name)
            if isinstance(reports, list) and reports and isinstance(reports[0], dict):
                first = reports[0]
                for name in ("supi", "gpsi", "externalId", "msisdn"):
                    value = first.get(name)
                    if isinstance(value, str) and value:
                        return value
    return path


def _callback(doc: dict[str, Any]) -> RawCallback:
    if "body_base64" in doc:
        body = base64.b64decode(doc["body_base64"])
    else:
        body = str(doc.get("body", "")).encode()
    headers = tuple((str(k), str(v)) for k, v in doc.get("headers", ()))
    content_type = doc.get("content_type")
    if content_type is None:
        content_type = next((v for k, v in headers if k.lower() == "content-type"), None)
    return RawCallback(
        path=str(doc["path"]),
        body=body,
        content_type=content_type,
        method=str(doc.get("method") or "POST"),
        received_at=_time(doc.get("received_at")),
        headers=headers,
    )


def parse_item(line: bytes) -> Item:
    """Parse one body line of a recording.

    Raises:
        BadRecording: the line is not an item.
    """
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise BadRecording(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise BadRecording("not an item: expected a JSON object with t, ue and event or callback")
    try:
        if "event" in doc:
            return Item(float(doc["t"]), str(doc["ue"]), event=orjson.dumps(doc["event"]))
        return Item(float(doc["t"]), str(doc["ue"]), callback=_callback(doc["callback"]))
    except KeyError as exc:
        name = str(exc.args[0])
        field = name if name in ("t", "ue", "event", "callback") else f"callback.{name}"
        raise BadRecording(f"{field}: missing (an item has t, ue, and event or callback)") from exc
    except (TypeError, ValueError, binascii.Error) as exc:
        raise BadRecording(f"not an item: {exc}") from exc


def _capture_line(line: bytes) -> Item:
    try:
        doc = orjson.loads(line)
        return capture_item(doc)
    except orjson.JSONDecodeError as exc:
        raise BadRecording(f"not JSON: {exc}") from exc
    except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
        raise BadRecording(f"not a captured callback: {exc!r}") from exc


def capture_item(doc: dict[str, Any]) -> Item:
    """A line of the receiver's capture file as a callbacks-recording item."""
    callback = _callback(doc)
    at = callback.received_at
    return Item(
        t=at.timestamp() if at is not None else 0.0,
        ue=callback_ue_key(callback.body, callback.path),
        callback=callback,
    )


def _open_text(path: Path) -> io.BufferedIOBase:
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(path, "rb")
    return path.open("rb")


class Recording:
    """An open recording (or capture file) to iterate once.

    Use :func:`open_recording`; iterating yields :class:`Item` in file order.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = _open_text(path)
        first = self._file.readline()
        self.line = 1
        try:
            doc = orjson.loads(first) if first.strip() else {}
        except orjson.JSONDecodeError as exc:
            self._file.close()
            raise BadRecording(f"{path}: the first line is not JSON") from exc
        self._first: dict[str, Any] | None = None
        if doc.get("format") == FORMAT:
            if doc.get("version") != FORMAT_VERSION:
                self._file.close()
                raise BadRecording(f"{path}: recording format v{doc.get('version')} is unknown")
            self.header = Header(
                kind=doc["kind"],
                source=doc.get("source") or {},
                count=int(doc.get("count") or 0),
                start=_time(doc.get("start")),
                end=_time(doc.get("end")),
                schema_version=int(doc.get("schema_version") or SCHEMA_VERSION),
                created_at=_time(doc.get("created_at")),
            )
        elif "path" in doc and "received_at" in doc:
            # A raw capture file: no header, every line a callback.
            self._first = doc
            self.header = Header(kind="callbacks", source={"type": "receiver capture"})
        elif not doc:
            self.header = Header(kind="events", source={})
        else:
            self._file.close()
            raise BadRecording(f"{path}: neither a recording nor a receiver capture file")

    def __iter__(self) -> Iterator[Item]:
        """Items in file order; :attr:`line` is the line of the one last yielded.

        Raises:
            BadRecording: a line is not an item (the message names the file and the line), or
                the file ends or breaks midway.
        """
        if self._first is not None:
            first, self._first = self._first, None
            try:
                item = capture_item(first)
            except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
                raise BadRecording(f"{self.path}:1: not a captured callback: {exc!r}") from exc
            yield item
            parse = _capture_line
        else:
            parse = parse_item
        try:
            for text in self._file:
                self.line += 1
                if text.strip():
                    try:
                        item = parse(text)
                    except BadRecording as exc:
                        raise BadRecording(f"{self.path}:{self.line}: {exc}") from exc
                    yield item
        except (EOFError, OSError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
            raise BadRecording(
                f"{self.path}: the file ends or breaks after line {self.line} (truncated?)"
            ) from exc

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_recording(path: Path) -> Recording:
    """Open a recording or a receiver capture file.

    Raises:
        BadRecording: the file is neither.
    """
    try:
        return Recording(path)
    except OSError as exc:
        raise BadRecording(f"{path}: cannot read: {exc.strerror or exc}") from exc


def read_items(path: Path) -> tuple[Header, list[Item]]:
    """The header and every item of a recording (small files, tests)."""
    with open_recording(path) as rec:
        return rec.header, list(rec)


class RecordingWriter:
    """Writes a recording: items as they come, the header (count, span) at close.

    Args:
        path: the file to create (replaced if it exists).
        kind: events or callbacks.
        source: where the items came from (written in the header).
        clock: the creation time stamped in the header.
    """

    def __init__(
        self,
        path: Path,
        *,
        kind: Kind,
        source: dict[str, Any],
        created_at: datetime | None = None,
    ) -> None:
        self.path = path
        self.kind: Kind = kind
        self.source = source
        self.created_at = created_at
        self.count = 0
        self._first_t: float | None = None
        self._last_t: float | None = None
        self._body_path = path.with_name(f".{path.name}.{os.getpid()}.body")
        self._body = gzip.GzipFile(self._body_path, "wb", compresslevel=6)

    def write(self, item: Item) -> None:
        """Append one item."""
        if (item.event is None) == (self.kind == "events"):
            raise ValueError(f"a {self.kind} recording cannot hold this item")
        self._body.write(item.to_json() + b"\n")
        self.count += 1
        if self._first_t is None or item.t < self._first_t:
            self._first_t = item.t
        if self._last_t is None or item.t > self._last_t:
            self._last_t = item.t

    def header(self) -> Header:
        """The header as it stands."""

        def at(t: float | None) -> datetime | None:
            return datetime.fromtimestamp(t, UTC) if t is not None else None

        return Header(
            kind=self.kind,
            source=self.source,
            count=self.count,
            start=at(self._first_t),
            end=at(self._last_t),
            created_at=self.created_at,
        )

    def close(self) -> Header:
        """Finish the file: header member first, then the body member."""
        self._body.close()
        try:
            with self.path.open("wb") as out:
                out.write(gzip.compress(self.header().to_json() + b"\n", mtime=0))
                with self._body_path.open("rb") as body:
                    shutil.copyfileobj(body, out)
        finally:
            self._body_path.unlink(missing_ok=True)
        return self.header()

    def abort(self) -> None:
        """Drop everything written (nothing is left on disk)."""
        self._body.close()
        self._body_path.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
