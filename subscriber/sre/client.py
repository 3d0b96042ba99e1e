"""A lean HTTP/2 client over cleartext (h2c prior knowledge), and HTTP/1.1, for fast replay.

Why not a library: httpx tops out near 1.5k requests/s on one core. The ``h2`` state machine
(python-hyper, sans-IO) under the same callback design, tuned as lean as it goes, costs 64-67 µs
of CPU a request in the HTTP/2 layer alone (this module: 3.1-3.5 µs), and a whole replay with it
reaches 10.7k-11.1k callbacks per CPU-second (this module: 44k-53k): with the server on the
same two cores, 5.4k-8.3k callbacks/s where this module reaches 9.4k-27k (``python -m
bench.h2client --null``; Intel Xeon, 2 shared vCPUs). Its cost is HPACK with a dynamic table, a
stream object, a state machine and several events per request, and a count of every open stream
on each new one. A replay client's needs are narrow (send POSTs, learn each status), and the tests
hold it to the ``h2`` library: a real ``h2`` server that misbehaves on purpose, hand-written
frames a server may send, broken ones, and field blocks from ``hpack``'s encoder (tests/sre/
test_client.py). So this module speaks the few frames that takes itself (RFC 9113), from
an asyncio :class:`~asyncio.Protocol`, with no task or future per request (the answer is a
callback) and one ``transport.write`` per loop turn:

* requests: HEADERS (and DATA) frames; the field block uses only HPACK's static table and
  literals without indexing (RFC 7541 §6.2.2), so it carries no state and is cached per
  (method, path, content type, length);
* answers: we announce ``SETTINGS_HEADER_TABLE_SIZE = 0``, so the server's field blocks carry no
  state either, and only ``:status`` (the first field, RFC 9113 §8.3) is decoded; bodies are
  counted for flow control and dropped;
* the rest of the protocol a peer may use: SETTINGS (and their ACK), PING (ACK), WINDOW_UPDATE
  both ways, CONTINUATION, padding, RST_STREAM, GOAWAY. Server push is refused in our SETTINGS.

Failures are answers too: a stream the server resets answers ``RST_<code>``, a connection lost
with requests in flight answers ``ConnectionError`` for them, a request unanswered after the
timeout is reset and answers ``Timeout``. A request the server never processed (above the last
stream id of a GOAWAY, or refused with ``REFUSED_STREAM``) is handed back to be sent again, as
RFC 9113 §8.7 allows.

HTTP/1.1 goes through h11 (the parser httpx uses), one request at a time per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import h11
from hpack.exceptions import HPACKDecodingError
from hpack.huffman_table import decode_huffman
from hpack.table import HeaderTable

Headers = Sequence[tuple[bytes, bytes]]
Answer = Callable[[str], None]
"""Called once per request with the status (``"204"``) or what went wrong (``"Timeout"``)."""

Retry = Callable[[], None]
"""Called once, instead of an answer, for a request the server never processed."""

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_DATA, _HEADERS, _RST_STREAM, _SETTINGS, _PUSH_PROMISE, _PING, _GOAWAY = 0, 1, 3, 4, 5, 6, 7
_WINDOW_UPDATE, _CONTINUATION = 8, 9
_END_STREAM = _ACK = 0x1
_END_HEADERS, _PADDED, _PRIORITY = 0x4, 0x8, 0x20
_FRAME = struct.Struct(">BHBBL")  # length (24 bits as 8 + 16), type, flags, stream id
_MAX_WINDOW = (1 << 31) - 1
_DEFAULT_WINDOW = 65_535
_REFUSED_STREAM, _CANCEL = 0x7, 0x8
_ERRORS = (  # RFC 9113 §7, by code
    *("NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT"),
    *("STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR"),
    *("CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"),
)
_SIZES = {_RST_STREAM: 4, _PING: 8, _WINDOW_UPDATE: 4}  # fixed payload sizes (RFC 9113 §6)
# The first 61 entries of RFC 7541 Appendix A, as hpack ships them.
_STATIC = HeaderTable.STATIC_TABLE
_STATIC_PAIR = {pair: i + 1 for i, pair in reversed(list(enumerate(_STATIC)))}
_STATIC_NAME = {name: i + 1 for i, (name, _) in reversed(list(enumerate(_STATIC)))}


def _frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    size = len(payload)
    return _FRAME.pack(size >> 16, size & 0xFFFF, kind, flags, stream_id) + payload


def _integer(value: int, prefix_bits: int, first: int) -> bytes:
    """RFC 7541 §5.1: ``value`` with an N-bit prefix; ``first`` holds the bits above it."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(value: bytes) -> bytes:
    return _integer(len(value), 7, 0) + value  # no Huffman: cheaper, and always allowed


def encode_fields(fields: Headers) -> bytes:
    """An HPACK field block that uses no dynamic table: static entries and literals only."""
    out = []
    for name, value in fields:
        index = _STATIC_PAIR.get((name, value))
        if index is not None:
            out.append(_integer(index, 7, 0x80))
            continue
        index = _STATIC_NAME.get(name, 0)
        # Literal without indexing (RFC 7541 §6.2.2): nothing enters the decoder's table.
        out.append(_integer(index, 4, 0x00) if index else b"\x00" + _string(name))
        out.append(_string(value))
    return b"".join(out)


class CompressionError(Exception):
    """The answer's field block cannot be read without a dynamic table we said we do not keep."""


def _read_integer(block: bytes, i: int, prefix_bits: int) -> tuple[int, int]:
    limit = (1 << prefix_bits) - 1
    value = block[i] & limit
    i += 1
    if value < limit:
        return value, i
    shift = 0
    while True:
        byte = block[i]
        i += 1
        value += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def _read_string(block: bytes, i: int) -> tuple[bytes, int]:
    huffman = block[i] & 0x80
    size, i = _read_integer(block, i, 7)
    raw = block[i : i + size]
    if len(raw) != size:
        raise CompressionError("field block ends inside a string")
    if not huffman:
        return raw, i + size
    try:
        return decode_huffman(raw), i + size
    except HPACKDecodingError as exc:
        raise CompressionError(str(exc)) from None


def status_of(block: bytes) -> str:
    """The ``:status`` of an answer's field block (it must be the first field).

    Raises:
        CompressionError: the block is malformed or refers to a dynamic table entry.
    """
    try:
        i = 0
        while block[i] & 0xE0 == 0x20:  # dynamic table size updates (to 0: nothing to keep)
            _, i = _read_integer(block, i, 5)
        first = block[i]
        if first & 0x80:
            index, i = _read_integer(block, i, 7)
            if not 1 <= index <= len(_STATIC):
                raise CompressionError(f"dynamic table entry {index}")
            name, value = _STATIC[index - 1]
        else:
            index, i = _read_integer(block, i, 6 if first & 0x40 else 4)
            if index > len(_STATIC):
                raise CompressionError(f"dynamic table entry {index}")
            if index:
                name = _STATIC[index - 1][0]
            else:
                name, i = _read_string(block, i)
            value, i = _read_string(block, i)
    except IndexError:
        raise CompressionError("field block ends early") from None
    if name != b":status":
        raise CompressionError("the first field is not :status")
    return value.decode("ascii", "replace")


@dataclass(slots=True)
class _Stream:
    answer: Answer
    retry: Retry
    sent_at: float
    body: memoryview
    window: int
    status: str = ""


class Connection(asyncio.Protocol):
    """One h2c connection: requests in, status callbacks out.

    Made by :class:`Pool`; call :meth:`request` while :attr:`room` is positive.
    """

    def __init__(self, authority: bytes, on_idle: Callable[[Connection], None]) -> None:
        self._authority = authority
        self._on_idle = on_idle
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._streams: dict[int, _Stream] = {}
        self._blocked: list[int] = []
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._inbox = bytearray()
        self._next_id = 1
        self._max_streams = 100  # until the server's SETTINGS say (RFC 9113 §6.5.2 suggests 100)
        self._max_frame = 16_384
        self._window = _DEFAULT_WINDOW
        self._stream_window = _DEFAULT_WINDOW
        self._received = 0
        self._fields = bytearray()
        self._fields_of = 0
        self._fields_end = False
        self._blocks: dict[tuple[bytes, bytes, tuple[tuple[bytes, bytes], ...], int], bytes] = {}
        self._handlers: dict[int, Callable[[int, int, bytes], bool]] = {
            _DATA: self._on_data,
            _HEADERS: self._on_headers,
            _CONTINUATION: self._on_continuation,
            _RST_STREAM: self._on_reset,
            _SETTINGS: self._on_settings,
            _PING: self._on_ping,
            _GOAWAY: self._on_goaway,
            _WINDOW_UPDATE: self._on_window_update,
            _PUSH_PROMISE: self._on_push_promise,
        }
        self.closed = False

    @property
    def room(self) -> int:
        """How many more streams the server lets this connection open now."""
        if self.closed:
            return 0
        return min(self._max_streams, 1000) - len(self._streams)

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet answered."""
        return len(self._streams)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Send the preface: no push, no dynamic table for answers, the largest windows."""
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        settings = struct.pack(">HLHLHL", 0x1, 0, 0x2, 0, 0x4, _MAX_WINDOW)
        self._out += (
            PREFACE,
            _frame(_SETTINGS, 0, 0, settings),
            _frame(_WINDOW_UPDATE, 0, 0, struct.pack(">L", _MAX_WINDOW - _DEFAULT_WINDOW)),
        )
        self._flush()

    def request(
        self,
        method: bytes,
        path: bytes,
        headers: Headers,
        body: bytes,
        answer: Answer,
        retry: Retry,
    ) -> None:
        """Send one request; ``answer`` is called with its status (or failure) later.

        The caller checks :attr:`room` first.
        """
        stream_id = self._next_id
        self._next_id += 2
        if self._next_id > _MAX_WINDOW:
            self.closed = True  # stream ids are spent: the pool opens a new connection
        key = (method, path, tuple(headers), len(body))
        block = self._blocks.get(key)
        if block is None:
            if len(self._blocks) > 4096:
                self._blocks.clear()
            block = self._blocks[key] = encode_fields(
                (
                    (b":method", method),
                    (b":scheme", b"http"),
                    (b":authority", self._authority),
                    (b":path", path),
                    *headers,
                    (b"content-length", b"%d" % len(body)),
                )
            )
        self._send_fields(stream_id, block, end_stream=not body)
        stream = _Stream(answer, retry, time.monotonic(), memoryview(body), self._stream_window)
        self._streams[stream_id] = stream
        if body:
            self._send_body(stream_id, stream)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _send_fields(self, stream_id: int, block: bytes, *, end_stream: bool) -> None:
        size = self._max_frame
        flags = _END_STREAM if end_stream else 0
        if len(block) <= size:
            self._out.append(_frame(_HEADERS, flags | _END_HEADERS, stream_id, block))
            return
        chunks = [block[i : i + size] for i in range(0, len(block), size)]
        self._out.append(_frame(_HEADERS, flags, stream_id, chunks[0]))
        for chunk in chunks[1:-1]:
            self._out.append(_frame(_CONTINUATION, 0, stream_id, chunk))
        self._out.append(_frame(_CONTINUATION, _END_HEADERS, stream_id, chunks[-1]))

    def _send_body(self, stream_id: int, stream: _Stream) -> bool:
        """Send what the windows allow; True when the whole body is out."""
        while stream.body:
            size = min(len(stream.body), self._window, stream.window, self._max_frame)
            if size <= 0:
                if stream_id not in self._blocked:
                    self._blocked.append(stream_id)
                return False
            chunk, stream.body = stream.body[:size], stream.body[size:]
            self._window -= size
            stream.window -= size
            flags = 0 if stream.body else _END_STREAM
            self._out.append(_frame(_DATA, flags, stream_id, chunk.tobytes()))
        return True

    def _unblock(self) -> None:
        blocked, self._blocked = self._blocked, []
        for stream_id in blocked:
            stream = self._streams.get(stream_id)
            if stream is not None:
                self._send_body(stream_id, stream)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._out and self._transport is not None and not self._transport.is_closing():
            self._transport.write(b"".join(self._out))
        self._out.clear()

    def data_received(self, data: bytes) -> None:
        """Read whole frames; answer the streams they end."""
        inbox = self._inbox
        inbox += data
        at, size = 0, len(inbox)
        freed = False
        try:
            while size - at >= 9:
                hi, lo, kind, flags, stream_id = _FRAME.unpack_from(inbox, at)
                length = hi << 16 | lo
                if length > 16_384:  # our SETTINGS_MAX_FRAME_SIZE is the default
                    raise _ConnectionError("FRAME_SIZE_ERROR")
                end = at + 9 + length
                if end > size:
                    break
                freed |= self._frame_received(
                    kind, flags, stream_id & _MAX_WINDOW, bytes(inbox[at + 9 : end])
                )
                at = end
        except (_ConnectionError, CompressionError) as exc:
            self._abort(str(exc) if isinstance(exc, _ConnectionError) else "COMPRESSION_ERROR")
            return
        del inbox[:at]
        self._flush()
        if freed:
            self._on_idle(self)

    def _frame_received(self, kind: int, flags: int, stream_id: int, payload: bytes) -> bool:
        """Handle one frame; True when it ended a stream."""
        if self._fields_of and kind != _CONTINUATION:
            raise _ConnectionError("PROTOCOL_ERROR")  # RFC 9113 §6.10: nothing may interleave
        size = _SIZES.get(kind)
        if (size is not None and len(payload) != size) or (kind == _SETTINGS and len(payload) % 6):
            raise _ConnectionError("FRAME_SIZE_ERROR")
        handler = self._handlers.get(kind)
        # PRIORITY and unknown frame types are ignored (RFC 9113 §5.5).
        return handler(flags, stream_id, payload) if handler is not None else False

    def _on_data(self, flags: int, stream_id: int, payload: bytes) -> bool:
        self._consumed(len(payload))  # padding included (RFC 9113 §6.1)
        return bool(flags & _END_STREAM) and self._ended(stream_id)

    def _on_headers(self, flags: int, stream_id: int, payload: bytes) -> bool:
        if not stream_id:
            raise _ConnectionError("PROTOCOL_ERROR")
        if flags & _PADDED:
            if not payload or payload[0] >= len(payload):
                raise _ConnectionError("PROTOCOL_ERROR")
            payload = payload[1 : len(payload) - payload[0]]
        if flags & _PRIORITY:
            payload = payload[5:]
        self._fields[:] = payload
        self._fields_end = bool(flags & _END_STREAM)
        if flags & _END_HEADERS:
            return self._fields_done(stream_id)
        self._fields_of = stream_id
        return False

    def _on_continuation(self, flags: int, stream_id: int, payload: bytes) -> bool:
        if stream_id != self._fields_of or not stream_id:
            raise _ConnectionError("PROTOCOL_ERROR")
        self._fields += payload
        if flags & _END_HEADERS:
            self._fields_of = 0
            return self._fields_done(stream_id)
        return False

    def _on_reset(self, flags: int, stream_id: int, payload: bytes) -> bool:
        return self._reset(stream_id, int.from_bytes(payload))

    def _on_settings(self, flags: int, stream_id: int, payload: bytes) -> bool:
        if not flags & _ACK:
            self._settings(payload)
        return False

    def _on_ping(self, flags: int, stream_id: int, payload: bytes) -> bool:
        if not flags & _ACK:
            self._out.append(_frame(_PING, _ACK, 0, payload))
        return False

    def _on_goaway(self, flags: int, stream_id: int, payload: bytes) -> bool:
        if len(payload) < 8:
            raise _ConnectionError("FRAME_SIZE_ERROR")
        return self._goaway(int.from_bytes(payload[:4]) & _MAX_WINDOW)

    def _on_window_update(self, flags: int, stream_id: int, payload: bytes) -> bool:
        increment = int.from_bytes(payload) & _MAX_WINDOW
        if stream_id == 0:
            self._window += increment
            if self._window > _MAX_WINDOW:
                raise _ConnectionError("FLOW_CONTROL_ERROR")
        elif (stream := self._streams.get(stream_id)) is not None:
            stream.window += increment
        self._unblock()
        return False

    def _on_push_promise(self, flags: int, stream_id: int, payload: bytes) -> bool:
        raise _ConnectionError("PROTOCOL_ERROR")  # we said SETTINGS_ENABLE_PUSH = 0

    def _fields_done(self, stream_id: int) -> bool:
        stream = self._streams.get(stream_id)
        # Trailers carry no :status, and a block of a stream we gave up on holds nothing we
        # keep (no dynamic table): only a stream's first final answer is read.
        if stream is not None and not stream.status:
            status = status_of(bytes(self._fields))
            if not status.startswith("1"):
                stream.status = status
        return self._fields_end and self._ended(stream_id)

    def _ended(self, stream_id: int) -> bool:
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            return False
        stream.answer(stream.status or "NoStatus")
        if self.closed and not self._streams:
            self.close()
        return True

    def _consumed(self, size: int) -> None:
        """Give back receive window: the connection's when half is used, streams' never run out."""
        self._received += size
        if self._received > _MAX_WINDOW // 2:
            self._out.append(_frame(_WINDOW_UPDATE, 0, 0, struct.pack(">L", self._received)))
            self._received = 0

    def _settings(self, payload: bytes) -> None:
        for i in range(0, len(payload) - 5, 6):
            key, value = struct.unpack_from(">HL", payload, i)
            if key == 0x3:
                self._max_streams = value
            elif key == 0x4:
                if value > _MAX_WINDOW:
                    raise _ConnectionError("FLOW_CONTROL_ERROR")
                delta, self._stream_window = value - self._stream_window, value
                for stream in self._streams.values():
                    stream.window += delta
            elif key == 0x5:
                if not 16_384 <= value < 1 << 24:  # RFC 9113 §6.5.2
                    raise _ConnectionError("PROTOCOL_ERROR")
                self._max_frame = value
        self._out.append(_frame(_SETTINGS, _ACK, 0))
        self._unblock()

    def _reset(self, stream_id: int, code: int) -> bool:
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            return False
        if code == _REFUSED_STREAM:
            stream.retry()
        else:
            stream.answer(f"RST_{_ERRORS[code] if code < len(_ERRORS) else code}")
        return True

    def _goaway(self, last_stream_id: int) -> bool:
        """No new streams here; those above ``last_stream_id`` were never processed: go again."""
        self.closed = True
        unprocessed = sorted(sid for sid in self._streams if sid > last_stream_id)
        for stream_id in unprocessed:
            self._streams.pop(stream_id).retry()
        if not self._streams:
            self.close()
        return bool(unprocessed)

    def _abort(self, code: str) -> None:
        """A connection error: say so in a GOAWAY, close, answer every stream."""
        errors = _ERRORS.index(code) if code in _ERRORS else 1
        self._out.append(_frame(_GOAWAY, 0, 0, struct.pack(">LL", 0, errors)))
        self._flush()
        self._fail_all(code)
        if self._transport is not None:
            self._transport.close()
        self._on_idle(self)

    def _fail_all(self, why: str) -> None:
        self.closed = True
        streams, self._streams = self._streams, {}
        for stream_id in sorted(streams):
            streams[stream_id].answer(why)

    def connection_lost(self, exc: Exception | None) -> None:
        """Every request still in flight is answered ``ConnectionError``."""
        self._transport = None
        self._fail_all("ConnectionError")
        self._on_idle(self)

    def expire(self, older_than: float) -> None:
        """Reset and answer ``Timeout`` for the streams sent before ``older_than``."""
        late = [sid for sid, s in self._streams.items() if s.sent_at < older_than]
        for stream_id in late:
            stream = self._streams.pop(stream_id)
            self._out.append(_frame(_RST_STREAM, 0, stream_id, struct.pack(">L", _CANCEL)))
            stream.answer("Timeout")
        if late:
            self._flush()
            self._on_idle(self)

    def close(self) -> None:
        """Say goodbye (GOAWAY) and close."""
        self.closed = True
        if self._transport is not None and not self._transport.is_closing():
            # The last stream *we* accepted from the server: none, we take no pushes.
            self._out.append(_frame(_GOAWAY, 0, 0, struct.pack(">LL", 0, 0)))
            self._flush()
            self._transport.close()


class _ConnectionError(Exception):
    """A connection error (RFC 9113 §5.4.1); the message is the error code's name."""


class Http11Connection(asyncio.Protocol):
    """One HTTP/1.1 keep-alive connection, one request at a time (h11 parses the answers)."""

    def __init__(self, authority: bytes, on_idle: Callable[[Http11Connection], None]) -> None:
        self._authority = authority
        self._on_idle = on_idle
        self._h11 = h11.Connection(h11.CLIENT)
        self._transport: asyncio.Transport | None = None
        self._stream: _Stream | None = None
        self.closed = False

    @property
    def room(self) -> int:
        """1 when idle, else 0."""
        return 0 if self.closed or self._stream is not None else 1

    @property
    def in_flight(self) -> int:
        """1 while a request awaits its answer."""
        return 0 if self._stream is None else 1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def request(
        self,
        method: bytes,
        path: bytes,
        headers: Headers,
        body: bytes,
        answer: Answer,
        retry: Retry,
    ) -> None:
        """Send one request; ``answer`` is called with its status (or failure) later."""
        assert self._transport is not None
        conn = self._h11
        head = conn.send(
            h11.Request(
                method=method,
                target=path,
                headers=[
                    (b"host", self._authority),
                    *headers,
                    (b"content-length", b"%d" % len(body)),
                ],
            )
        )
        tail = conn.send(h11.Data(data=body)) if body else b""
        end = conn.send(h11.EndOfMessage())
        self._stream = _Stream(answer, retry, time.monotonic(), memoryview(b""), 0)
        self._transport.write(b"".join((head or b"", tail or b"", end or b"")))

    def data_received(self, data: bytes) -> None:
        """Parse the answer; the status is reported once the whole answer is read."""
        conn = self._h11
        conn.receive_data(data)
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError:
                self._finish("ProtocolError", close=True)
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            stream = self._stream
            if isinstance(event, h11.Response) and stream is not None:
                stream.status = str(event.status_code)
            elif isinstance(event, h11.EndOfMessage):
                keep = conn.our_state is h11.DONE and conn.their_state is h11.DONE
                if keep:
                    try:
                        conn.start_next_cycle()
                    except h11.LocalProtocolError:
                        keep = False
                self._finish(stream.status if stream is not None else "NoStatus", close=not keep)
                return
            elif isinstance(event, h11.ConnectionClosed):
                self._finish("ConnectionError", close=True)
                return

    def _finish(self, status: str, *, close: bool) -> None:
        stream, self._stream = self._stream, None
        if close:
            self.closed = True
            if self._transport is not None:
                self._transport.close()
        if stream is not None:
            stream.answer(status)
        self._on_idle(self)

    def connection_lost(self, exc: Exception | None) -> None:
        """A request still in flight is answered ``ConnectionError``."""
        self._transport = None
        self.closed = True
        if self._stream is not None:
            self._finish("ConnectionError", close=False)
        else:
            self._on_idle(self)

    def expire(self, older_than: float) -> None:
        """Close the connection if its request was sent before ``older_than`` (``Timeout``)."""
        if self._stream is not None and self._stream.sent_at < older_than:
            self._finish("Timeout", close=True)

    def close(self) -> None:
        """Close."""
        self.closed = True
        if self._transport is not None:
            self._transport.close()


AnyConnection = Connection | Http11Connection


class Pool:
    """A few h2c connections (or one HTTP/1.1 connection per concurrent request) to one server.

    Connections that close are opened again on demand. Use as an async context manager.

    Args:
        host: server address.
        port: server port.
        http2: h2c prior knowledge, else HTTP/1.1.
        connections: how many connections to keep.
        on_room: called when a connection may take another request.
        on_unreachable: called with the error when (re)connecting fails.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        http2: bool,
        connections: int,
        on_room: Callable[[], None],
        on_unreachable: Callable[[str], None],
    ) -> None:
        self._host, self._port = host, port
        self._authority = f"{host}:{port}".encode()
        self._size = max(1, connections)
        self._on_room = on_room
        self._on_unreachable = on_unreachable
        self._conns: list[AnyConnection] = []
        self._idle: list[AnyConnection] = []
        self._refill: asyncio.Task[None] | None = None
        self._http2 = http2

    async def __aenter__(self) -> Pool:
        await self._open_missing()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._refill is not None:
            self._refill.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refill
        for conn in self._conns:
            conn.close()
        await asyncio.sleep(0)  # let the transports say goodbye

    async def _open_missing(self) -> None:
        self._conns = [c for c in self._conns if not c.closed]
        missing = self._size - len(self._conns)
        opened: list[AnyConnection] = list(
            await asyncio.gather(*(self._open() for _ in range(missing)))
        )
        self._conns.extend(opened)
        self._idle.extend(opened)

    async def _open(self) -> AnyConnection:
        """One more connection (the h2c preface goes out as it connects).

        Raises:
            OSError: the server cannot be reached.
        """
        kind = Connection if self._http2 else Http11Connection
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(
            lambda: kind(self._authority, self._idle_again), self._host, self._port
        )
        return protocol

    def _idle_again(self, conn: AnyConnection) -> None:
        if not self._http2 and not conn.closed and conn.room:
            self._idle.append(conn)
        self._on_room()

    def pick(self) -> AnyConnection | None:
        """A connection that can take a request now, or None (then one is opened if needed)."""
        if self._http2:
            best: AnyConnection | None = None
            for conn in self._conns:
                if conn.room > 0 and (best is None or conn.in_flight < best.in_flight):
                    best = conn
            if best is not None:
                return best
        else:
            while self._idle:
                conn = self._idle.pop()
                if conn.room:
                    return conn
        if self._refill is None and any(c.closed for c in self._conns):
            self._refill = asyncio.get_running_loop().create_task(self._reopen())
        return None

    async def _reopen(self) -> None:
        try:
            await self._open_missing()
        except OSError:
            self._refill = None
            self._on_unreachable("ConnectError")
            return
        self._refill = None
        self._on_room()

    def expire(self, older_than: float) -> None:
        """Answer ``Timeout`` for requests sent before ``older_than``."""
        for conn in list(self._conns):
            conn.expire(older_than)
