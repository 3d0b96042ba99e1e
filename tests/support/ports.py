"""Free TCP ports on loopback (the stack's own helpers, and the example edges' port)."""

from __future__ import annotations

from subscriber.stack.procs import free_port, port_free_on

__all__ = ["EDGE_ADDRESSES", "edge_port", "free_port"]

EDGE_ADDRESSES = {"edge-1": "127.0.10.1", "edge-2": "127.0.10.2"}
"""The addresses of the example topology's edge clusters (subscriber/data/topology.example.yaml)."""
CLUSTER_ADDRESSES = (*EDGE_ADDRESSES.values(), "127.0.10.3", "127.0.20.1", "127.0.30.1")
"""Every example cluster's address: with live capacity, a move may go past a full edge."""


def edge_port() -> int:
    """A port free on every example cluster's address: an instance keeps its port when it
    moves."""
    return port_free_on(*CLUSTER_ADDRESSES)
