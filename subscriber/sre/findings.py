"""What a shadow run found, as the JSON document both reports are made of.

Pure: takes the outcomes of :mod:`subscriber.sre.shadow` and the names of the files used,
returns plain data. :mod:`subscriber.sre.report` draws the HTML from the same document, so the
two reports never disagree. UE keys are shown through ``name`` (a pseudonym unless the SRE asks
for clear ids).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from subscriber.sre.shadow import Outcome, compare, differing_ues

Name = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class Inputs:
    """The files a run used, named at the top of every report.

    Attributes:
        recording: path, kind, source, count, start and end of the recording.
        topology: path and content version of the topology.
        policies: per policy: label, path (None: the defaults), version of the bundle.
        instances: the instances file's path, or how instances were made up.
    """

    recording: Mapping[str, Any]
    topology: Mapping[str, Any]
    policies: Sequence[Mapping[str, Any]]
    instances: str


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")


def warnings_of(outcomes: Sequence[Outcome], inputs: Inputs) -> list[str]:
    """What makes the results suspect, one sentence each."""
    out = []
    first = outcomes[0]
    if first.events and not first.mapped_events:
        out.append(
            f"none of the {first.events} events falls in a zone of {inputs.topology['path']} "
            f"(PLMN {inputs.topology.get('plmn', '?')}): is it the topology of the recording's "
            "network?"
        )
    if first.events and not first.start_by_ue:
        out.append(f"no UE of the recording has an instance ({inputs.instances})")
    for outcome in outcomes:
        if outcome.unactionable:
            total = sum(outcome.unactionable.values())
            kinds = "; ".join(f"{k} ({n})" for k, n in outcome.unactionable.most_common(3))
            more = ", ..." if len(outcome.unactionable) > 3 else ""
            out.append(
                f"{outcome.label}: {total} decisions could not be carried out: {kinds}{more}"
            )
    return out


def _move(move: Mapping[str, Any], name: Name) -> dict[str, Any]:
    return {"time": _iso(move["t"]), **move, "ue": name(move["ue"])}


def _trail_entry(entry: Sequence[Any]) -> dict[str, Any]:
    t, kind = entry[0], entry[1]
    if kind == "where":
        return {"time": _iso(t), "t": t, "where": entry[2], "zone": entry[3] or "unmapped"}
    instance, action, reason, source, target, trigger, why = entry[2:9]
    out = {"time": _iso(t), "t": t, "instance": instance, "action": action, "reason": reason}
    out |= {"from": source, "to": target, "trigger": trigger}
    if why is not None:
        out["cannot_act"] = why
    return out


def watched_ues(outcomes: Sequence[Outcome], differing: Sequence[str]) -> list[str]:
    """The UE worth a timeline when none is asked for: the differing one that moved most,
    else the one that moved most, else the first seen."""
    if differing:
        return [
            max(differing, key=lambda ue: sum(len(o.moves_by_ue.get(ue, [])) for o in outcomes))
        ]
    moves = Counter({ue: len(m) for ue, m in outcomes[0].moves_by_ue.items()})
    if moves:
        return [min(moves, key=lambda ue: (-moves[ue], ue))]
    return list(outcomes[0].start_by_ue)[:1]


def summarize(
    outcomes: Sequence[Outcome],
    inputs: Inputs,
    *,
    name: Name,
    watch: Sequence[str] = (),
) -> dict[str, Any]:
    """The whole document: inputs first, then warnings, totals, what could not be done, every
    move in detail, the watched UEs' timelines, and the comparison of two policies.

    Args:
        outcomes: one per policy.
        inputs: the files used.
        name: how to show a UE key.
        watch: UE keys to give a timeline (default: see :func:`watched_ues`).
    """
    doc: dict[str, Any] = {
        "inputs": {
            "recording": dict(inputs.recording),
            "topology": dict(inputs.topology),
            "policies": [dict(p) for p in inputs.policies],
            "instances": inputs.instances,
        },
        "warnings": warnings_of(outcomes, inputs),
        "policies": [o.summary() for o in outcomes],
    }
    differing: list[str] = []
    if len(outcomes) == 2:
        differing = differing_ues(outcomes[0], outcomes[1])
        doc["comparison"] = compare(outcomes[0], outcomes[1], {ue: name(ue) for ue in differing})
    doc["cannot_act"] = {
        o.label: {
            "total": sum(o.unactionable.values()),
            "by_kind": dict(o.unactionable.most_common()),
            "examples": [
                {**e, "time": _iso(e["t"]), "ue": name(e["ue"])} for e in o.unactionable_examples
            ],
        }
        for o in outcomes
    }
    doc["moves"] = {
        o.label: [
            _move(m, name)
            for m in sorted(
                (m for moves in o.moves_by_ue.values() for m in moves),
                key=lambda m: (m["t"], m["ue"], m["instance"]),
            )
        ]
        for o in outcomes
    }
    keys = list(watch) or watched_ues(outcomes, differing)
    doc["timelines"] = [
        {
            "ue": name(key),
            "start": {o.label: o.start_by_ue.get(key, {}) for o in outcomes},
            "trail": {o.label: [_trail_entry(e) for e in o.trails.get(key, [])] for o in outcomes},
        }
        for key in keys
    ]
    return doc
