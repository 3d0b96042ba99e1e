"""The consumer's pure core: decisions, requests and the UE record."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from subscriber.decide.bundle import Bundle, load_bundle
from subscriber.decide.engine import read_bundle
from subscriber.decide.instances import InstanceDoc, parse_instances
from subscriber.decide.ledger import Ledger
from subscriber.decide.policy import Action, Reason
from subscriber.decide.step import (
    UeRecord,
    apply_outcome,
    confirm,
    decode_record,
    encode_record,
    handle_evacuation,
    handle_event,
    handle_recheck,
    instance_key,
    quiet_remainder,
    release,
    reserve,
)
from subscriber.decide.topology import parse_topology
from subscriber.errors import PolicyUnavailable, UndecodableEvent
from subscriber.events import EVENT_ID_MAX, LocationEvent
from subscriber.relocation import MoveOutcome, OutcomeReport, Status, Steering
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


def test_the_request_carries_the_app_steering() -> None:
    """An app steered by traffic influence says so in its request, with the DNAIs of the
    clusters it leaves and goes to; DNS apps leave it unset."""
    (request,) = [r for h in _run(crossing())[0] for r in h.requests]
    assert request.steering is None
    doc = yaml.safe_load(TOPOLOGY.read_text())
    doc["applications"][0]["steering"] = {"via": "traffic_influence", "confirm_deadline_s": 4}
    bundle = Bundle(parse_topology(yaml.safe_dump(doc)), BUNDLE.rules, BUNDLE.version)
    record = None
    requests = []
    for event in crossing():
        h = handle_event(
            event, record, [INSTANCE], bundle, ue_alias="~a", app_port=8080, dedup_window=8
        )
        record, requests = h.record, requests + h.requests
    (request,) = requests
    assert request.steering is not None
    assert (request.steering.via, request.steering.confirm_deadline_s) == (
        Steering.TRAFFIC_INFLUENCE,
        4.0,
    )
    assert (request.steering.source_dnai, request.steering.target_dnai) == (
        "mec-tower-1",
        "mec-tower-2",
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


def _at(event: LocationEvent, event_time: datetime) -> LocationEvent:
    """``event`` reported with another event time (its ingest time unchanged)."""
    return event.model_copy(update={"event_time": event_time})


def test_a_far_future_event_is_decided_at_its_ingest_time() -> None:
    """A report dated 2099 does not freeze the UE: it is decided at its ingest time, and every
    later real report is decided as usual, not STALE_EVENT."""
    future = _at(location_event(0, 1), datetime(2099, 1, 1, tzinfo=UTC))
    handled, record = _run([future, *[location_event(n, 1) for n in range(1, 4)]])
    assert handled[0].clamped
    assert handled[0].audited[0].decision.decided_at_s == future.ingest_time.timestamp()
    assert all(h.audited[0].decision.reason is Reason.CURRENT_OK for h in handled)
    assert record.state is not None
    assert record.state.last_seen_s == location_event(3, 1).event_time.timestamp()


def test_a_state_poisoned_by_the_future_is_dropped() -> None:
    """A stored state whose last report lies beyond the skew (written before the rule, or after
    a restart) is dropped instead of making every report stale."""
    _, record = _run([location_event(0, 1)])
    assert record.state is not None
    poisoned = UeRecord(
        state=record.state._replace(last_seen_s=datetime(2099, 1, 1, tzinfo=UTC).timestamp()),
        seen=record.seen,
    )
    restored = decode_record(encode_record(poisoned))
    (handled,), record = _run([location_event(5, 1)], restored)
    assert handled.audited[0].decision.reason is Reason.CURRENT_OK
    assert record.state is not None
    assert record.state.last_seen_s == location_event(5, 1).event_time.timestamp()


def test_an_event_time_within_the_skew_is_believed() -> None:
    """A clock a little ahead (within act.max_event_time_skew_s) is not clamped."""
    event = location_event(0, 1)
    ahead = _at(event, event.ingest_time + timedelta(seconds=30))
    (handled,), _ = _run([ahead])
    assert not handled.clamped
    assert handled.audited[0].decision.decided_at_s == ahead.event_time.timestamp()


def test_a_late_report_keeps_a_deferred_move_due() -> None:
    """A deferral's recheck survives a report older than the UE's latest (STALE_EVENT)."""
    handled, record = _run([location_event(0, 1), location_event(10, 2)])
    assert handled[1].audited[0].decision.reason is Reason.DWELL_NOT_REACHED
    due = record.recheck_at_s
    assert due is not None
    (late,), after = _run([location_event(5, 1)], record)
    assert late.audited[0].decision.reason is Reason.STALE_EVENT
    assert after.recheck_at_s == due
    again = handle_recheck(due, after, [INSTANCE], BUNDLE, ue_alias="~a", app_port=8080)
    assert [r.target.cluster for r in again.requests] == ["edge-2"]


def test_an_id_too_long_for_a_request_raises_our_error() -> None:
    """An event whose id cannot make a request id (250 characters) raises UndecodableEvent,
    so the consumer dead-letters it; the event model itself refuses such an id at decode."""
    events = crossing()
    handled, _ = _run(events)
    moving = next(i for i, h in enumerate(handled) if h.requests)
    _, record = _run(events[:moving])
    long = events[moving].model_copy(update={"event_id": "x" * 250})
    with pytest.raises(UndecodableEvent, match="request_id"):
        handle_event(long, record, [INSTANCE], BUNDLE, ue_alias="~a", app_port=8080, dedup_window=8)


def test_the_longest_valid_event_id_makes_a_request_for_the_longest_instance() -> None:
    """An event id at the contract's limit (EVENT_ID_MAX), for an instance name at the DNS
    label limit, still makes a request: no event the published schema accepts is dead-lettered
    for the length of its id."""
    events = crossing()
    longest = InstanceDoc(ue=INSTANCE.ue, app=INSTANCE.app, instance="i" * 63, cluster="edge-1")
    record = None
    requests = []
    for n, event in enumerate(events):
        event = event.model_copy(update={"event_id": f"{n:0{EVENT_ID_MAX}d}"})
        h = handle_event(
            event, record, [longest], BUNDLE, ue_alias="~a", app_port=8080, dedup_window=8
        )
        record = h.record
        requests += h.requests
    (request,) = requests
    assert len(request.event_id) == EVENT_ID_MAX
    assert len(request.request_id) > EVENT_ID_MAX + 63


def _move(record: UeRecord) -> tuple[str, float, str]:
    (awaited,) = record.unconfirmed
    return awaited


def _report(
    record: UeRecord, status: Status, placement: str, *, settled: bool = True, **fields: object
) -> OutcomeReport:
    key, at_s, request_id = _move(record)
    app, _, instance = key.partition("/")
    return OutcomeReport(
        app=app,
        instance=instance,
        ue_key="~alias",
        partition=0,
        decided_at=datetime.fromtimestamp(at_s, UTC),
        placement=placement,
        settled=settled,
        outcome=MoveOutcome.model_validate(
            {"request_id": request_id, "status": status, "target_cluster": "edge-2", **fields}
        ),
    )


def test_a_completed_move_is_confirmed_and_its_source_given_back() -> None:
    """The workflow's outcome confirms the placement and frees the source's capacity, once."""
    _, record = _run(crossing())
    report = _report(record, Status.COMPLETED, "edge-2", source_cluster="edge-1")
    applied = apply_outcome(record, report)
    assert applied is not None
    assert applied.record.unconfirmed == ()
    assert applied.record.placement_of(instance_key(INSTANCE)) == "edge-2"
    assert applied.release == (("edge-1", "video-analytics"),)
    assert apply_outcome(applied.record, report) is None, "applied twice: a no-op"


def test_a_failed_move_reverts_the_belief_and_frees_the_target() -> None:
    """A move that failed and was compensated leaves the instance where it was."""
    _, record = _run(crossing())
    report = _report(record, Status.FAILED, "edge-1", source_cluster="edge-1")
    applied = apply_outcome(record, report)
    assert applied is not None
    assert applied.record.placement_of(instance_key(INSTANCE)) == "edge-1"
    assert applied.release == (("edge-2", "video-analytics"),)


def test_an_unsettled_or_older_outcome_changes_nothing() -> None:
    """A report with more to come, or for a request older than the awaited one, is ignored."""
    _, record = _run(crossing())
    assert (
        apply_outcome(record, _report(record, Status.SUPERSEDED, "edge-1", settled=False)) is None
    )
    older = _report(record, Status.COMPLETED, "edge-1")
    older = older.model_copy(
        update={
            "decided_at": older.decided_at - timedelta(seconds=1),
            "outcome": older.outcome.model_copy(update={"request_id": "earlier"}),
        }
    )
    assert apply_outcome(record, older) is None


def test_placements_count_against_capacity_at_once() -> None:
    """Ten UEs crossing to tower 2, whose edge has room for three video-analytics instances by
    CPU: three go there, the rest elsewhere or nowhere."""
    ledger = Ledger()
    targets = []
    for n in range(10):
        supi = f"imsi-20893000000{n:04d}"
        inst = InstanceDoc(ue=supi, app="video-analytics", instance=f"c{n}", cluster="edge-1")
        record = None
        for event in crossing(supi):
            handled = handle_event(
                event,
                record,
                [inst],
                ledger.applied(BUNDLE),
                ue_alias="~a",
                app_port=8080,
                dedup_window=8,
            )
            reserve(ledger, BUNDLE, record, handled)
            record = handled.record
            targets += [r.target.cluster for r in handled.requests]
    assert targets.count("edge-2") == 3
    assert len(targets) == 10, "the others still move, to the next best cluster"


def test_an_outcome_gives_capacity_back() -> None:
    """A move's reservation counts at once; its failed outcome gives the target back."""
    ledger = Ledger()
    record = None
    for event in crossing():
        handled = handle_event(
            event, record, [INSTANCE], BUNDLE, ue_alias="~", app_port=1, dedup_window=8
        )
        reserve(ledger, BUNDLE, record, handled)
        record = handled.record
    assert record is not None
    assert ledger.extra["edge-2"].apps == 1
    applied = apply_outcome(record, _report(record, Status.FAILED, "edge-1"))
    assert applied is not None
    release(ledger, BUNDLE, applied)
    assert ledger.extra["edge-2"].apps == 0


def test_evacuation_moves_instances_off_a_cluster_in_maintenance() -> None:
    """A topology that puts edge-1 into maintenance moves its instances at once, within the
    targets' capacity, with request ids that the same topology gives again."""
    topology = TOPOLOGY.read_text().replace(
        "    zone: zone-tower-1\n", "    zone: zone-tower-1\n    state: maintenance\n", 1
    )
    bundle = load_bundle(topology, POLICY.read_text())
    ues = []
    for n in range(6):
        supi = f"imsi-20893000000{n:04d}"
        inst = InstanceDoc(ue=supi, app="video-analytics", instance=f"v{n}", cluster="edge-1")
        ues.append((supi, None, [inst]))
    ledger = Ledger()
    moves = handle_evacuation(1000.0, bundle, ledger, ues, alias=lambda ue: "~a", app_port=1)
    assert len(moves) == 6
    decisions = [a.decision for _, h in moves for a in h.audited]
    assert {d.reason for d in decisions} <= {Reason.CLUSTER_MAINTENANCE, Reason.NO_CANDIDATE}
    targets = [r.target.cluster for _, h in moves for r in h.requests]
    assert "edge-1" not in targets
    assert targets.count("edge-2") <= 3, "capacity counted across the evacuation"
    again = handle_evacuation(1001.0, bundle, Ledger(), ues, alias=lambda ue: "~a", app_port=1)
    assert [r.request_id for _, h in again for r in h.requests] == [
        r.request_id for _, h in moves for r in h.requests
    ]
    for _, handled in moves:
        for request in handled.requests:
            assert handled.record.placement_of(f"{request.app}/{request.instance}") == (
                request.target.cluster
            )


def test_a_quiet_ue_leaves_only_what_cannot_be_found_again() -> None:
    """Expiry keeps where an instance runs when the registry says otherwise, and nothing else."""
    _, record = _run(crossing())
    assert quiet_remainder(UeRecord(seen=("a",)), [INSTANCE]) is None
    _, stayed = _run([location_event(0, 1)])
    assert quiet_remainder(stayed, [INSTANCE]) is None
    remainder = quiet_remainder(record, [INSTANCE])
    assert remainder is not None
    assert remainder.state is None
    assert remainder.seen == ()
    assert remainder.placement_of(instance_key(INSTANCE)) == "edge-2"
    confirmed = confirm(record, instance_key(INSTANCE), "edge-2")
    kept = quiet_remainder(confirmed, [INSTANCE])
    assert kept is not None
    assert kept.unconfirmed == ()


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


def _learned(bundle: Bundle, t0: float = 0.0):  # type: ignore[no-untyped-def]
    from subscriber.decide.prewarm import Prewarming

    assert bundle.rules.prewarm is not None
    warming = Prewarming(bundle.rules.prewarm)
    for i in range(6):
        warming.model.learn(["zone-tower-1", "zone-tower-2"], t0 + 10.0 * i, stayed_s=60.0)
    return warming


def test_a_warm_instance_takes_its_clusters_room_once() -> None:
    """edge-2 has room for one more app: one UE's warm instance takes it (another UE is warmed
    elsewhere), and that UE's arrival moves onto it (not refused as full, nor counted twice)."""
    from subscriber.decide.prewarm import Verdict, hold
    from tests.support.policy import at, build, example_doc, set_cluster

    doc = set_cluster(example_doc(), "edge-2", load={"cpu": 6, "memory_mib": 12288, "apps": 11})
    base = build(doc, policy={"prewarm": {"enabled": True}})
    warming, ledger = _learned(base), Ledger()
    other = InstanceDoc(
        ue="imsi-208930000000002", app=INSTANCE.app, instance="ue2", cluster="edge-1"
    )

    def step(inst, alias, event, record):  # type: ignore[no-untyped-def]
        before = record
        h = handle_event(
            event,
            record,
            [inst],
            ledger.applied(base),
            ue_alias=alias,
            app_port=8080,
            dedup_window=8,
            warming=warming,
        )
        reserve(ledger, base, before, h)
        hold(ledger, base, h.prewarms)
        return h

    first = step(INSTANCE, "~one", at("tower-1", 100.0, ue=INSTANCE.ue), None)
    assert [(w.verdict, w.target) for w in first.prewarms] == [(Verdict.PREWARM, "edge-2")]
    assert ledger.extra["edge-2"].apps == 1
    second = step(other, "~two", at("tower-1", 101.0, ue=other.ue), None)
    assert [w.target for w in second.prewarms if w.verdict is Verdict.PREWARM] != ["edge-2"]
    arrived = step(INSTANCE, "~one", at("tower-2", 130.0, ue=INSTANCE.ue), first.record)
    (request,) = arrived.requests
    assert request.target.cluster == "edge-2"
    assert arrived.prewarms[0].verdict is Verdict.USED
    assert ledger.extra["edge-2"].apps == 1  # the move's, which the warm instance became


def test_a_report_from_the_future_moves_no_warm_deadline() -> None:
    """A report dated ahead of its ingest (within the allowed skew) is decided at its own time,
    but its warm instance lives on the ingest clock: it expires a TTL after ingest, not later,
    and a later report's arrival counts warm time from then."""
    from subscriber.decide.prewarm import Verdict
    from tests.support.policy import at, build

    bundle = build(policy={"prewarm": {"enabled": True, "ttl_s": 300}})
    warming = _learned(bundle, 900.0)
    ahead = at("tower-1", 1000.0 + 50.0, ue=INSTANCE.ue)
    ahead = ahead.model_copy(update={"ingest_time": datetime.fromtimestamp(1000.0, UTC)})
    h = handle_event(
        ahead,
        None,
        [INSTANCE],
        bundle,
        ue_alias="~alias",
        app_port=8080,
        dedup_window=8,
        max_skew_s=60.0,
        warming=warming,
    )
    (warm,) = h.prewarms
    assert warm.verdict is Verdict.PREWARM
    assert warm.at_s == 1050.0  # decided at the report's time, as the policy is
    assert warm.expires_at_s == 1300.0
    assert warming.expire(1299.0) == []
    (gone,) = warming.expire(1300.0)
    assert (gone.verdict, gone.warm_s) == (Verdict.EXPIRED, 300.0)


def test_without_prewarming_the_step_is_unchanged() -> None:
    """The same reports with pre-warming off wait for the dwell, and carry no pre-warm records."""
    from tests.support.policy import at

    handled, _ = _run([at("tower-1", 100.0, ue=INSTANCE.ue), at("tower-2", 130.0, ue=INSTANCE.ue)])
    assert [h.requests for h in handled] == [[], []]
    assert all(h.prewarms == () for h in handled)
