"""TS 29.522 traffic-influence models: requests, answers, and notifications in both shapes."""

from __future__ import annotations

import orjson
import pytest

from subscriber.errors import InvalidCallback
from subscriber.sbi.smf import NsmfEventExposureNotification
from subscriber.sbi.traffic_influence import (
    Snssai,
    TrafficInfluSub,
    UpPathChangeNotification,
    parse_influence_notification,
    parse_traffic_influ_sub,
)
from tests.support.callbacks import VECTORS

SPEC_LATE = {
    "afTransId": "ti.video-analytics.ue1",
    "subscribedEvent": "UP_PATH_CHANGE",
    "dnaiChgType": "LATE",
    "sourceTrafficRoute": {"dnai": "mec-tower-1"},
    "targetTrafficRoute": {"dnai": "mec-tower-2"},
    "sourceDnai": "mec-tower-1",
    "targetDnai": "mec-tower-2",
    "afAckUri": "http://nef/ack/1",
}


def test_free5gc_shape_is_the_forwarded_smf_notification() -> None:
    """free5GC's NEF forwards the SMF body: it parses as an NsmfEventExposureNotification."""
    body = (VECTORS / "d3-smf-up-path-ch-late.json").read_bytes()
    parsed = parse_influence_notification(body)
    assert isinstance(parsed, NsmfEventExposureNotification)
    assert parsed.event_notifs[0].dnai_chg_type == "LATE"


def test_spec_shape_is_an_event_notification() -> None:
    """The specification's UpPathChangeNotification keeps afTransId, both routes and afAckUri."""
    parsed = parse_influence_notification(orjson.dumps(SPEC_LATE))
    assert isinstance(parsed, UpPathChangeNotification)
    assert parsed.af_trans_id == "ti.video-analytics.ue1"
    assert parsed.target_traffic_route is not None
    assert parsed.target_traffic_route.dnai == "mec-tower-2"
    assert parsed.af_ack_uri == "http://nef/ack/1"


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        (b"{not json", ""),
        (orjson.dumps({**SPEC_LATE, "subscribedEvent": "CHANGE_OF_DNAI"}), "/subscribedEvent"),
        (orjson.dumps({k: v for k, v in SPEC_LATE.items() if k != "dnaiChgType"}), "/dnaiChgType"),
        (orjson.dumps({"notifId": "1", "eventNotifs": []}), "/eventNotifs"),
        (orjson.dumps([SPEC_LATE]), ""),
    ],
)
def test_malformed_notifications_name_the_field(body: bytes, pointer: str) -> None:
    """Not JSON, another event, no change type, no events, not an object: InvalidCallback."""
    with pytest.raises(InvalidCallback) as caught:
        parse_influence_notification(body)
    assert pointer in [p.param for p in caught.value.invalid_params]


def test_a_subscription_round_trips_with_wire_names() -> None:
    """Our request serializes with TS 29.522 names, ``self`` included, and reads back."""
    sub = TrafficInfluSub(
        af_app_id="a",
        ipv4_addr="10.60.0.1",
        snssai=Snssai(sst=1, sd="0102AB"),
        self_="http://nef/3gpp-traffic-influence/v1/af/subscriptions/1",
    )
    doc = orjson.loads(sub.to_json())
    assert doc["snssai"] == {"sst": 1, "sd": "0102ab"}
    assert doc["self"].endswith("/subscriptions/1")
    assert parse_traffic_influ_sub(sub.to_json()) == sub


def test_a_slice_differentiator_is_six_hex_digits() -> None:
    """An sd of another length is a malformed answer."""
    with pytest.raises(InvalidCallback):
        parse_traffic_influ_sub(b'{"snssai": {"sst": 1, "sd": "12345"}}')
