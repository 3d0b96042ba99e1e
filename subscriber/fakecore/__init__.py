"""A free5GC-faithful fake 5G core (NRF, AMF, SMF) for tests, the demo and the simulator.

Every quirk it reproduces cites its source in free5GC (see ``/work/shared/notes/free5gc.md``,
copied into ``docs/`` by the lead). Nothing here runs in production.
"""

from __future__ import annotations

from subscriber.fakecore.server import ExternalNrf, FakeCore, FakeCoreServer

__all__ = ["ExternalNrf", "FakeCore", "FakeCoreServer"]
