"""A free5GC-faithful fake 5G core (NRF, AMF, SMF) for tests, the demo and the simulator.

Every quirk it reproduces cites its source in free5GC (docs/free5gc.md gives the versions and
the behaviour). Nothing here runs in production.
"""

from __future__ import annotations

from subscriber.fakes.core.server import ExternalNrf, FakeCore, FakeCoreServer

__all__ = ["ExternalNrf", "FakeCore", "FakeCoreServer"]
