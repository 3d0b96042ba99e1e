"""The real receiver under an embedded granian, publishing to the stack's Kafka, for replays."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterable

from granian.constants import HTTPModes, Interfaces
from granian.server.embed import Server

from subscriber.ingress.publisher import Publisher
from subscriber.ingress.receiver import Receiver, default_normalizers
from subscriber.ingress.server import StaticRegistry
from subscriber.settings import Settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def serving(settings: Settings, keys: Iterable[tuple[str, str]]) -> AsyncIterator[str]:
    """Serve the receiver (h2c prior knowledge and HTTP/1.1) on a free port; yield its URL."""
    port = _free_port()
    async with Publisher(kafka=settings.kafka, receiver=settings.receiver) as publisher:
        app = Receiver(
            settings=settings.receiver,
            normalizers=default_normalizers(),
            registry=StaticRegistry(keys),
            publisher=publisher,
        )
        server = Server(
            app,
            address="127.0.0.1",
            port=port,
            interface=Interfaces.ASGI,
            http=HTTPModes.auto,
            websockets=False,
        )
        task = asyncio.create_task(server.serve())
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            break
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.stop()
            await task
            await app.flush_background()
