"""Per-UE state for hysteresis, bounded in size and stored as compact bytes.

A :class:`UeState` holds what the policy must remember about one UE between its events: the zone
it is in, since when and for how many reports, its last zone changes, and per application the
clusters it left recently (for ping-pong), its last relocation (for cooldown) and its last
decision. Every sequence is a fixed-size ring, so a state never grows past a few hundred bytes.

States are immutable named tuples of strings and numbers: cheap to build, and the garbage
collector stops tracking them, which matters with a million of them in memory. :func:`observe`
and :func:`record` return new ones. :func:`encode_state`
gives the bytes the consumer keeps in its UE record (:mod:`subscriber.decide.step`), which goes to
a Kafka compacted changelog keyed by UE (see docs/policy.md).
"""

from __future__ import annotations

from sys import intern
from typing import Any, NamedTuple

import orjson

from subscriber.errors import UndecodableEvent

RECENT_ZONES = 6
LEFT_CLUSTERS = 4
MAX_APPS = 4
STATE_FORMAT = 1

RELOCATE = "relocate"

# Builds a named tuple from a ready tuple, skipping the generated Python-level __new__: half the
# cost, on a path taken several times per decision.
_new = tuple.__new__


class AppTrack(NamedTuple):
    """What the policy remembers about one application of a UE.

    Attributes:
        app: the application.
        left: the clusters it was moved away from, ``(cluster, left_at_s)``, newest last.
        last_relocation_s: when it was last relocated.
        last_action: the action of its latest decision.
        last_reason: the reason of its latest decision.
        outcome_since_s: since when that (action, reason) has been the outcome.
    """

    app: str
    left: tuple[tuple[str, float], ...] = ()
    last_relocation_s: float | None = None
    last_action: str = ""
    last_reason: str = ""
    outcome_since_s: float | None = None


class UeState(NamedTuple):
    """What the policy remembers about one UE.

    Attributes:
        zone: the zone of the last mapped report.
        zone_since_s: when the UE entered that zone (the dwell start).
        zone_reports: reports received in that zone since entering it.
        last_seen_s: time of the latest report, mapped or not.
        recent: the last zone changes, ``(zone, entered_at_s)``, newest last.
        apps: per application, least recently changed first.
    """

    zone: str | None
    zone_since_s: float
    zone_reports: int
    last_seen_s: float
    recent: tuple[tuple[str, float], ...] = ()
    apps: tuple[AppTrack, ...] = ()

    def track(self, app: str) -> AppTrack | None:
        """The remembered facts about ``app``, if any."""
        for t in self.apps:
            if t.app == app:
                return t
        return None


def observe(state: UeState | None, now_s: float, zone: str | None) -> UeState:
    """Account for one location report.

    Args:
        state: the UE's state before the report, None for a UE never seen.
        now_s: the report's event time.
        zone: the zone the report maps to; None keeps the zone tracking as it was.
    """
    if state is None:
        if zone is None:
            return UeState(None, now_s, 0, now_s)
        return _new(UeState, (zone, now_s, 1, now_s, ((zone, now_s),), ()))
    if zone is None:
        return UeState(
            state.zone,
            state.zone_since_s,
            state.zone_reports,
            now_s,
            state.recent,
            state.apps,
        )
    if zone == state.zone:
        if now_s == state.last_seen_s:
            return state  # the same report delivered twice
        return _new(
            UeState,
            (zone, state.zone_since_s, state.zone_reports + 1, now_s, state.recent, state.apps),
        )
    recent = (*state.recent, (zone, now_s))[-RECENT_ZONES:]
    return UeState(zone, now_s, 1, now_s, recent, state.apps)


def record(
    state: UeState,
    app: str,
    action: str,
    reason: str,
    now_s: float,
    *,
    source: str,
) -> UeState:
    """Remember a decision about ``app``.

    Args:
        state: the UE's state.
        app: the application decided about.
        action: ``stay``, ``relocate`` or ``defer``.
        reason: the decision's reason code.
        now_s: the decision time.
        source: the cluster the app ran on; remembered as left when the action is a relocation.
    """
    apps = state.apps
    old = None
    for t in apps:
        if t.app == app:
            old = t
            break
    if old is None:
        left: tuple[tuple[str, float], ...] = ()
        last_relocation_s = None
    else:
        left, last_relocation_s = old.left, old.last_relocation_s
    if action == RELOCATE:
        left = (*left, (source, now_s))[-LEFT_CLUSTERS:]
        last_relocation_s = now_s
    track = _new(AppTrack, (app, left, last_relocation_s, action, reason, now_s))
    if old is None:
        apps = (*apps, track)[-MAX_APPS:] if apps else (track,)
    elif len(apps) == 1:
        apps = (track,)
    else:
        apps = (*[t for t in apps if t is not old], track)
    return _new(
        UeState,
        (state.zone, state.zone_since_s, state.zone_reports, state.last_seen_s, state.recent, apps),
    )


def _flat(pairs: tuple[tuple[str, float], ...]) -> list[Any]:
    return [x for pair in pairs for x in pair]


def _name(value: Any) -> str:
    # Zone, cluster, app and reason names repeat across millions of states: share one copy.
    return intern(str(value))


def _pairs(flat: list[Any]) -> tuple[tuple[str, float], ...]:
    if len(flat) % 2:
        raise ValueError("odd pair list")
    return tuple((_name(flat[i]), float(flat[i + 1])) for i in range(0, len(flat), 2))


def encode_state(state: UeState) -> bytes:
    """Compact bytes for a changelog record: positional JSON arrays, no field names."""
    apps = [
        [t.app, _flat(t.left), t.last_relocation_s, t.last_action, t.last_reason, t.outcome_since_s]
        for t in state.apps
    ]
    return orjson.dumps(
        [
            STATE_FORMAT,
            state.zone,
            state.zone_since_s,
            state.zone_reports,
            state.last_seen_s,
            _flat(state.recent),
            apps,
        ]
    )


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def decode_state(data: bytes) -> UeState:
    """Parse the bytes of :func:`encode_state`.

    Raises:
        UndecodableEvent: not a state of a known format.
    """
    try:
        fmt, zone, since, reports, seen, recent, apps = orjson.loads(data)
        if fmt != STATE_FORMAT:
            raise ValueError(f"format {fmt!r}")
        tracks = tuple(
            AppTrack(
                _name(app),
                _pairs(left),
                _opt_float(reloc),
                _name(action),
                _name(reason),
                _opt_float(outcome_since),
            )
            for app, left, reloc, action, reason, outcome_since in apps
        )
        return UeState(
            None if zone is None else _name(zone),
            float(since),
            int(reports),
            float(seen),
            _pairs(recent),
            tracks,
        )
    except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
        raise UndecodableEvent(f"not a UE state v{STATE_FORMAT}: {exc}") from exc
