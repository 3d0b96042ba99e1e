"""A stack service whose chosen port is taken before it binds: started again on other ports."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from subscriber.settings import Settings, StackSettings
from subscriber.stack import supervisor
from subscriber.stack.procs import stop

pytestmark = [pytest.mark.stack]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else listens on (TCP) and holds (UDP)."""
    with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen()
        port: int = tcp.getsockname()[1]
        udp.bind(("127.0.0.1", port))
        yield port


@pytest.mark.parametrize(("service", "port_name"), [("powerdns", "dns"), ("kafka", "broker")])
async def test_a_port_taken_meanwhile_gets_the_service_new_ports(
    tmp_path: Path,
    taken_port: int,
    monkeypatch: pytest.MonkeyPatch,
    service: str,
    port_name: str,
) -> None:
    """A service handed a port that was taken after it was found free starts on fresh ports
    (Kafka logs its bind error far above the end of its log: the whole log is read)."""
    real = supervisor._new_ports
    handed: list[dict[str, int]] = []

    def ports(name: str) -> dict[str, int]:
        chosen = real(name)
        if not handed:
            chosen[port_name] = taken_port  # the race, made certain
        handed.append(chosen)
        return chosen

    monkeypatch.setattr(supervisor, "_new_ports", ports)
    settings = Settings(stack=StackSettings(dir=tmp_path / "stack"))
    state = await supervisor._start_fresh(settings, service, "test-key")
    try:
        assert len(handed) == 2
        assert state.ports == handed[1]
        assert state.ports[port_name] != taken_port
    finally:
        stop(state.pid, state.start_ticks)
