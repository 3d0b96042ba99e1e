"""Free TCP ports on loopback (the stack's own helpers, and the example edges' port)."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from typing import TypeVar

from subscriber.stack.procs import free_port, port_free_on

__all__ = ["EDGE_ADDRESSES", "edge_port", "free_port", "listening_on_a_free_port"]

T = TypeVar("T")

EDGE_ADDRESSES = {"edge-1": "127.0.10.1", "edge-2": "127.0.10.2"}
"""The addresses of the example topology's edge clusters (subscriber/data/topology.example.yaml)."""
CLUSTER_ADDRESSES = (*EDGE_ADDRESSES.values(), "127.0.10.3", "127.0.20.1", "127.0.30.1")
"""Every example cluster's address: with live capacity, a move may go past a full edge."""


def edge_port() -> int:
    """A port free on every example cluster's address: an instance keeps its port when it
    moves."""
    return port_free_on(*CLUSTER_ADDRESSES)


def listening_on_a_free_port(listen: Callable[[int], T], tries: int = 5) -> tuple[T, int]:
    """``listen(port)`` on a port free on every address, and that port.

    A port found free can be taken by another process before ``listen`` binds it (the suite's
    services and other suites start at the same time): on "address in use" another port is
    tried. ``listen`` binds the wildcard address, so the port is looked for there.
    """
    for attempt in range(tries):
        with socket.socket() as s:
            s.bind(("0.0.0.0", 0))
            port: int = s.getsockname()[1]
        try:
            return listen(port), port
        except (OSError, ValueError) as exc:
            clash = getattr(exc, "errno", None) == errno.EADDRINUSE or "in use" in str(exc)
            if not clash or attempt == tries - 1:
                raise
    raise AssertionError("unreachable")
