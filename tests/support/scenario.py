"""A two-zone topology, two policies and a hand-written recording for the SRE tests.

Zone ``za`` has cluster ``ca`` 1 ms away, zone ``zb`` cluster ``cb``; the clusters are 20 ms
apart, so the app ``game`` (budget 10 ms) is within budget only on the cluster of the UE's zone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from subscriber.events import (
    LocationEvent,
    encode_event,
)
from subscriber.sre.recording import Item, RecordingWriter
from tests.support.events import polled_report

T0 = datetime(2026, 7, 1, 9, 0, 0, tzinfo=UTC)
UE1 = "imsi-208930000000001"
UE2 = "imsi-208930000000002"
CELLS = {"za": ("000001", "000000010"), "zb": ("000002", "000000020"), "none": ("000009", None)}

TOPOLOGY = """
plmn: {mcc: "208", mnc: "93"}
zones: [{id: za}, {id: zb}]
tracking_areas:
  - tac: "000001"
    cells: [{cell_id: "000000010", zone: za}]
  - tac: "000002"
    cells: [{cell_id: "000000020", zone: zb}]
clusters:
  - {id: ca, site: a, zone: za, capacity: {cpu: 100, memory_mib: 100000, app_slots: 100},
     address: 127.0.10.1}
  - {id: cb, site: b, zone: zb, capacity: {cpu: 100, memory_mib: 100000, app_slots: 100},
     address: 127.0.10.2}
links:
  - {a: za, b: ca, latency_ms: 1}
  - {a: zb, b: cb, latency_ms: 1}
  - {a: ca, b: cb, latency_ms: 20}
applications:
  - {name: game, latency_budget_ms: 10}
"""

# Guarded: stay while within budget, 5 s (or 3 reports) of dwell, no return within 600 s.
GUARDED = """
label: guarded
dwell: {enabled: true, min_dwell_s: 5, min_reports: 3}
ping_pong: {enabled: true, window_s: 600}
cooldown: {enabled: false}
"""

# Eager: no hysteresis at all.
EAGER = """
label: eager
dwell: {enabled: false}
ping_pong: {enabled: false}
cooldown: {enabled: false}
"""

# (seconds after T0, UE, zone): UE1 oscillates on the za/zb border, crosses, comes back;
# UE2 stays in za, with one report from a cell the topology does not map.
SCRIPT = [
    (0, UE1, "za"),
    (0, UE2, "za"),
    (5, UE2, "none"),
    (10, UE1, "zb"),
    (12, UE1, "za"),
    (14, UE1, "zb"),
    (30, UE2, "za"),
    (40, UE1, "zb"),
    (50, UE1, "za"),
    (60, UE1, "za"),
]


def event(at_s: float, supi: str, zone: str) -> LocationEvent:
    """A polled AMF report of ``supi`` in ``zone``'s cell, ``at_s`` after T0."""
    tac, cell = CELLS[zone]
    return polled_report(supi, tac, cell, T0 + timedelta(seconds=at_s), f"ev-{supi[-2:]}-{at_s:g}")


def script_events() -> list[LocationEvent]:
    """The scenario's events, in order."""
    return [event(at, ue, zone) for at, ue, zone in SCRIPT]


def write_files(directory: Path) -> dict[str, Path]:
    """The topology, both policies and the recording, written under ``directory``."""
    files = {
        "topology": directory / "topology.yaml",
        "guarded": directory / "guarded.yaml",
        "eager": directory / "eager.yaml",
        "recording": directory / "scenario.jsonl.gz",
    }
    files["topology"].write_text(TOPOLOGY)
    files["guarded"].write_text(GUARDED)
    files["eager"].write_text(EAGER)
    with RecordingWriter(files["recording"], kind="events", source={"type": "hand"}) as w:
        for ev in script_events():
            w.write(Item(ev.event_time.timestamp(), ev.ue.key(), event=encode_event(ev)))
    return files
