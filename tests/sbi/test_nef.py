"""Tests for the TS 29.122 monitoring event models."""

from __future__ import annotations

import json

import pytest

from subscriber.errors import InvalidCallback
from subscriber.sbi.nef import (
    MonitoringEventSubscription,
    MonitoringType,
    parse_monitoring_subscription,
    parse_nef_notification,
)

LINK = "http://nef.example/3gpp-monitoring-event/v1/af-1/subscriptions/sub-7"


def _notification(location_info: dict[str, object]) -> bytes:
    return json.dumps(
        {
            "subscription": LINK,
            "monitoringEventReports": [
                {
                    "monitoringType": "LOCATION_REPORTING",
                    "externalId": "ue1@example.com",
                    "eventTime": "2026-07-01T08:15:30.123456789Z",
                    "locationInfo": location_info,
                }
            ],
        }
    ).encode()


def test_free5gc_nef_shape() -> None:
    """The flat fields free5GC's NEF fills (plmnId 'mcc-mnc', TAC, NR cell id) parse."""
    notification = parse_nef_notification(
        _notification({"plmnId": "208-93", "trackingAreaId": "00000A", "cellId": "00000001F"})
    )
    assert notification.subscription_id() == "sub-7"
    assert notification.monitoring_event_reports is not None
    report = notification.monitoring_event_reports[0]
    assert report.monitoring_type == MonitoringType.LOCATION_REPORTING
    assert report.location_info is not None
    assert report.location_info.tracking_area_id == "00000a"
    assert report.location_info.cell_id == "00000001f"


def test_user_location_inside_location_info() -> None:
    """A full TS 29.571 userLocation inside locationInfo is validated like the AMF's."""
    with pytest.raises(InvalidCallback) as info:
        parse_nef_notification(
            _notification(
                {
                    "userLocation": {
                        "nrLocation": {
                            "tai": {"plmnId": {"mcc": "208", "mnc": "93"}, "tac": "1"},
                            "ncgi": {"plmnId": {"mcc": "208", "mnc": "93"}, "nrCellId": "1"},
                        }
                    }
                }
            )
        )
    assert [p.param for p in info.value.invalid_params] == [
        "/monitoringEventReports/0/locationInfo/userLocation/nrLocation/tai/tac",
        "/monitoringEventReports/0/locationInfo/userLocation/nrLocation/ncgi/nrCellId",
    ]


@pytest.mark.parametrize(
    ("location_info", "param"),
    [
        ({"trackingAreaId": "00001"}, "trackingAreaId"),
        ({"cellId": "12345678"}, "cellId"),
        ({"plmnId": "20893x"}, "plmnId"),
        ({"enodeBId": "xyz"}, "enodeBId"),
    ],
)
def test_malformed_location_info(location_info: dict[str, object], param: str) -> None:
    """Malformed TAC, cell, PLMN or eNB ids are rejected, naming the attribute."""
    with pytest.raises(InvalidCallback) as info:
        parse_nef_notification(_notification(location_info))
    assert [p.param for p in info.value.invalid_params] == [
        f"/monitoringEventReports/0/locationInfo/{param}"
    ]


def test_report_needs_monitoring_type_and_notification_needs_subscription() -> None:
    """monitoringType and the subscription link are mandatory."""
    with pytest.raises(InvalidCallback) as info:
        parse_nef_notification(b'{"monitoringEventReports":[{}]}')
    assert [p.param for p in info.value.invalid_params] == [
        "/subscription",
        "/monitoringEventReports/0/monitoringType",
    ]


def test_unknown_monitoring_type_is_kept() -> None:
    """A monitoring type a newer release adds is kept, not rejected."""
    notification = parse_nef_notification(
        b'{"subscription":"s","monitoringEventReports":[{"monitoringType":"TELEPATHY"}],"x":1}'
    )
    assert notification.monitoring_event_reports is not None
    assert notification.monitoring_event_reports[0].monitoring_type == "TELEPATHY"
    assert notification.subscription_id() == "s"


def test_subscription_round_trip() -> None:
    """A LOCATION_REPORTING subscription serializes with wire names and parses back."""
    sub = MonitoringEventSubscription(
        external_id="ue1@example.com",
        notification_destination="http://127.0.0.1:9/nef",
        monitoring_type=MonitoringType.LOCATION_REPORTING,
        maximum_number_of_reports=10,
        location_type="CURRENT_LOCATION",
    )
    body = sub.to_json()
    assert json.loads(body) == {
        "externalId": "ue1@example.com",
        "notificationDestination": "http://127.0.0.1:9/nef",
        "monitoringType": "LOCATION_REPORTING",
        "maximumNumberOfReports": 10,
        "locationType": "CURRENT_LOCATION",
    }
    created = parse_monitoring_subscription(body.replace(b"{", b'{"self":"http://n/s/1",', 1))
    assert created.self_ == "http://n/s/1"
