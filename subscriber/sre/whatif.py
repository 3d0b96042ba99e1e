"""``subscriber shadow``: reads a recording, runs the policies (:mod:`.shadow`), writes reports.

UEs share the clusters' capacity (every move uses some up, :mod:`subscriber.decide.ledger`), so
one policy's run sees every UE in time order, in one process. Two policies are independent:
with ``--workers 2`` each runs in its own process. The result is the same for any ``--workers``.

The end of the recording (where rechecks stop and latency-budget time is counted up to) is the
latest item time: the header's ``end``, or the last ``t`` of a capture file.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from subscriber.decide.bundle import Bundle
from subscriber.decide.engine import read_bundle
from subscriber.decide.instances import parse_instances
from subscriber.errors import InvalidCallback, PolicyUnavailable, UndecodableEvent
from subscriber.events import LocationEvent, decode_event
from subscriber.options import ShadowOptions
from subscriber.settings import Settings
from subscriber.sre import report
from subscriber.sre.findings import Inputs, summarize
from subscriber.sre.recording import BadRecording, Header, Item, open_recording
from subscriber.sre.shadow import (
    InstancesFor,
    Outcome,
    ShadowEngine,
    auto_instances,
    registry_instances,
)


def _kind_of(path: str) -> Any:
    from subscriber.ingress.normalize import BodyKind

    return {
        "amf": BodyKind.AMF_NOTIFICATION,
        "smf": BodyKind.SMF_NOTIFICATION,
        "nef": BodyKind.NEF_NOTIFICATION,
    }.get(path.removeprefix("/callbacks/").partition("/")[0])


def _events_of(item: Item) -> Sequence[LocationEvent]:
    if item.event is not None:
        return (decode_event(item.event),)
    from subscriber.ingress.normalize import normalize_body

    assert item.callback is not None
    kind = _kind_of(item.callback.path)
    if kind is None:
        return ()
    at = item.callback.received_at or datetime.fromtimestamp(item.t, UTC)
    try:
        return normalize_body(kind, item.callback.body, ingest_time=at).events
    except InvalidCallback:
        return ()


def iter_events(path: Path, *, ue: str | None = None) -> Iterator[LocationEvent]:
    """The events of a recording, in order; a callbacks recording goes through the normalizer.

    Callbacks the receiver would refuse (bad body, unknown kind) are left out, as it would.

    Args:
        path: the recording or capture file.
        ue: keep this UE only.
    """
    with open_recording(path) as rec:
        for item in rec:
            # Events are keyed by UE in the file: skip other UEs before decoding.
            if item.event is not None and ue is not None and item.ue != ue:
                continue
            try:
                events = _events_of(item)
            except UndecodableEvent as exc:
                raise BadRecording(f"{path}:{rec.line}: event: {exc}") from exc
            for event in events:
                if ue is None or event.ue.key() == ue:
                    yield event


def recorded_events(path: Path) -> tuple[Header, list[LocationEvent]]:
    """The header and every event of a recording (see :func:`iter_events`)."""
    with open_recording(path) as rec:
        header = rec.header
    return header, list(iter_events(path))


def recording_span(path: Path) -> tuple[Header, float, float]:
    """The header and the first and last item times (read from the items when not in it)."""
    with open_recording(path) as rec:
        header = rec.header
        if header.start is not None and header.end is not None:
            return header, header.start.timestamp(), header.end.timestamp()
        times = [item.t for item in rec]
    return header, min(times, default=0.0), max(times, default=0.0)


@dataclass(frozen=True, slots=True)
class Job:
    """One shard's work, as a worker process receives it."""

    recording: Path
    topology: Path
    policies: tuple[tuple[str, Path | None], ...]
    instances_file: Path | None
    apps: tuple[str, ...]
    flip_window_s: float
    end_s: float


def bundles_of(job: Job) -> list[Bundle]:
    """The bundle of each policy of the job, in order."""
    return [read_bundle(job.topology, policy) for _, policy in job.policies]


def instances_of(job: Job, bundles: Sequence[Bundle]) -> InstancesFor:
    """Who runs what: the instances file, or every listed app on policy A's best cluster."""
    if job.instances_file is not None:
        registry = parse_instances(
            job.instances_file.read_bytes(),
            source=str(job.instances_file),
            topology=bundles[0].topology,
        )
        return registry_instances(registry)
    return auto_instances(bundles[0], job.apps or tuple(bundles[0].topology.apps))


def run_job(job: Job) -> list[Outcome]:
    """Run every policy of the job over the recording (in a worker process, or here).

    The policies advance in lockstep over one pass of the file, so no event is kept.
    """
    bundles = bundles_of(job)
    instances_for = instances_of(job, bundles)
    engines = [
        ShadowEngine(bundle, instances_for, label=label, alias=str, flip_window_s=job.flip_window_s)
        for bundle, (label, _) in zip(bundles, job.policies, strict=True)
    ]
    feeds = [engine.feed for engine in engines]
    for event in iter_events(job.recording):
        for feed in feeds:
            feed(event)
    return [engine.finish(job.end_s) for engine in engines]


def run_policies(job: Job, workers: int) -> list[Outcome]:
    """Run ``job``: with ``workers`` > 1 and two policies, each in its own process."""
    if workers <= 1 or len(job.policies) < 2:
        return run_job(job)
    import multiprocessing

    jobs = [replace(job, policies=(policy,)) for policy in job.policies]
    with ProcessPoolExecutor(len(jobs), mp_context=multiprocessing.get_context("spawn")) as pool:
        return [outcomes[0] for outcomes in pool.map(run_job, jobs)]


def _serving(doc: Mapping[str, Any], timeline: Mapping[str, Any]) -> list[Series]:
    """The watched UE's cell, and the cluster of its busiest instance under each policy."""
    cells: Series = ("cell", [])
    for label, trail in timeline["trail"].items():
        if not cells[1]:
            cells[1].extend((e["t"], f"{e['where']} ({e['zone']})") for e in trail if "where" in e)
        del label
    series = [cells]
    moves = {
        label: [m for m in doc["moves"][label] if m["ue"] == timeline["ue"]]
        for label in timeline["start"]
    }
    busiest = Counter(m["instance"] for ms in moves.values() for m in ms)
    t0 = cells[1][0][0] if cells[1] else 0.0
    for label, start in timeline["start"].items():
        if not start:
            continue
        first = max(sorted(start), key=lambda k: busiest[k])
        app = first.partition("/")[0]
        points = [(t0, f"{app} on {start[first]}")]
        points += [
            (m["t"], f"{app} on {m['target']}") for m in moves[label] if m["instance"] == first
        ]
        series.append((f"serving cluster, {label}", points))
    return series


Series = tuple[str, list[tuple[float, str]]]


def plots_of(
    doc: Mapping[str, Any], outcomes: Sequence[Outcome], span: tuple[float, float]
) -> dict[str, str]:
    """The report's SVG plots: each watched UE over time, moves over time, time out of budget."""
    t0, t1 = span
    plots = {
        f"ue_timeline_{i}": report.step_chart(
            _serving(doc, timeline),
            t0,
            t1,
            title="cell and cluster",
            colors=("#999999", *report.COLORS),
        )
        for i, timeline in enumerate(doc["timelines"])
    }
    plots["relocations"] = report.line_chart(
        [
            (
                o.label,
                [
                    (t0, 0.0),
                    *((t, float(i + 1)) for i, t in enumerate(o.relocation_times)),
                    (t1, float(len(o.relocation_times))),
                ],
            )
            for o in outcomes
        ],
        t0,
        t1,
        title="relocations over time",
    )
    plots["budget"] = report.bar_chart(
        [b[0] for b in report.BUDGET_BINS],
        [(o.label, report.histogram(list(o.out_of_budget_s.values()))) for o in outcomes],
        title="time out of budget per instance",
    )
    return plots


def _topology_file(settings: Settings, given: Path | None) -> Path:
    """``--topology``, else the daemon's ``policy.topology_file`` (said on stderr); never the
    example in silence: a recording of another network would just map to no zone."""
    if given is not None:
        return given
    configured = settings.policy.topology_file
    if configured is None:
        raise PolicyUnavailable(
            "shadow needs the topology of the recording's network: give --topology FILE "
            "(or set policy.topology_file); the example is subscriber/data/topology.example.yaml"
        )
    print(f"subscriber: shadow: topology {configured} (policy.topology_file)", file=sys.stderr)
    return configured


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def inputs_of(
    job: Job, bundles: Sequence[Bundle], header: Header, span: tuple[float, float], note: str
) -> Inputs:
    """The files of a run, for the top of the reports."""
    topology = bundles[0].topology
    return Inputs(
        recording={
            "path": str(job.recording),
            "kind": header.kind,
            "source": header.source,
            "start": datetime.fromtimestamp(span[0], UTC).isoformat(),
            "end": datetime.fromtimestamp(span[1], UTC).isoformat(),
        },
        topology={
            "path": str(job.topology),
            "sha256": _digest(job.topology),
            "plmn": f"{topology.plmn[:3]}/{topology.plmn[3:]}",
        },
        policies=[
            {
                "label": label,
                "path": str(path) if path is not None else None,
                "sha256": _digest(path) if path is not None else None,
                "version": bundle.version,
            }
            for (label, path), bundle in zip(job.policies, bundles, strict=True)
        ],
        instances=note,
    )


def run(settings: Settings, options: ShadowOptions) -> int:
    """``subscriber shadow``: evaluate one or two policies over a recording, write the reports."""
    from subscriber.logs import pseudonym

    topology = _topology_file(settings, options.topology)
    policies: list[tuple[str, Path | None]] = [(options.policy.stem, options.policy)]
    if options.policy_b is not None:
        label_b = options.policy_b.stem if options.policy_b.stem != options.policy.stem else "B"
        policies.append((label_b, options.policy_b))
    instances_file: Path | None = options.instances or settings.act.instances_file
    header, t0, t1 = recording_span(options.recording)
    job = Job(
        recording=options.recording,
        topology=topology,
        policies=tuple(policies),
        instances_file=instances_file,
        apps=tuple(options.app or ()),
        flip_window_s=options.flip_window,
        end_s=t1,
    )
    bundles = bundles_of(job)  # parsed here first, so a bad file fails before any work
    instances_of(job, bundles)
    unknown = sorted(set(job.apps) - set(bundles[0].topology.apps))
    if unknown:
        raise PolicyUnavailable(f"{topology}: no application named {', '.join(unknown)}")
    outcomes = run_policies(job, options.workers or min(2, os.cpu_count() or 1))
    if instances_file is not None:
        note = f"from {instances_file} (sha256 {_digest(instances_file)})"
    else:
        apps = ", ".join(job.apps or tuple(bundles[0].topology.apps))
        note = f"made up: one instance per UE of {apps}, started on the best cluster (policy A)"
    inputs = inputs_of(job, bundles, header, (t0, t1), note)
    name = str if options.clear_ids else pseudonym
    watch = list(options.ue or ())
    doc = summarize(outcomes, inputs, name=name, watch=watch)
    for warning in doc["warnings"]:
        print(f"subscriber: shadow: warning: {warning}", file=sys.stderr)
    if options.html is not None:
        page = report.render_html(doc, plots_of(doc, outcomes, (t0, t1)))
        options.html.write_text(page, encoding="utf-8")
    text = orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode()
    if options.json is not None:
        options.json.write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return 0
