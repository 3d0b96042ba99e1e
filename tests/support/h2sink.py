"""An HTTP/2-only (prior knowledge) server that records what it receives, like a callback target."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions


@dataclass
class H2cRequest:
    """One request an :class:`H2cSink` received."""

    headers: dict[str, str]
    body: bytes


@dataclass
class H2cSink:
    """A tiny HTTP/2-only server (prior knowledge, no HTTP/1.1) that records what it receives."""

    status: int = 204
    requests: list[H2cRequest] = field(default_factory=list)
    url: str = ""
    received: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection: any request is answered ``self.status`` with no body."""
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        pending: dict[int, list[Any]] = {}
        try:
            while data := await reader.read(65535):
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        headers = {
                            (k.decode() if isinstance(k, bytes) else k): (
                                v.decode() if isinstance(v, bytes) else v
                            )
                            for k, v in event.headers or []
                        }
                        pending[event.stream_id] = [headers, b""]
                    elif isinstance(event, h2.events.DataReceived):
                        pending[event.stream_id][1] += event.data or b""
                        conn.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                    elif isinstance(event, h2.events.StreamEnded):
                        headers, body = pending.pop(event.stream_id)
                        self.requests.append(H2cRequest(headers, body))
                        self.received.set()
                        conn.send_headers(
                            event.stream_id, [(":status", str(self.status))], end_stream=True
                        )
                writer.write(conn.data_to_send())
                await writer.drain()
        except (ConnectionError, h2.exceptions.ProtocolError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def serving(sink: H2cSink | None = None) -> AsyncIterator[H2cSink]:
    """Serve ``sink`` (a new one by default) on a free loopback port; its ``url`` is set."""
    sink = sink or H2cSink()
    server = await asyncio.start_server(sink.handle, "127.0.0.1", 0)
    sink.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        yield sink
