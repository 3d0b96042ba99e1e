"""The consumer's pure core: decisions, requests and the UE record."""

from __future__ import annotations

import pytest

from subscriber.decide.engine import read_bundle
from subscriber.decide.instances import InstanceDoc, parse_instances
from subscriber.decide.policy import Action
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
from tests.support.events import POLICY, TOPOLOGY, crossing, location_event

BUNDLE = read_bundle(TOPOLOGY, POLICY)
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
        "  - {ue: imsi-1, app: video-analytics, instance: a, cluster: edge-9}\n"
        "  - {ue: imsi-1, app: nope, instance: a, cluster: edge-1}\n"
        "  - {ue: imsi-2, app: video-analytics, instance: a, cluster: edge-1}\n"
    )
    with pytest.raises(PolicyUnavailable) as err:
        parse_instances(text, source="i.yaml", topology=BUNDLE.topology)
    message = str(err.value)
    assert "i.yaml: instances[0].cluster: unknown cluster 'edge-9'" in message
    assert "instances[1].app: unknown application 'nope'" in message
    assert "instances[2]: video-analytics/a is listed twice" in message
    ok = parse_instances(
        "instances:\n  - {ue: imsi-1, app: ar-guide, instance: b, cluster: edge-2}\n",
        source="i.yaml",
        topology=BUNDLE.topology,
    )
    assert [i.instance for i in ok.of("imsi-1")] == ["b"]
    assert ok.of("imsi-2") == ()


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


def test_prewarming_through_the_step() -> None:
    """A learned tower 1 -> 2 warms edge-2 on a tower-1 report; arriving moves at once, warm."""
    from subscriber.decide.prewarm import Prewarming, Verdict
    from tests.support.policy import at, build

    bundle = build(policy={"prewarm": {"enabled": True}})
    assert bundle.rules.prewarm is not None
    warming = Prewarming(bundle.rules.prewarm)
    for i in range(6):
        warming.model.learn(["zone-tower-1", "zone-tower-2"], 10.0 * i, stayed_s=60.0)
    ue = INSTANCE.ue

    def step(event, record):  # type: ignore[no-untyped-def]
        return handle_event(
            event,
            record,
            [INSTANCE],
            bundle,
            ue_alias="~alias",
            app_port=8080,
            dedup_window=8,
            warming=warming,
        )

    first = step(at("tower-1", 100.0, ue=ue), None)
    (warm,) = first.prewarms
    assert (warm.verdict, warm.target, warm.ue) == (Verdict.PREWARM, "edge-2", "~alias")
    assert first.requests == []
    again = step(at("tower-1", 110.0, ue=ue), first.record)
    assert again.prewarms == ()  # already warm: quiet, not audited
    arrived = step(at("tower-2", 130.0, ue=ue), again.record)
    (request,) = arrived.requests
    assert request.reasons == ("RELOCATE_PREWARMED",)
    assert request.target.cluster == "edge-2"
    used = arrived.prewarms[0]
    assert (used.verdict, used.warm_s) == (Verdict.USED, 30.0)
    assert warming.pool.stats.hits == 1


def test_without_prewarming_the_step_is_unchanged() -> None:
    """The same reports with pre-warming off wait for the dwell, and carry no pre-warm records."""
    from tests.support.policy import at

    handled, _ = _run([at("tower-1", 100.0, ue=INSTANCE.ue), at("tower-2", 130.0, ue=INSTANCE.ue)])
    assert [h.requests for h in handled] == [[], []]
    assert all(h.prewarms == () for h in handled)
