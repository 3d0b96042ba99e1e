"""The in-process receiver of the composition root: it yields only once it serves, on its port."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from subscriber.app.receiver import serving_receiver
from subscriber.settings import Settings
from tests.support.registry import StaticRegistry
from tests.support.settings import closed_kafka


def _offline(tmp_path: Path, port: int) -> Settings:
    """Kafka where nothing listens (the spool takes events), the receiver on ``port``."""
    settings = closed_kafka(Settings())
    receiver = settings.receiver.model_copy(update={"port": port, "spool_dir": tmp_path / "spool"})
    return settings.model_copy(update={"receiver": receiver})


async def test_a_free_port_is_chosen_and_served_at_once(tmp_path: Path) -> None:
    """With port 0 it picks a free port, says which, and /healthz answers on the first request."""
    async with serving_receiver(_offline(tmp_path, 0), registry=StaticRegistry()) as served:
        assert served.settings.receiver.port != 0
        assert served.url == f"http://127.0.0.1:{served.settings.receiver.port}"
        async with httpx.AsyncClient(http2=True, http1=False) as http:
            answer = await http.get(f"{served.url}/healthz")
    assert (answer.status_code, answer.http_version) == (200, "HTTP/2")


async def test_a_port_someone_else_listens_on_is_not_taken_for_ours(tmp_path: Path) -> None:
    """When the port is held by another listener, starting fails; it never yields that port."""
    yielded = False
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(RuntimeError, match="Address already in use"):
            async with serving_receiver(_offline(tmp_path, port), registry=StaticRegistry()):
                yielded = True
    assert not yielded
