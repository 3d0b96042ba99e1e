"""The consumer's pure core: decisions, requests and the UE record."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from subscriber.decide.engine import read_bundle
from subscriber.decide.instances import InstanceDoc, parse_instances
from subscriber.decide.policy import Action, Reason
from subscriber.decide.step import (
    UeRecord,
    confirm,
    decode_record,
    encode_record,
    handle_event,
    handle_recheck,
    instance_key,
)
from subscriber.errors import PolicyUnavailable, UndecodableEvent
from tests.support.events import POLICY, T0, TOPOLOGY, crossing, location_event, polled_report

BUNDLE = read_bundle(TOPOLOGY, POLICY)
KUBERNETES_EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "kubernetes" / "topology.yaml"
INSTANCE = InstanceDoc(
    ue="imsi-208930000000001", app="video-analytics", instance="ue1", cluster="edge-1"
)


def _run(events, record=None):  # type: ignore[no-untyped-def]
    handled = []
    for event in events:
        h = handle_event(
            event, record, [INSTANCE], BUNDLE, ue_alias="~alias", app_port=8080, dedup_window=8
        )
        record = h.record
        handled.append(h)
    return handled, record


def test_crossing_gives_exactly_one_request_to_the_new_edge() -> None:
    """A UE that settles under tower 2 yields one request, to edge-2, after the dwell."""
    handled, record = _run(crossing())
    requests = [r for h in handled for r in h.requests]
    assert len(requests) == 1
    (request,) = requests
    assert request.target.cluster == "edge-2"
    assert request.target.address == "127.0.10.2"
    assert request.source is not None
    assert request.source.cluster == "edge-1"
    assert request.ue_key == "~alias"
    assert record.placement_of(instance_key(INSTANCE)) == "edge-2"
    assert [key for key, _, _ in record.unconfirmed] == [instance_key(INSTANCE)]
    assert record.unconfirmed[0][2] == request.request_id
    first_move = next(i for i, h in enumerate(handled) if h.requests)
    assert first_move > 2, "the dwell rule must hold the move back"
    assert all(
        a.decision.action is not Action.RELOCATE for h in handled[:first_move] for a in h.audited
    )


def test_same_events_same_request_ids() -> None:
    """Replaying the same events from the same record gives the same request ids."""
    first = [r.request_id for h in _run(crossing())[0] for r in h.requests]
    second = [r.request_id for h in _run(crossing())[0] for r in h.requests]
    assert first == second


def test_a_redelivered_event_is_a_duplicate() -> None:
    """An event id already in the record changes nothing and decides nothing."""
    event = location_event(0, 1)
    handled, record = _run([event, event])
    assert handled[1].duplicate
    assert handled[1].audited == ()
    assert handled[1].record == record


def test_dedup_window_is_bounded() -> None:
    """The record remembers only the latest event ids."""
    _, record = _run([location_event(n, 1) for n in range(20)])
    assert len(record.seen) == 8
    assert record.seen[-1] == "ev-0001-19"


def test_record_round_trip() -> None:
    """A record survives the changelog encoding unchanged."""
    _, record = _run(crossing())
    assert decode_record(encode_record(record)) == record
    assert decode_record(encode_record(UeRecord())) == UeRecord()


def test_undecodable_record_raises_our_error() -> None:
    """Garbage in the changelog is reported as UndecodableEvent."""
    for garbage in (b"", b"{}", b'{"v": 99}', b"[1]"):
        with pytest.raises(UndecodableEvent):
            decode_record(garbage)


def test_confirm_adopts_the_workflow_placement() -> None:
    """The workflow's placement replaces the belief, and the instance is confirmed."""
    _, record = _run(crossing())
    key = instance_key(INSTANCE)
    reverted = confirm(record, key, "edge-1")
    assert reverted.placement_of(key) == "edge-1"
    assert reverted.unconfirmed == ()


def test_instances_registry_is_checked_against_topology() -> None:
    """Unknown apps or clusters and duplicates are reported with their place in the file."""
    text = (
        "instances:\n"
        "  - {ue: imsi-208930000000001, app: video-analytics, instance: a, cluster: edge-9}\n"
        "  - {ue: imsi-208930000000001, app: nope, instance: a, cluster: edge-1}\n"
        "  - {ue: imsi-208930000000002, app: video-analytics, instance: a, cluster: edge-1}\n"
    )
    with pytest.raises(PolicyUnavailable) as err:
        parse_instances(text, source="i.yaml", topology=BUNDLE.topology)
    message = str(err.value)
    assert "i.yaml:2: instances[0].cluster: unknown cluster 'edge-9' (the topology has: " in message
    assert "i.yaml:3: instances[1].app: unknown application 'nope'" in message
    assert "i.yaml:4: instances[2]: video-analytics/a is already instances[0]" in message
    ok = parse_instances(
        "instances:\n  - {ue: imsi-208930000000001, app: ar-guide, instance: b, cluster: edge-2}\n",
        source="i.yaml",
        topology=BUNDLE.topology,
    )
    assert [i.instance for i in ok.of("imsi-208930000000001")] == ["b"]
    assert ok.of("imsi-208930000000002") == ()


def test_a_single_move_report_is_rechecked_after_the_dwell() -> None:
    """A poller reports a move once; the deferred move is decided at the time the policy named."""
    handled, record = _run([location_event(0, 1), location_event(1, 2)])
    (deferred,) = handled[1].audited
    assert deferred.decision.action is Action.DEFER
    assert record.recheck_at_s == deferred.decision.recheck_at_s
    assert record.recheck_at_s is not None

    again = handle_recheck(
        record.recheck_at_s, record, [INSTANCE], BUNDLE, ue_alias="~alias", app_port=8080
    )
    (request,) = again.requests
    assert request.target.cluster == "edge-2"
    assert request.request_id.startswith("ev-0001-1.recheck-")
    assert again.record.recheck_at_s is None
    assert again.audited[0].decision.decided_at_s == record.recheck_at_s
    same = handle_recheck(
        record.recheck_at_s, record, [INSTANCE], BUNDLE, ue_alias="~alias", app_port=8080
    )
    assert same.requests == again.requests


def test_recheck_before_the_dwell_defers_again() -> None:
    """Looked at too early, the move is deferred again with the same recheck time."""
    _, record = _run([location_event(0, 1), location_event(1, 2)])
    assert record.recheck_at_s is not None
    early = handle_recheck(
        record.recheck_at_s - 1, record, [INSTANCE], BUNDLE, ue_alias="~a", app_port=8080
    )
    assert early.requests == []
    assert early.record.recheck_at_s == record.recheck_at_s


def test_an_unmapped_report_keeps_a_deferred_move() -> None:
    """A UE deferred under tower 2 then reports from a cell the topology does not map: the
    deferral stands, and the recheck at its time moves the app (docs/policy.md)."""
    _, record = _run([location_event(0, 1), location_event(1, 2)])
    due = record.recheck_at_s
    assert due is not None
    unmapped = polled_report(
        "imsi-208930000000001", "00ffff", "00ffff001", T0 + timedelta(seconds=3), "ev-x"
    )
    handled, record = _run([unmapped], record)
    (stay,) = handled[0].audited
    assert stay.decision.reason is Reason.UNKNOWN_CELL
    assert record.recheck_at_s == due
    moved = handle_recheck(due, record, [INSTANCE], BUNDLE, ue_alias="~a", app_port=8080)
    assert [r.target.cluster for r in moved.requests] == ["edge-2"]


def test_a_kubernetes_cluster_without_address_is_moved_to(tmp_path: Path) -> None:
    """A move to a Kubernetes cluster whose address its API reports at deploy is signalled
    (not dropped while the policy counts a cooldown for it), its target's address left open."""
    for name in ("topology.yaml", "web.yaml"):
        shutil.copy(KUBERNETES_EXAMPLE.parent / name, tmp_path)
    doc = yaml.safe_load((tmp_path / "topology.yaml").read_text())
    doc["applications"][0]["latency_budget_ms"] = 5  # edge-a is 8 ms from zone-south
    (tmp_path / "topology.yaml").write_text(yaml.safe_dump(doc))
    bundle = read_bundle(tmp_path / "topology.yaml", POLICY)
    inst = InstanceDoc(ue="imsi-208930000000001", app="ar-guide", instance="ue1", cluster="edge-a")
    record, relocations, requests = None, 0, []
    for event in crossing():
        handled = handle_event(
            event, record, [inst], bundle, ue_alias="~alias", app_port=8080, dedup_window=8
        )
        record = handled.record
        relocations += sum(a.decision.action is Action.RELOCATE for a in handled.audited)
        requests += handled.requests
    assert relocations == 1
    (request,) = requests
    assert (request.target.cluster, request.target.address) == ("edge-b", None)
    assert request.source is not None
    assert (request.source.cluster, request.source.address) == ("edge-a", None)
    assert record is not None
    assert record.placement_of(instance_key(inst)) == "edge-b"
