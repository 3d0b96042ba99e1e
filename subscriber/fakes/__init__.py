"""Fakes of what cannot run here, apart from the product modules they imitate.

* :mod:`subscriber.fakes.core`: a free5GC-faithful NRF, AMF, SMF and NEF (``subscriber fakecore``);
* :mod:`subscriber.fakes.emco`: the slice of EMCO's REST API a relocation uses (``emco-fake``);
* :mod:`subscriber.fakes.local_orchestrator`: loopback "clusters" for the demo and the tests,
  chosen with ``relocation.orchestrator = "local"``.

Each reproduces the real system's documented behaviour, quirks included, and cites its source.
No product module imports this package; only the composition root (:mod:`subscriber.app`, for
the local orchestrator) and the demo do (tests/test_layout.py).
"""
