"""HTTP/2 servers on loopback that misbehave on purpose, to test the replay client against.

:class:`Peer` is a real HTTP/2 server built on the ``h2`` state machine (the python-hyper
implementation, independent of our client): small windows, one stream at a time, GOAWAY midway,
RST_STREAM, silence, dropped connections, as a script decides per request. :func:`raw_peer`
writes frames by hand for what ``h2`` will not send: padding, priority, CONTINUATION, PING,
informational answers, trailers, PUSH_PROMISE and garbage.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Literal

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack

Act = Literal["answer", "refuse", "reset", "silent", "drop", "goaway"]


@dataclass
class Got:
    """One request as the peer received it."""

    conn: int
    stream_id: int
    path: str
    body: bytes
    at: float
    headers: dict[str, str]


@dataclass
class Peer:
    """A scriptable h2c server; ``script(request, n)`` says what to do with the n-th request.

    Attributes:
        max_streams: SETTINGS_MAX_CONCURRENT_STREAMS.
        window: SETTINGS_INITIAL_WINDOW_SIZE, and the connection window (never raised above it).
        status: the status of an answer.
    """

    script: Callable[[Got, int], Act] = lambda got, n: "answer"
    max_streams: int = 100
    window: int = 65_535
    status: int = 204
    got: list[Got] = field(default_factory=list)
    most_open: int = 0
    connections: int = 0
    port: int = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn_no = self.connections
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.max_streams,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: self.window,
            },
        )
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        partial: dict[int, tuple[dict[str, str], bytearray]] = {}
        try:
            while data := await reader.read(65_536):
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        partial[event.stream_id] = (dict(event.headers or ()), bytearray())
                        self.most_open = max(self.most_open, len(partial))
                    elif isinstance(event, h2.events.DataReceived):
                        partial[event.stream_id][1].extend(event.data)
                        # Give back only what was read: the client must wait for it.
                        conn.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                    elif isinstance(event, h2.events.StreamEnded):
                        headers, body = partial.pop(event.stream_id)
                        got = Got(
                            conn_no,
                            event.stream_id,
                            headers[":path"],
                            bytes(body),
                            time.monotonic(),
                            headers,
                        )
                        if not self._act(conn, got, writer):
                            return
                writer.write(conn.data_to_send())
                await writer.drain()
        except (ConnectionError, h2.exceptions.ProtocolError):
            return
        finally:
            writer.close()

    def _act(
        self, conn: h2.connection.H2Connection, got: Got, writer: asyncio.StreamWriter
    ) -> bool:
        """Carry out the script for one request; False to drop the connection."""
        act = self.script(got, len(self.got))
        if act in ("answer", "silent", "drop"):
            self.got.append(got)
        if act == "answer":
            conn.send_headers(got.stream_id, [(":status", str(self.status))], end_stream=True)
        elif act == "refuse":
            conn.reset_stream(got.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
        elif act == "reset":
            self.got.append(got)
            conn.reset_stream(got.stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
        elif act == "goaway":
            # This request and any later one on the connection were not processed.
            conn.close_connection(last_stream_id=got.stream_id - 2)
            writer.write(conn.data_to_send())
            return False
        elif act == "drop":
            return False
        return True


@contextlib.asynccontextmanager
async def serving(peer: Peer) -> AsyncIterator[str]:
    """Run ``peer`` on a free loopback port; yield its base URL."""
    server = await asyncio.start_server(peer._serve, "127.0.0.1", 0)
    peer.port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{peer.port}"
    finally:
        server.close()
        await server.wait_closed()


def frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    """One HTTP/2 frame (RFC 9113 §4.1)."""
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes((kind, flags))
        + struct.pack(">I", stream_id)
        + payload
    )


def fields(*pairs: tuple[str, str], huffman: bool = True) -> bytes:
    """A field block from a fresh HPACK encoder with a table of size 0 (as the client asks)."""
    encoder = hpack.Encoder()
    encoder.header_table_size = 0
    return encoder.encode(list(pairs), huffman=huffman)


Answerer = Callable[[int], bytes]
"""Stream id of a request -> the bytes the raw peer writes back for it."""


@contextlib.asynccontextmanager
async def raw_peer(answer: Answerer, seen: list[bytes]) -> AsyncIterator[str]:
    """A server that answers each HEADERS frame with hand-written frames.

    Args:
        answer: what to write for the request on a stream.
        seen: every frame the client sent is appended here (header and payload).
    """

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readexactly(24)  # the client preface
            writer.write(frame(4, 0, 0, b""))  # our SETTINGS: all defaults
            while True:
                head = await reader.readexactly(9)
                size = int.from_bytes(head[:3])
                payload = await reader.readexactly(size)
                seen.append(head + payload)
                kind, flags, stream_id = head[3], head[4], int.from_bytes(head[5:]) & 0x7FFFFFFF
                if kind == 4 and not flags & 1:
                    writer.write(frame(4, 1, 0, b""))
                elif kind in (0, 1) and flags & 1:  # the last frame of a request
                    writer.write(answer(stream_id))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()
