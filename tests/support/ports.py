"""Free TCP ports on loopback."""

from __future__ import annotations

import socket

from subscriber.stack.procs import port_free_on

EDGE_ADDRESSES = {"edge-1": "127.0.10.1", "edge-2": "127.0.10.2"}
"""The addresses of the example topology's edge clusters (subscriber/data/topology.example.yaml)."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def edge_port() -> int:
    """A port free on both example edge addresses: an instance keeps its port when it moves."""
    return port_free_on(*EDGE_ADDRESSES.values())
