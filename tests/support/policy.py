"""Policy inputs: the example topology as a mutable document, bundles, events at named places."""

from __future__ import annotations

import copy
import hashlib
from datetime import UTC, datetime
from typing import Any

import yaml

from subscriber.decide.bundle import Bundle, load_bundle
from subscriber.decide.policy import Action, Decision, Running, decide
from subscriber.decide.state import UeState
from subscriber.events import (
    Delivery,
    DnaiChange,
    EventSource,
    LocationEvent,
    NfType,
    UeIdentity,
)
from tests.support.events import POLICY, TOPOLOGY, polled_report

EXAMPLE_TOPOLOGY = TOPOLOGY
EXAMPLE_POLICY = POLICY
_EXAMPLE = yaml.safe_load(EXAMPLE_TOPOLOGY.read_text())

# (rat, tac, cell id) of places in the example topology.
PLACES: dict[str, tuple[str, str, str | None]] = {
    "tower-1": ("NR", "000001", "000000010"),
    "tower-1b": ("NR", "000001", "000000011"),
    "tower-2": ("NR", "000002", "000000020"),
    "tower-3": ("NR", "000003", "000000030"),
    "suburb": ("NR", "000003", "0000000ff"),  # not listed: its tracking area's zone
    "highway": ("NR", "000004", "000000040"),
    "nowhere": ("NR", "0000ff", "0000000aa"),
}
UE = "imsi-208930000000001"


def example_doc() -> dict[str, Any]:
    """A fresh, mutable copy of the example topology."""
    return copy.deepcopy(_EXAMPLE)


def build(doc: dict[str, Any] | None = None, policy: dict[str, Any] | None = None) -> Bundle:
    """A bundle from a topology dict (default: the example) and policy overrides."""
    topology = yaml.safe_dump(doc if doc is not None else _EXAMPLE)
    return load_bundle(topology, yaml.safe_dump(policy) if policy is not None else None)


def set_cluster(doc: dict[str, Any], cluster: str, **changes: Any) -> dict[str, Any]:
    """Change one cluster of a topology dict in place; returns the dict."""
    for c in doc["clusters"]:
        if c["id"] == cluster:
            c.update(changes)
            return doc
    raise KeyError(cluster)


def _event_id(*parts: object) -> str:
    """A content hash as the ingress makes one (32 hex digits), whatever the parts' length."""
    return hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=16).hexdigest()


def at(place: str, t: float, ue: str = UE) -> LocationEvent:
    """A normalized AMF location event for a UE at a named place at time ``t``."""
    rat, tac, cell = PLACES[place]
    when = datetime.fromtimestamp(t, UTC)
    return polled_report(ue, tac, cell, when, _event_id(ue, place, t), rat=rat)


def up_path(dnai: str, t: float, ue: str = UE) -> LocationEvent:
    """A normalized SMF UP_PATH_CH event moving the UE's user plane to ``dnai``."""
    when = datetime.fromtimestamp(t, UTC)
    return LocationEvent(
        event_id=_event_id(ue, dnai, t),
        ue=UeIdentity(supi=ue),
        source=EventSource(nf_type=NfType.SMF, delivery=Delivery.NOTIFIED, event_type="UP_PATH_CH"),
        dnai_change=DnaiChange(change_type="EARLY", target_dnai=dnai),
        event_time=when,
        event_time_field="timeStamp",
        ingest_time=when,
    )


def run_trace(
    bundle: Bundle,
    placement: Running,
    trace: list[tuple[float, str]],
    state: UeState | None = None,
) -> list[Decision]:
    """Feed ``(t, place)`` reports in order; a relocation moves the app at once (as if done)."""
    out = []
    for t, place in trace:
        d = decide(t, bundle, placement, state, at(place, t))
        out.append(d)
        state = d.state
        if d.action is Action.RELOCATE and d.target is not None:
            placement = Running(placement.app, d.target)
    return out
