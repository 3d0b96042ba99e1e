"""The path changes a workflow keeps: bounded, and read from a mark on."""

from __future__ import annotations

from subscriber.act.steering import PathChange, PathChanges


def _change(n: int) -> PathChange:
    return PathChange(app="a", instance="i", change_type="LATE", target_dnai=f"d{n}")


def test_since_a_mark_gives_only_later_changes_even_past_the_bound() -> None:
    """Changes after the mark come back in order; past 100 kept, the oldest are dropped."""
    changes = PathChanges()
    for n in range(3):
        changes.add(_change(n))
    mark = changes.received
    assert changes.since(mark) == []
    changes.add(_change(3))
    assert [c.target_dnai for c in changes.since(mark)] == ["d3"]
    for n in range(4, 250):
        changes.add(_change(n))
    assert len(changes.items) == 100
    assert [c.target_dnai for c in changes.since(changes.received - 2)] == ["d248", "d249"]
    assert len(changes.since(mark)) == 100
