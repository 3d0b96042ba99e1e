"""Leaving the publisher while it is reconnecting to a broker that does not answer."""

from __future__ import annotations

import asyncio
import gc
import warnings
from pathlib import Path

from subscriber.ingress.publisher import Publisher
from subscriber.settings import Settings


async def test_leaving_mid_reconnect_closes_every_producer(tmp_path: Path) -> None:
    """A producer whose start is cancelled by shutdown is still closed (no unclosed producer
    left for the garbage collector, which would warn in some later, unrelated test)."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts the connection and never answers, until the client leaves
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    base = Settings()
    settings = base.model_copy(
        update={
            "kafka": base.kafka.model_copy(
                update={"bootstrap_servers": f"127.0.0.1:{port}", "publish_timeout_ms": 1000}
            ),
            "receiver": base.receiver.model_copy(update={"spool_dir": tmp_path / "spool"}),
        }
    )
    try:
        async with Publisher(kafka=settings.kafka, receiver=settings.receiver) as publisher:
            assert not publisher.kafka_connected
            await asyncio.sleep(0.3)  # the drainer is now inside its next start attempt
    finally:
        server.close()
        await server.wait_closed()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    leaked = [w for w in caught if "Unclosed AIOKafkaProducer" in str(w.message)]
    assert leaked == []
