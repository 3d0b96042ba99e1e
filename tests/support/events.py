"""Location events and the example policy files, for tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import subscriber
from subscriber.events import Cell, Delivery, EventSource, LocationEvent, NfType, UeIdentity

DATA = Path(subscriber.__file__).parent / "data"
TOPOLOGY = DATA / "topology.example.yaml"
POLICY = DATA / "policy.example.yaml"
T0 = datetime(2026, 7, 1, 8, 0, 0, tzinfo=UTC)
TOWER = {1: ("000001", "000000010"), 2: ("000002", "000000020")}


def polled_report(
    supi: str, tac: str, cell: str | None, when: datetime, event_id: str, rat: str = "NR"
) -> LocationEvent:
    """A polled LOCATION_REPORT of ``supi`` in cell ``(tac, cell)``, seen and ingested ``when``."""
    return LocationEvent(
        event_id=event_id,
        ue=UeIdentity(supi=supi),
        source=EventSource(
            nf_type=NfType.AMF, delivery=Delivery.POLLED, event_type="LOCATION_REPORT"
        ),
        location=Cell(rat=rat, plmn="20893", tac=tac, cell_id=cell),
        event_time=when,
        event_time_field="ueLocationTimestamp",
        ingest_time=when,
    )


def location_event(
    n: int, tower: int, *, supi: str = "imsi-208930000000001", at_s: float | None = None
) -> LocationEvent:
    """The ``n``-th polled report of ``supi``, in the cell of ``tower``, ``n`` s after T0."""
    tac, cell = TOWER[tower]
    when = T0 + timedelta(seconds=n if at_s is None else at_s)
    return polled_report(supi, tac, cell, when, f"ev-{supi[-4:]}-{n}")


def crossing(supi: str = "imsi-208930000000001") -> list[LocationEvent]:
    """A UE seen twice at tower 1, then settling at tower 2 for 30 s of reports."""
    return [location_event(n, 1 if n < 2 else 2, supi=supi) for n in range(0, 32)]
