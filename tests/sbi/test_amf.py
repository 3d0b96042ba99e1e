"""Tests for the TS 29.518 models against the vectors in tests/vectors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from subscriber.errors import InvalidCallback
from subscriber.sbi.amf import (
    AmfCreateEventSubscription,
    AmfEvent,
    AmfEventMode,
    AmfEventSubscription,
    AmfEventTrigger,
    AmfEventType,
    RequestLocInfo,
    parse_amf_create_subscription,
    parse_amf_created_subscription,
    parse_amf_notification,
    parse_provide_loc_info,
)

VECTORS = Path(__file__).parents[1] / "vectors"


def vector(name: str) -> bytes:
    """The bytes of a test vector file."""
    return (VECTORS / name).read_bytes()


def test_v1_per_ue_continuous_subscription() -> None:
    """V1 parses, with ``anyUE`` (capital E) and its CONTINUOUS options."""
    create = parse_amf_create_subscription(vector("v1-amf-create-subscription-continuous.json"))
    sub = create.subscription
    assert sub.any_ue is False
    assert sub.supi == "imsi-208930000000003"
    assert sub.event_list[0].type == AmfEventType.LOCATION_REPORT
    assert sub.event_list[0].ref_id == 0
    assert sub.options is not None
    assert sub.options.trigger == AmfEventTrigger.CONTINUOUS
    assert sub.options.max_reports == 30
    assert sub.options.expiry == datetime(2022, 7, 20, 11, 30, 31, 124000, tzinfo=UTC)
    assert create.supported_features == "FFFF"


def test_v2_any_ue_poll_keeps_unknown_event_type() -> None:
    """V2 parses; the non-spec SUBSCRIBED_DATA_REPORT is kept as a plain string."""
    sub = parse_amf_create_subscription(
        vector("v2-amf-create-subscription-anyue-poll.json")
    ).subscription
    assert sub.any_ue is True
    types = [event.type for event in sub.event_list]
    assert len(types) == 12
    assert "SUBSCRIBED_DATA_REPORT" in types
    assert "SUBSCRIBED_DATA_REPORT" not in set(AmfEventType)


def test_v3_subscription_without_mandatory_spec_fields() -> None:
    """V3 omits notifyCorrelationId and nfId, as free5GC tolerates; it still parses."""
    sub = parse_amf_create_subscription(vector("v3-amf-create-subscription.json")).subscription
    assert sub.notify_correlation_id is None
    assert sub.nf_id is None
    assert sub.event_notify_uri == "http://callback.example.com"


def test_v3_patch_body_is_not_a_subscription() -> None:
    """free5GC's non-spec PATCH body is not mistaken for a subscription."""
    with pytest.raises(InvalidCallback) as info:
        parse_amf_create_subscription(vector("v3-amf-patch-expiry.json"))
    assert [p.param for p in info.value.invalid_params] == ["/subscription"]


def test_v4_reachability_notification() -> None:
    """V4 (another vendor's AmfEventNotification) parses, report fields by wire name."""
    notification = parse_amf_notification(vector("v4-amf-notification-reachability.json"))
    assert notification.notify_correlation_id == "imsi-<imsi>"
    assert notification.report_list is not None
    report = notification.report_list[0]
    assert report.type == AmfEventType.REACHABILITY_REPORT
    assert report.reachability == "REACHABLE"
    assert report.state is not None
    assert report.state.active is False
    assert report.time_stamp == datetime(2023, 7, 15, 10, 11, 34, tzinfo=UTC)
    assert report.location is None


def test_v5_provide_loc_info_mixed_case_hex_is_lowercased() -> None:
    """V5's mixed-case TAC and NR cell id are normalized to lowercase."""
    info = parse_provide_loc_info(vector("v5-provide-loc-info-nr-mixed-case.json"))
    assert info.current_loc is True
    assert info.location is not None
    nr = info.location.nr_location
    assert nr is not None
    assert nr.tai.tac == "aa19"
    assert nr.ncgi.nr_cell_id == "9b1b0ffaa"
    assert nr.tai.plmn_id.as_string() == "111222"
    assert info.location_age == 32767
    assert info.rat_type == "NR"


def test_d1_created_subscription_with_location() -> None:
    """D1: 9 fractional second digits parse (to µs), hex stays lowercase, anyUe absent."""
    created = parse_amf_created_subscription(vector("d1-amf-created-location.json"))
    assert created.subscription_id == "1"
    assert created.subscription.notify_correlation_id == "loc-1"
    assert created.report_list is not None
    (report,) = created.report_list
    assert report.type == AmfEventType.LOCATION_REPORT
    assert report.time_stamp == datetime(2026, 7, 1, 8, 15, 30, 123456, tzinfo=UTC)
    assert report.location is not None
    nr = report.location.nr_location
    assert nr is not None
    assert (nr.tai.tac, nr.ncgi.nr_cell_id) == ("000001", "000000010")
    assert nr.ue_location_timestamp == datetime(2026, 7, 1, 8, 14, 2, 987654, tzinfo=UTC)


def test_d1_as_notification() -> None:
    """D1's report wrapped as an AmfEventNotification parses the same way."""
    notification = parse_amf_notification(vector("d1-amf-notification-location.json"))
    assert notification.notify_correlation_id == "loc-1"
    assert notification.report_list is not None
    assert notification.report_list[0].supi == "imsi-208930000000001"


def test_d2_any_ue_report_spelling_and_no_location() -> None:
    """D2: the report says ``anyUe`` (lower e) and carries RM/CM state but no location."""
    created = parse_amf_created_subscription(vector("d2-amf-created-anyue-rm-cm.json"))
    assert created.subscription.any_ue is True
    assert created.report_list is not None
    rm, cm = created.report_list
    assert rm.any_ue is True
    assert rm.location is None
    assert rm.rm_info_list is not None
    assert rm.rm_info_list[0].rm_state == "REGISTERED"
    assert cm.cm_info_list is not None
    assert cm.cm_info_list[1].cm_state == "IDLE"


def test_subscription_serializes_any_ue_with_capital_e() -> None:
    """What we send uses the subscription spelling ``anyUE`` and leaves unset fields out."""
    body = AmfCreateEventSubscription(
        subscription=AmfEventSubscription(
            event_list=[AmfEvent(type=AmfEventType.LOCATION_REPORT, immediate_flag=True)],
            event_notify_uri="http://127.0.0.1:9/cb",
            notify_correlation_id="poll",
            nf_id="3fa85f64-5717-4562-b3fc-2c963f66afa6",
            any_ue=True,
            options=AmfEventMode(trigger=AmfEventTrigger.ONE_TIME),
        )
    ).to_json()
    assert json.loads(body) == {
        "subscription": {
            "eventList": [{"type": "LOCATION_REPORT", "immediateFlag": True}],
            "eventNotifyUri": "http://127.0.0.1:9/cb",
            "notifyCorrelationId": "poll",
            "nfId": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
            "anyUE": True,
            "options": {"trigger": "ONE_TIME"},
        }
    }


def test_request_loc_info_wire_names() -> None:
    """RequestLocInfo serializes the flags free5GC reads."""
    body = RequestLocInfo(
        req5gs_loc=True, req_current_loc=True, req_rat_type=True, req_time_zone=True
    ).to_json()
    assert json.loads(body) == {
        "req5gsLoc": True,
        "reqCurrentLoc": True,
        "reqRatType": True,
        "reqTimeZone": True,
    }


def _report_body(report: dict[str, object]) -> bytes:
    return json.dumps({"notifyCorrelationId": "c", "reportList": [report]}).encode()


_NR = {
    "tai": {"plmnId": {"mcc": "208", "mnc": "93"}, "tac": "000001"},
    "ncgi": {"plmnId": {"mcc": "208", "mnc": "93"}, "nrCellId": "000000010"},
}


def _with(path: list[str], value: object) -> dict[str, object]:
    """A LOCATION_REPORT whose nrLocation has ``value`` at ``path``."""
    nr = json.loads(json.dumps(_NR))
    node = nr
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return {"type": "LOCATION_REPORT", "location": {"nrLocation": nr}}


@pytest.mark.parametrize(
    ("report", "param"),
    [
        ({"state": {"active": True}}, "/reportList/0/type"),
        (_with(["tai", "tac"], "00001"), "/reportList/0/location/nrLocation/tai/tac"),
        (_with(["tai", "tac"], 1), "/reportList/0/location/nrLocation/tai/tac"),
        (
            _with(["ncgi", "nrCellId"], "00000001"),
            "/reportList/0/location/nrLocation/ncgi/nrCellId",
        ),
        (
            _with(["tai", "plmnId", "mcc"], "20"),
            "/reportList/0/location/nrLocation/tai/plmnId/mcc",
        ),
        (
            _with(["ncgi", "plmnId", "mnc"], "1234"),
            "/reportList/0/location/nrLocation/ncgi/plmnId/mnc",
        ),
        (
            {
                "type": "LOCATION_REPORT",
                "location": {
                    "eutraLocation": {
                        "tai": {"plmnId": {"mcc": "208", "mnc": "93"}, "tac": "0001"},
                        "ecgi": {"plmnId": {"mcc": "208", "mnc": "93"}, "eutraCellId": "00001"},
                    }
                },
            },
            "/reportList/0/location/eutraLocation/ecgi/eutraCellId",
        ),
        (
            {"type": "LOCATION_REPORT", "location": {"nrLocation": {"tai": _NR["tai"]}}},
            "/reportList/0/location/nrLocation/ncgi",
        ),
        ({"type": "LOCATION_REPORT", "timeStamp": "yesterday"}, "/reportList/0/timeStamp"),
    ],
)
def test_malformed_reports_are_rejected_with_their_path(
    report: dict[str, object], param: str
) -> None:
    """Each malformed report is rejected naming the JSON pointer of the bad attribute."""
    with pytest.raises(InvalidCallback) as info:
        parse_amf_notification(_report_body(report))
    assert [p.param for p in info.value.invalid_params] == [param]


def test_unknown_event_type_and_extra_fields_are_accepted() -> None:
    """An unknown report type and unknown fields do not fail the body."""
    notification = parse_amf_notification(
        _report_body(
            {
                "type": "RELEASE_99_REPORT",
                "timeStamp": "2026-07-01T08:15:30.123456789Z",
                "vendorExtension": {"x": [1, 2, 3]},
                "location": {"nrLocation": {**_NR, "ntnTaiInfo": {"whatever": True}}},
            }
        )
    )
    assert notification.report_list is not None
    assert notification.report_list[0].type == "RELEASE_99_REPORT"


def test_eutra_location_parses_and_lowercases() -> None:
    """An E-UTRA location with a 7-hex-digit cell id parses and is lower-cased."""
    notification = parse_amf_notification(
        _report_body(
            {
                "type": "LOCATION_REPORT",
                "location": {
                    "eutraLocation": {
                        "tai": {"plmnId": {"mcc": "208", "mnc": "093"}, "tac": "00AB"},
                        "ecgi": {"plmnId": {"mcc": "208", "mnc": "093"}, "eutraCellId": "ABCDEF1"},
                    }
                },
            }
        )
    )
    assert notification.report_list is not None
    location = notification.report_list[0].location
    assert location is not None
    eutra = location.eutra_location
    assert eutra is not None
    assert (eutra.tai.tac, eutra.ecgi.eutra_cell_id) == ("00ab", "abcdef1")
