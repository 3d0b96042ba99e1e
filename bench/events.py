"""The events the benchmarks feed: polled AMF location reports, as the poller publishes them."""

from __future__ import annotations

from datetime import datetime

from subscriber.events import Cell, Delivery, EventSource, LocationEvent, NfType, UeIdentity


def polled_report(
    supi: str, tac: str, cell: str | None, when: datetime, event_id: str
) -> LocationEvent:
    """A polled LOCATION_REPORT of ``supi`` in cell ``(tac, cell)``, seen and ingested ``when``."""
    return LocationEvent(
        event_id=event_id,
        ue=UeIdentity(supi=supi),
        source=EventSource(
            nf_type=NfType.AMF, delivery=Delivery.POLLED, event_type="LOCATION_REPORT"
        ),
        location=Cell(rat="NR", plmn="20893", tac=tac, cell_id=cell),
        event_time=when,
        event_time_field="ueLocationTimestamp",
        ingest_time=when,
    )
