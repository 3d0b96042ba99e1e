"""Tests for the TS 29.508 models against the vectors in tests/vectors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from subscriber.errors import InvalidCallback
from subscriber.sbi.smf import (
    DnaiChangeType,
    EventSubscription,
    NsmfEventExposure,
    SmfEvent,
    parse_smf_notification,
    parse_smf_subscription,
)

VECTORS = Path(__file__).parents[1] / "vectors"


def test_d3_up_path_change_with_null_timestamp() -> None:
    """D3: free5GC's UP_PATH_CH with ``timeStamp: null`` and a default route parses."""
    notification = parse_smf_notification((VECTORS / "d3-smf-up-path-ch-early.json").read_bytes())
    assert notification.notif_id == "1"
    (event,) = notification.event_notifs
    assert event.event == SmfEvent.UP_PATH_CH
    assert event.time_stamp is None
    assert event.dnai_chg_type == DnaiChangeType.EARLY
    assert event.source_dnai is None
    assert event.target_dnai == "mec"
    assert event.source_tra_routing is not None
    assert event.source_tra_routing.dnai == ""
    assert event.target_tra_routing is not None
    assert event.target_tra_routing.route_info is not None
    assert event.target_tra_routing.route_info.port_number == 0


def test_d3_late_twin() -> None:
    """The LATE twin of D3 differs only in its change type."""
    notification = parse_smf_notification((VECTORS / "d3-smf-up-path-ch-late.json").read_bytes())
    assert notification.event_notifs[0].dnai_chg_type == DnaiChangeType.LATE


def test_v6_hand_made_notification_without_timestamp() -> None:
    """V6: free5GC's e2e test body (non-spec ``notifType``, no ``timeStamp``) parses."""
    notification = parse_smf_notification((VECTORS / "v6-smf-notification-early.json").read_bytes())
    assert notification.event_notifs[0].dnai_chg_type == "EARLY"
    assert notification.event_notifs[0].time_stamp is None


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"eventNotifs": [{"event": "UP_PATH_CH"}]}, "/notifId"),
        ({"notifId": "1"}, "/eventNotifs"),
        ({"notifId": "1", "eventNotifs": []}, "/eventNotifs"),
        ({"notifId": "1", "eventNotifs": [{"dnaiChgType": "EARLY"}]}, "/eventNotifs/0/event"),
        (
            {"notifId": "1", "eventNotifs": [{"event": "UP_PATH_CH", "timeStamp": "soon"}]},
            "/eventNotifs/0/timeStamp",
        ),
        (
            {"notifId": "1", "eventNotifs": [{"event": "UP_PATH_CH", "targetTraRouting": {}}]},
            "/eventNotifs/0/targetTraRouting/dnai",
        ),
    ],
)
def test_malformed_notifications(body: dict[str, object], param: str) -> None:
    """A notification without its mandatory members is rejected, naming them."""
    with pytest.raises(InvalidCallback) as info:
        parse_smf_notification(json.dumps(body))
    assert [p.param for p in info.value.invalid_params] == [param]


def test_unknown_event_and_change_type_are_kept() -> None:
    """Event and change-type values a newer release adds are kept as strings."""
    notification = parse_smf_notification(
        b'{"notifId":"n","eventNotifs":[{"event":"UP_PATH_CH_V2","dnaiChgType":"MIDDLE",'
        b'"timeStamp":"2026-07-01T08:15:30Z","brandNew":{"a":1}}],"extra":true}'
    )
    assert notification.event_notifs[0].event == "UP_PATH_CH_V2"
    assert notification.event_notifs[0].dnai_chg_type == "MIDDLE"


def test_subscription_round_trip() -> None:
    """An UP_PATH_CH subscription serializes with wire names and parses back."""
    sub = NsmfEventExposure(
        notif_id="n-1",
        notif_uri="http://127.0.0.1:9/smf",
        any_ue_ind=True,
        event_subs=[
            EventSubscription(event=SmfEvent.UP_PATH_CH, dnai_chg_type=DnaiChangeType.EARLY_LATE)
        ],
        imme_rep=True,
    )
    body = sub.to_json()
    assert json.loads(body) == {
        "anyUeInd": True,
        "notifId": "n-1",
        "notifUri": "http://127.0.0.1:9/smf",
        "eventSubs": [{"event": "UP_PATH_CH", "dnaiChgType": "EARLY_LATE"}],
        "ImmeRep": True,
    }
    assert parse_smf_subscription(body) == sub
