"""A stack service whose chosen port is taken before it binds: started again on other ports."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from subscriber.settings import Settings, StackSettings
from subscriber.stack import supervisor
from subscriber.stack.procs import stop


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else listens on (TCP) and holds (UDP)."""
    with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen()
        port: int = tcp.getsockname()[1]
        udp.bind(("127.0.0.1", port))
        yield port


async def test_a_port_taken_meanwhile_gets_the_service_new_ports(
    tmp_path: Path, taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PowerDNS handed a port that was taken after it was found free starts on fresh ports."""
    real = supervisor._new_ports
    handed: list[dict[str, int]] = []

    def ports(name: str) -> dict[str, int]:
        chosen = real(name)
        if not handed:
            chosen["dns"] = taken_port  # the race, made certain
        handed.append(chosen)
        return chosen

    monkeypatch.setattr(supervisor, "_new_ports", ports)
    settings = Settings(stack=StackSettings(dir=tmp_path / "stack"))
    state = await supervisor._start_fresh(settings, "powerdns", "test-key")
    try:
        assert len(handed) == 2
        assert state.ports == handed[1]
        assert state.ports["dns"] != taken_port
    finally:
        stop(state.pid, state.start_ticks)
