"""Per-UE state: tracking, bounded rings, compact bytes and the in-memory store."""

from __future__ import annotations

import pytest

from subscriber.decide.state import (
    LEFT_CLUSTERS,
    MAX_APPS,
    RECENT_ZONES,
    AppTrack,
    UeState,
    decode_state,
    encode_state,
    observe,
    record,
)
from subscriber.errors import UndecodableEvent


def _full() -> UeState:
    state = observe(None, 0.0, "zone-tower-000")
    for i in range(1, 50):
        state = observe(state, float(i), f"zone-tower-{i % 20:03d}")
        for a in range(MAX_APPS):
            state = record(
                state,
                f"application-{a}",
                "relocate",
                "PING_PONG_SUPPRESSED",
                i + 0.125,
                source=f"edge-cluster-{i:03d}",
            )
    return state


def test_observe_counts_reports_and_resets_on_zone_change() -> None:
    """Reports in the same zone count up; a new zone restarts the dwell."""
    s = observe(None, 10.0, "a")
    s = observe(s, 11.0, "a")
    assert (s.zone, s.zone_since_s, s.zone_reports, s.last_seen_s) == ("a", 10.0, 2, 11.0)
    s = observe(s, 12.0, "b")
    assert (s.zone, s.zone_since_s, s.zone_reports) == ("b", 12.0, 1)
    assert s.recent == (("a", 10.0), ("b", 12.0))


def test_observe_unmapped_keeps_zone_tracking() -> None:
    """A report from an unmapped cell only moves last_seen."""
    s = observe(observe(None, 10.0, "a"), 11.0, None)
    assert (s.zone, s.zone_since_s, s.zone_reports, s.last_seen_s) == ("a", 10.0, 1, 11.0)
    assert observe(None, 5.0, None).zone is None


def test_record_remembers_relocations_for_cooldown_and_ping_pong() -> None:
    """A relocation records the cluster left and when; other outcomes keep them."""
    s = observe(None, 0.0, "a")
    s = record(s, "app", "relocate", "RELOCATE_BEST_CANDIDATE", 5.0, source="edge-1")
    s = record(s, "app", "stay", "CURRENT_OK", 6.0, source="edge-2")
    assert s.track("app") == AppTrack("app", (("edge-1", 5.0),), 5.0, "stay", "CURRENT_OK", 6.0)
    assert s.track("other") is None


def test_state_is_bounded() -> None:
    """Rings never grow past their size, however long the history."""
    s = _full()
    assert len(s.recent) == RECENT_ZONES
    assert len(s.apps) == MAX_APPS
    assert all(len(t.left) == LEFT_CLUSTERS for t in s.apps)
    for extra in ("late-1", "late-2"):
        s = record(s, extra, "stay", "CURRENT_OK", 100.0, source="edge-1")
    assert len(s.apps) == MAX_APPS
    assert [t.app for t in s.apps][-2:] == ["late-1", "late-2"]
    assert s.track("application-0") is None  # the least recently changed app is forgotten


def test_serialized_state_fits_in_one_kib() -> None:
    """A full state with long ids still encodes to at most 1 KiB."""
    assert len(encode_state(_full())) <= 1024


@pytest.mark.parametrize(
    "state",
    [
        UeState(None, 1.0, 0, 1.0),
        observe(None, 1.5, "z"),
        _full(),
    ],
)
def test_encode_decode_round_trip(state: UeState) -> None:
    """Decoding the bytes gives back an equal state."""
    assert decode_state(encode_state(state)) == state


@pytest.mark.parametrize(
    "data", [b"", b"{}", b"[2,null,0,0,0,[],[]]", b'[1,null,0,0,0,["a"],[]]', b"[1]"]
)
def test_undecodable_state_raises(data: bytes) -> None:
    """Garbage or a future format is refused with UndecodableEvent."""
    with pytest.raises(UndecodableEvent):
        decode_state(data)
