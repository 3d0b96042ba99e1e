"""Fixtures for the fake core's tests: running fakes, an HTTP client, tokens, an h2c sink."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest

from subscriber.fakes.core import FakeCoreServer

TokenFactory = Callable[..., Awaitable[str]]


@pytest.fixture
async def fake() -> AsyncIterator[FakeCoreServer]:
    """A free5GC-mode fake core with OAuth on and three UEs."""
    async with FakeCoreServer(ues=3) as server:
        yield server


@pytest.fixture
async def notify_fake() -> AsyncIterator[FakeCoreServer]:
    """A spec-conformant (notify-mode) fake core with OAuth on and three UEs."""
    async with FakeCoreServer(ues=3, mode="notify") as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP/1.1 client session."""
    async with aiohttp.ClientSession() as session:
        yield session


async def register_af(http: aiohttp.ClientSession, base: str) -> str:
    """Register a fresh AF instance at the fake NRF and return its id."""
    nf_id = str(uuid.uuid4())
    profile = {"nfInstanceId": nf_id, "nfType": "AF", "nfStatus": "REGISTERED"}
    async with http.put(f"{base}/nnrf-nfm/v1/nf-instances/{nf_id}", json=profile) as response:
        assert response.status == 201
    return nf_id


@pytest.fixture
def token(http: aiohttp.ClientSession) -> TokenFactory:
    """Returns ``await token(base, scope, target="AMF")``: a registered AF's access token."""

    async def get(base: str, scope: str, target: str = "AMF") -> str:
        nf_id = await register_af(http, base)
        form = {
            "grant_type": "client_credentials",
            "nfInstanceId": nf_id,
            "nfType": "AF",
            "targetNfType": target,
            "scope": scope,
        }
        async with http.post(f"{base}/oauth2/token", data=form) as response:
            assert response.status == 200
            body = await response.json()
        return str(body["access_token"])

    return get


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


@pytest.fixture
async def h2c_sink() -> AsyncIterator[H2cSink]:
    """An h2c prior-knowledge server on a free loopback port."""
    sink = H2cSink()
    server = await asyncio.start_server(sink.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sink.url = f"http://127.0.0.1:{port}"
    yield sink
    server.close()
    await server.wait_closed()
