"""Tests for the pure normalization of 3GPP bodies into LocationEvents."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from subscriber.errors import InvalidCallback
from subscriber.events import (
    Delivery,
    LocationEvent,
    NfType,
    UeIdentity,
    decode_event,
    encode_event,
)
from subscriber.ingress.normalize import (
    PROVIDE_LOC_INFO,
    Binding,
    BodyKind,
    Normalized,
    SkipReason,
    normalize_amf_created_subscription,
    normalize_amf_notification,
    normalize_body,
    normalize_nef_notification,
    normalize_smf_notification,
)
from subscriber.sbi.amf import parse_amf_created_subscription, parse_amf_notification
from subscriber.sbi.nef import parse_nef_notification
from subscriber.sbi.smf import parse_smf_notification

VECTORS = Path(__file__).parents[1] / "vectors"
INGEST = datetime(2026, 7, 1, 9, 0, 0, tzinfo=UTC)
LATER = INGEST + timedelta(minutes=5)
NR = {
    "tai": {"plmnId": {"mcc": "208", "mnc": "93"}, "tac": "000001"},
    "ncgi": {"plmnId": {"mcc": "208", "mnc": "93"}, "nrCellId": "000000010"},
}


def vector(name: str) -> bytes:
    """The bytes of a test vector file."""
    return (VECTORS / name).read_bytes()


def amf_body(*reports: dict[str, Any], correlation: str = "loc-1") -> bytes:
    """An AmfEventNotification body with the given reports."""
    return json.dumps({"notifyCorrelationId": correlation, "reportList": list(reports)}).encode()


def location_report(**fields: Any) -> dict[str, Any]:
    """A LOCATION_REPORT for imsi-208930000000001 in NR cell 000000010, fields overridden."""
    report: dict[str, Any] = {
        "type": "LOCATION_REPORT",
        "supi": "imsi-208930000000001",
        "location": {"nrLocation": NR},
    }
    report.update(fields)
    return report


def normalize_amf(body: bytes, ingest_time: datetime = INGEST, **kwargs: Any) -> Normalized:
    """Parse and normalize an AMF notification body."""
    return normalize_amf_notification(
        parse_amf_notification(body), ingest_time=ingest_time, **kwargs
    )


# --- the vectors of tests/vectors (README.md there cites their sources) ------------------------


@pytest.mark.parametrize(
    ("kind", "name", "kwargs", "n_events", "skipped"),
    [
        (BodyKind.AMF_CREATED_SUBSCRIPTION, "d1-amf-created-location.json", {}, 1, []),
        (BodyKind.AMF_NOTIFICATION, "d1-amf-notification-location.json", {}, 1, []),
        (
            BodyKind.AMF_CREATED_SUBSCRIPTION,
            "d2-amf-created-anyue-rm-cm.json",
            {},
            0,
            [
                (0, "REGISTRATION_STATE_REPORT", SkipReason.NO_LOCATION),
                (1, "CONNECTIVITY_STATE_REPORT", SkipReason.NO_LOCATION),
            ],
        ),
        (BodyKind.SMF_NOTIFICATION, "d3-smf-up-path-ch-early.json", {}, 1, []),
        (BodyKind.SMF_NOTIFICATION, "d3-smf-up-path-ch-late.json", {}, 1, []),
        (
            BodyKind.AMF_NOTIFICATION,
            "v4-amf-notification-reachability.json",
            {},
            0,
            [(0, "REACHABILITY_REPORT", SkipReason.NO_LOCATION)],
        ),
        (
            BodyKind.PROVIDE_LOC_INFO,
            "v5-provide-loc-info-nr-mixed-case.json",
            {"ue_context_id": "imsi-111222000000001"},
            1,
            [],
        ),
        (BodyKind.SMF_NOTIFICATION, "v6-smf-notification-early.json", {}, 1, []),
    ],
)
def test_vectors_normalize(
    kind: BodyKind,
    name: str,
    kwargs: dict[str, str],
    n_events: int,
    skipped: list[tuple[int, str, SkipReason]],
) -> None:
    """Each vector yields the expected events and skips, and its events survive the codec."""
    result = normalize_body(kind, vector(name), ingest_time=INGEST, **kwargs)
    assert len(result.events) == n_events
    assert [tuple(s) for s in result.skipped] == skipped
    assert_records_are_their_events(result)
    for event in result.events:
        assert LocationEvent.model_validate(event.model_dump()) == event


def assert_records_are_their_events(result: Normalized) -> None:
    """The normalizer writes records without building models: each must be, byte for byte,
    what encode_event writes for its event, under the event's key and id."""
    for record in result.records:
        event = decode_event(record.value)
        assert encode_event(event) == record.value
        assert record.key == event.partition_key()
        assert record.event_id == event.event_id


@pytest.mark.parametrize(
    ("kind", "name", "binding", "record"),
    [
        (
            BodyKind.AMF_NOTIFICATION,
            "d1-amf-notification-location.json",
            None,
            b'{"schema_version":1,"event_id":"9a28959b5f0a2b5793d49416db51e68b",'
            b'"ue":{"supi":"imsi-208930000000001"},"source":{"nf_type":"AMF",'
            b'"correlation_id":"loc-1","delivery":"notified","event_type":"LOCATION_REPORT"},'
            b'"location":{"rat":"NR","plmn":"20893","tac":"000001","cell_id":"000000010"},'
            b'"event_time":"2026-07-01T08:14:02.987654Z","event_time_field":"ueLocationTimestamp",'
            b'"ingest_time":"2026-07-01T09:00:00Z"}',
        ),
        (
            BodyKind.INFLUENCE_NOTIFICATION,
            "d3-smf-up-path-ch-late.json",
            Binding("ti.a.i", ue="imsi-1", app="a", instance="i"),
            b'{"schema_version":1,"event_id":"728690e20a7a03f010c38f6df6513196",'
            b'"ue":{"supi":"imsi-1"},"source":{"nf_type":"SMF","correlation_id":"1",'
            b'"delivery":"notified","event_type":"UP_PATH_CH"},"dnai_change":{"change_type":'
            b'"LATE","target_dnai":"mec","app":"a","instance":"i"},'
            b'"event_time":"2026-07-01T09:00:00Z","event_time_field":"ingest",'
            b'"ingest_time":"2026-07-01T09:00:00Z"}',
        ),
    ],
)
def test_records_are_those_of_earlier_releases(
    kind: BodyKind, name: str, binding: Binding | None, record: bytes
) -> None:
    """Event ids and record bytes do not change across an upgrade: a body redelivered after
    one must dedupe against its first delivery (the bytes written before records were built
    without the models)."""
    (written,) = normalize_body(kind, vector(name), ingest_time=INGEST, binding=binding).records
    assert written.value == record


def test_d1_polled_location() -> None:
    """D1: the polled report is timed by ueLocationTimestamp, not the subscription timeStamp."""
    (event,) = normalize_body(
        BodyKind.AMF_CREATED_SUBSCRIPTION,
        vector("d1-amf-created-location.json"),
        ingest_time=INGEST,
        nf_instance_id="amf-1",
    ).events
    assert event.ue.supi == "imsi-208930000000001"
    assert event.source.nf_type is NfType.AMF
    assert event.source.nf_instance_id == "amf-1"
    assert event.source.delivery is Delivery.POLLED
    assert event.source.subscription_id == "1"
    assert event.source.correlation_id == "loc-1"
    assert event.source.event_type == "LOCATION_REPORT"
    assert event.location is not None
    assert (event.location.rat, event.location.plmn) == ("NR", "20893")
    assert (event.location.tac, event.location.cell_id) == ("000001", "000000010")
    assert event.event_time == datetime(2026, 7, 1, 8, 14, 2, 987654, tzinfo=UTC)
    assert event.event_time_field == "ueLocationTimestamp"
    assert event.ingest_time == INGEST


def test_d1_notified_and_polled_are_distinct_sources() -> None:
    """The same report notified and polled differ in delivery, and so in id."""
    (polled,) = normalize_body(
        BodyKind.AMF_CREATED_SUBSCRIPTION,
        vector("d1-amf-created-location.json"),
        ingest_time=INGEST,
    ).events
    (notified,) = normalize_amf(vector("d1-amf-notification-location.json")).events
    assert notified.source.delivery is Delivery.NOTIFIED
    assert notified.event_id != polled.event_id
    assert notified.location == polled.location


def test_d3_early_and_late_are_separate_events() -> None:
    """D3: EARLY and LATE are two events with their own ids, timed by ingest (timeStamp null)."""
    (early,) = normalize_body(
        BodyKind.SMF_NOTIFICATION, vector("d3-smf-up-path-ch-early.json"), ingest_time=INGEST
    ).events
    (late,) = normalize_body(
        BodyKind.SMF_NOTIFICATION, vector("d3-smf-up-path-ch-late.json"), ingest_time=LATER
    ).events
    assert early.event_id != late.event_id
    assert early.ue == late.ue == UeIdentity(session_ref="smf-notif:1")
    assert early.ue.key() == late.ue.key()
    assert early.source.nf_type is NfType.SMF
    assert early.source.correlation_id == "1"
    assert early.dnai_change is not None
    assert late.dnai_change is not None
    assert (early.dnai_change.change_type, late.dnai_change.change_type) == ("EARLY", "LATE")
    # The default route ({"dnai": ""}) is no DNAI.
    assert early.dnai_change.source_dnai is None
    assert early.dnai_change.target_dnai == "mec"
    assert early.location is None
    assert (early.event_time, early.event_time_field) == (INGEST, "ingest")
    assert (late.event_time, late.event_time_field) == (LATER, "ingest")


def test_v5_provide_loc_info() -> None:
    """V5: the pulled location, mixed-case hex lower-cased, no time of its own so ingest time."""
    (event,) = normalize_body(
        BodyKind.PROVIDE_LOC_INFO,
        vector("v5-provide-loc-info-nr-mixed-case.json"),
        ingest_time=INGEST,
        ue_context_id="imsi-111222000000001",
    ).events
    assert event.location is not None
    assert (event.location.plmn, event.location.tac) == ("111222", "aa19")
    assert event.location.cell_id == "9b1b0ffaa"
    assert event.source.event_type == PROVIDE_LOC_INFO
    assert event.source.delivery is Delivery.POLLED
    assert event.ue.supi == "imsi-111222000000001"
    assert event.event_time_field == "ingest"


@pytest.mark.parametrize(
    ("ue_context_id", "field"),
    [("imsi-1", "supi"), ("msisdn-33612345678", "gpsi"), ("imei-490154203237518", "session_ref")],
)
def test_provide_loc_info_identity_from_context_id(ue_context_id: str, field: str) -> None:
    """The ueContextId becomes SUPI, GPSI, or (PEI, GUTI) the session reference."""
    (event,) = normalize_body(
        BodyKind.PROVIDE_LOC_INFO,
        vector("v5-provide-loc-info-nr-mixed-case.json"),
        ingest_time=INGEST,
        ue_context_id=ue_context_id,
    ).events
    assert getattr(event.ue, field) == ue_context_id


def test_provide_loc_info_needs_ue_context_id() -> None:
    """Normalizing a provide-loc-info answer without saying for which UE is a programming error."""
    with pytest.raises(ValueError, match="ue_context_id"):
        normalize_body(BodyKind.PROVIDE_LOC_INFO, b"{}", ingest_time=INGEST)


def test_v6_notification_without_dnais() -> None:
    """V6: free5GC's hand-made UP_PATH_CH (no DNAIs, no time) is still an EARLY change."""
    (event,) = normalize_body(
        BodyKind.SMF_NOTIFICATION, vector("v6-smf-notification-early.json"), ingest_time=INGEST
    ).events
    assert event.dnai_change is not None
    assert event.dnai_change.change_type == "EARLY"
    assert event.dnai_change.source_dnai is None
    assert event.dnai_change.target_dnai is None
    assert event.ue.session_ref == "smf-notif:notif-corre-1"


# --- AMF ------------------------------------------------------------------------------------


def test_empty_location_yields_no_event() -> None:
    """free5GC's LOCATION_REPORT with location {} (before any ULI) is skipped, not an error."""
    result = normalize_amf(amf_body(location_report(location={})))
    assert result.events == []
    assert [tuple(s) for s in result.skipped] == [(0, "LOCATION_REPORT", SkipReason.NO_LOCATION)]


def test_skips_keep_their_positions_among_events() -> None:
    """A body mixing reports yields events in order and names the skipped positions."""
    result = normalize_amf(
        amf_body(
            location_report(),
            {"type": "REGISTRATION_STATE_REPORT", "supi": "imsi-1"},
            location_report(supi="imsi-208930000000002"),
        )
    )
    assert [e.ue.supi for e in result.events] == ["imsi-208930000000001", "imsi-208930000000002"]
    assert [s.position for s in result.skipped] == [1]


@pytest.mark.parametrize(
    ("report", "time", "field"),
    [
        (
            location_report(
                timeStamp="2026-07-01T08:15:30.123456789Z",
                location={"nrLocation": {**NR, "ueLocationTimestamp": "2026-07-01T08:14:02Z"}},
            ),
            datetime(2026, 7, 1, 8, 14, 2, tzinfo=UTC),
            "ueLocationTimestamp",
        ),
        (
            location_report(timeStamp="2026-07-01T08:15:30.123456789Z"),
            datetime(2026, 7, 1, 8, 15, 30, 123456, tzinfo=UTC),
            "timeStamp",
        ),
        (location_report(), INGEST, "ingest"),
        (
            location_report(
                timeStamp="2026-07-01T08:15:30Z",
                location={"nrLocation": {**NR, "ueLocationTimestamp": "0001-01-01T00:00:00Z"}},
            ),
            datetime(2026, 7, 1, 8, 15, 30, tzinfo=UTC),
            "timeStamp",
        ),
        (
            location_report(timeStamp="2026-07-01T10:15:30+02:00"),
            datetime(2026, 7, 1, 8, 15, 30, tzinfo=UTC),
            "timeStamp",
        ),
        (
            location_report(timeStamp="2026-07-01T08:15:30"),
            datetime(2026, 7, 1, 8, 15, 30, tzinfo=UTC),
            "timeStamp",
        ),
    ],
)
def test_event_time_selection(report: dict[str, Any], time: datetime, field: str) -> None:
    """ueLocationTimestamp, then timeStamp, then ingest; Go zero time is unset; no offset: UTC."""
    (event,) = normalize_amf(amf_body(report)).events
    assert event.event_time == time
    assert event.event_time.tzinfo is not None
    assert event.event_time_field == field


def test_eutra_and_n3ga_locations() -> None:
    """E-UTRA gives its cell; non-3GPP access gives its TAI only; NR wins when both are sent."""
    eutra = {
        "tai": {"plmnId": {"mcc": "208", "mnc": "093"}, "tac": "00AB"},
        "ecgi": {"plmnId": {"mcc": "208", "mnc": "093"}, "eutraCellId": "ABCDEF1"},
    }
    n3ga = {"n3gppTai": {"plmnId": {"mcc": "208", "mnc": "93"}, "tac": "000002"}}
    result = normalize_amf(
        amf_body(
            location_report(location={"eutraLocation": eutra}),
            location_report(location={"n3gaLocation": n3ga}),
            location_report(location={"eutraLocation": eutra, "nrLocation": NR}),
            location_report(location={"n3gaLocation": {"ueIpv4Addr": "10.0.0.1"}}),
        )
    )
    cells = [e.location for e in result.events]
    assert [(c.rat, c.plmn, c.tac, c.cell_id) for c in cells if c] == [
        ("EUTRA", "208093", "00ab", "abcdef1"),
        ("N3GA", "20893", "000002", None),
        ("NR", "20893", "000001", "000000010"),
    ]
    assert [s.position for s in result.skipped] == [3]


def test_ignore_ncgi_drops_the_cell() -> None:
    """An NR location flagged ignoreNcgi keeps its TAI but no cell."""
    (event,) = normalize_amf(
        amf_body(location_report(location={"nrLocation": {**NR, "ignoreNcgi": True}}))
    ).events
    assert event.location is not None
    assert event.location.cell_id is None


def test_ue_identity_sources() -> None:
    """SUPI, else GPSI, else the subscription's UE; with none of them the report is skipped."""
    no_id = {"type": "LOCATION_REPORT", "location": {"nrLocation": NR}}
    result = normalize_amf(
        amf_body(location_report(), location_report(supi=None, gpsi="msisdn-336"), no_id)
    )
    assert [e.ue.key() for e in result.events] == ["imsi-208930000000001", "msisdn-336"]
    assert [tuple(s) for s in result.skipped] == [(2, "LOCATION_REPORT", SkipReason.NO_UE_IDENTITY)]
    (event,) = normalize_amf(amf_body(no_id), default_ue=UeIdentity(supi="imsi-9")).events
    assert event.ue.supi == "imsi-9"


def test_polled_subscription_supi_identifies_reports_without_one() -> None:
    """A per-UE poll whose report omits the SUPI uses the subscription's SUPI."""
    created = parse_amf_created_subscription(
        json.dumps(
            {
                "subscription": {"eventList": [{"type": "LOCATION_REPORT"}], "supi": "imsi-5"},
                "subscriptionId": "3",
                "reportList": [{"type": "LOCATION_REPORT", "location": {"nrLocation": NR}}],
            }
        )
    )
    (event,) = normalize_amf_created_subscription(created, ingest_time=INGEST).events
    assert event.ue.supi == "imsi-5"


def test_unknown_report_type_with_location_is_an_event() -> None:
    """A report type a newer release adds still gives its location, type kept as sent."""
    (event,) = normalize_amf(amf_body(location_report(type="UE_MOVED_FAST_REPORT"))).events
    assert event.source.event_type == "UE_MOVED_FAST_REPORT"


def test_naive_ingest_time_is_refused() -> None:
    """Ingest time must carry its zone: a naive clock is a caller bug."""
    with pytest.raises(ValueError, match="timezone-aware"):
        normalize_amf(amf_body(location_report()), ingest_time=datetime(2026, 7, 1))


# --- determinism ----------------------------------------------------------------------------


def _one_id(body: bytes, **kwargs: Any) -> str:
    (event,) = normalize_amf(body, **kwargs).events
    return event.event_id


def test_same_input_same_id_whatever_the_ingest_time() -> None:
    """The id depends on what the core said, not on when we received it."""
    body = amf_body(location_report(timeStamp="2026-07-01T08:15:30Z"))
    assert _one_id(body) == _one_id(body, ingest_time=LATER)
    # Key order and whitespace do not matter either: the id hashes content, not bytes.
    shuffled = json.dumps(
        {
            "reportList": [
                dict(reversed(list(location_report(timeStamp="2026-07-01T08:15:30Z").items())))
            ],
            "notifyCorrelationId": "loc-1",
        },
        indent=2,
    ).encode()
    assert _one_id(shuffled) == _one_id(body)


@pytest.mark.parametrize(
    ("changed", "kwargs"),
    [
        (amf_body(location_report(timeStamp="2026-07-01T08:15:31Z")), {}),
        (amf_body(location_report(timeStamp="2026-07-01T08:15:30Z"), correlation="other"), {}),
        (amf_body(location_report(timeStamp="2026-07-01T08:15:30Z", supi="imsi-2")), {}),
        (
            amf_body(
                location_report(
                    timeStamp="2026-07-01T08:15:30Z",
                    location={
                        "nrLocation": {**NR, "ncgi": {**NR["ncgi"], "nrCellId": "000000011"}}
                    },
                )
            ),
            {},
        ),
        (amf_body(location_report(timeStamp="2026-07-01T08:15:30Z")), {"nf_instance_id": "amf-2"}),
        (amf_body(location_report(timeStamp="2026-07-01T08:15:30Z")), {"subscription_id": "9"}),
        (
            amf_body(
                location_report(timeStamp="2026-07-01T08:15:30Z", type="PRESENCE_IN_AOI_REPORT")
            ),
            {},
        ),
    ],
)
def test_any_content_change_changes_the_id(changed: bytes, kwargs: dict[str, str]) -> None:
    """Time, correlation, UE, cell, NF instance, subscription and type all enter the id."""
    base = _one_id(amf_body(location_report(timeStamp="2026-07-01T08:15:30Z")))
    assert _one_id(changed, **kwargs) != base


def test_polled_ids_ignore_the_throwaway_subscription_id() -> None:
    """Two polls that observe the same location give the same id despite new subscription ids."""
    d1 = json.loads(vector("d1-amf-created-location.json"))
    again = {**d1, "subscriptionId": "2"}
    again["reportList"][0]["timeStamp"] = "2026-07-01T08:16:30Z"
    ids = [
        normalize_body(BodyKind.AMF_CREATED_SUBSCRIPTION, json.dumps(body), ingest_time=INGEST)
        .events[0]
        .event_id
        for body in (d1, again)
    ]
    assert ids[0] == ids[1]


# --- SMF ------------------------------------------------------------------------------------


def smf_body(*events: dict[str, Any], notif_id: str = "n-1") -> bytes:
    """An NsmfEventExposureNotification body."""
    return json.dumps({"notifId": notif_id, "eventNotifs": list(events)}).encode()


def normalize_smf(body: bytes) -> Normalized:
    """Parse and normalize an SMF notification body."""
    return normalize_smf_notification(parse_smf_notification(body), ingest_time=INGEST)


def test_smf_identity_prefers_supi_then_ue_address() -> None:
    """A SUPI identifies the UE; else notifId plus the UE address; routeInfo is not the UE."""
    change = {"event": "UP_PATH_CH", "dnaiChgType": "LATE", "targetDnai": "mec"}
    route = {
        "targetTraRouting": {"dnai": "mec", "routeInfo": {"ipv4Addr": "192.0.2.1", "portNumber": 0}}
    }
    result = normalize_smf(
        smf_body(
            {**change, "supi": "imsi-7"},
            {**change, "ueIpAddr": {"ipv4Addr": "10.60.0.1"}},
            {**change, "sourceUeIpv4Addr": "10.60.0.2"},
            {**change, **route},
        )
    )
    assert [e.ue.key() for e in result.events] == [
        "imsi-7",
        "smf-notif:n-1/ue:10.60.0.1",
        "smf-notif:n-1/ue:10.60.0.2",
        "smf-notif:n-1",
    ]


def test_smf_explicit_dnais_win_over_routing() -> None:
    """sourceDnai/targetDnai are used when sent, else the routing DNAIs."""
    (event,) = normalize_smf(
        smf_body(
            {
                "event": "UP_PATH_CH",
                "dnaiChgType": "EARLY",
                "sourceDnai": "edge-a",
                "targetDnai": "edge-b",
                "sourceTraRouting": {"dnai": "x"},
                "targetTraRouting": {"dnai": "y"},
                "timeStamp": "2026-07-01T08:15:30.5Z",
            }
        )
    ).events
    assert event.dnai_change is not None
    assert (event.dnai_change.source_dnai, event.dnai_change.target_dnai) == ("edge-a", "edge-b")
    assert event.event_time_field == "timeStamp"
    assert event.event_time == datetime(2026, 7, 1, 8, 15, 30, 500000, tzinfo=UTC)


def test_smf_other_events_and_missing_change_type_are_skipped() -> None:
    """Only UP_PATH_CH with a change type is a path change; the rest is skipped."""
    result = normalize_smf(
        smf_body({"event": "PDU_SES_REL"}, {"event": "UP_PATH_CH"}, {"event": "SOMETHING_NEW"})
    )
    assert result.events == []
    assert [tuple(s) for s in result.skipped] == [
        (0, "PDU_SES_REL", SkipReason.NOT_A_PATH_CHANGE),
        (1, "UP_PATH_CH", SkipReason.NO_CHANGE_TYPE),
        (2, "SOMETHING_NEW", SkipReason.NOT_A_PATH_CHANGE),
    ]


def test_smf_unknown_change_type_is_kept() -> None:
    """A change type a newer release adds is carried as sent."""
    (event,) = normalize_smf(smf_body({"event": "UP_PATH_CH", "dnaiChgType": "MIDDLE"})).events
    assert event.dnai_change is not None
    assert event.dnai_change.change_type == "MIDDLE"


# --- NEF ------------------------------------------------------------------------------------

LINK = "http://nef.example/3gpp-monitoring-event/v1/af-1/subscriptions/sub-7"


def nef_body(*reports: dict[str, Any]) -> bytes:
    """A MonitoringNotification body for LINK."""
    return json.dumps({"subscription": LINK, "monitoringEventReports": list(reports)}).encode()


def normalize_nef(body: bytes) -> Normalized:
    """Parse and normalize a NEF notification body."""
    return normalize_nef_notification(parse_nef_notification(body), ingest_time=INGEST)


def test_nef_free5gc_shape() -> None:
    """free5GC's NEF report (flat plmnId/TAC/cell, eventTime) becomes an NR event for the GPSI."""
    (event,) = normalize_nef(
        nef_body(
            {
                "monitoringType": "LOCATION_REPORTING",
                "externalId": "ue1@example.com",
                "eventTime": "2026-07-01T08:15:30.123456789Z",
                "locationInfo": {
                    "plmnId": "208-93",
                    "trackingAreaId": "000001",
                    "cellId": "00000001F",
                },
            }
        )
    ).events
    assert event.ue.gpsi == "extid-ue1@example.com"
    assert event.source.nf_type is NfType.NEF
    assert event.source.subscription_id == "sub-7"
    assert event.source.correlation_id == LINK
    assert event.source.event_type == "LOCATION_REPORTING"
    assert event.location is not None
    assert (event.location.rat, event.location.plmn) == ("NR", "20893")
    assert (event.location.tac, event.location.cell_id) == ("000001", "00000001f")
    assert event.event_time_field == "eventTime"


@pytest.mark.parametrize(
    ("info", "rat", "cell"),
    [
        ({"plmnId": "20893", "trackingAreaId": "0001", "enodeBId": "ABCDEF1"}, "EUTRA", "abcdef1"),
        ({"plmnId": "20893", "trackingAreaId": "0001", "cellId": "abcdef1"}, "EUTRA", "abcdef1"),
        ({"plmnId": "20893", "trackingAreaId": "000001"}, "NR", None),
        ({"plmnId": "20893", "trackingAreaId": "0001", "enodeBId": "abcde"}, "EUTRA", None),
    ],
)
def test_nef_flat_location_rat(info: dict[str, str], rat: str, cell: str | None) -> None:
    """The RAT comes from the cell id length, free5GC's enodeBId, else the TAC length."""
    (event,) = normalize_nef(
        nef_body({"monitoringType": "LOCATION_REPORTING", "msisdn": "336", "locationInfo": info})
    ).events
    assert event.location is not None
    assert (event.location.rat, event.location.cell_id) == (rat, cell)
    assert event.ue.gpsi == "msisdn-336"


def test_nef_user_location_wins_and_times_the_event() -> None:
    """A full userLocation is preferred, with its ueLocationTimestamp as event time."""
    (event,) = normalize_nef(
        nef_body(
            {
                "monitoringType": "LOCATION_REPORTING",
                "eventTime": "2026-07-01T08:15:30Z",
                "locationInfo": {
                    "plmnId": "001-01",
                    "trackingAreaId": "ffff",
                    "userLocation": {
                        "nrLocation": {**NR, "ueLocationTimestamp": "2026-07-01T08:10:00Z"}
                    },
                },
            }
        )
    ).events
    assert event.location is not None
    assert event.location.plmn == "20893"
    assert event.event_time_field == "ueLocationTimestamp"
    assert event.ue.session_ref == f"nef-sub:{LINK}"


def test_nef_reports_without_location_are_skipped() -> None:
    """Reachability reports, and location reports missing PLMN or TAC, give no event."""
    result = normalize_nef(
        nef_body(
            {"monitoringType": "UE_REACHABILITY", "externalId": "a@b"},
            {"monitoringType": "LOCATION_REPORTING", "locationInfo": {"trackingAreaId": "0001"}},
            {"monitoringType": "LOCATION_REPORTING", "locationInfo": {"userLocation": {}}},
        )
    )
    assert result.events == []
    assert [s.reason for s in result.skipped] == [SkipReason.NO_LOCATION] * 3


# --- arbitrary input ------------------------------------------------------------------------

_KEYS = st.sampled_from(
    [
        "type",
        "reportList",
        "location",
        "nrLocation",
        "eutraLocation",
        "n3gaLocation",
        "tai",
        "ncgi",
        "ecgi",
        "plmnId",
        "mcc",
        "mnc",
        "tac",
        "nrCellId",
        "eutraCellId",
        "supi",
        "gpsi",
        "timeStamp",
        "ueLocationTimestamp",
        "notifId",
        "eventNotifs",
        "event",
        "dnaiChgType",
        "sourceTraRouting",
        "targetTraRouting",
        "dnai",
        "ueIpAddr",
        "subscription",
        "subscriptionId",
        "monitoringEventReports",
        "monitoringType",
        "locationInfo",
        "trackingAreaId",
        "cellId",
        "enodeBId",
        "userLocation",
        "n3gppTai",
        "ignoreNcgi",
        "notifyCorrelationId",
        "eventList",
        "currentLoc",
    ]
)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.sampled_from(
        [
            "",
            "000001",
            "Aa19",
            "000000010",
            "208",
            "93",
            "UP_PATH_CH",
            "LOCATION_REPORT",
            "EARLY",
            "imsi-1",
            "2026-07-01T08:15:30.123456789Z",
            "208-93",
            "abcdef1",
        ]
    )
    | st.text(max_size=12)
)
_JSON = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(_KEYS | st.text(max_size=6), children, max_size=6)
    ),
    max_leaves=30,
)


# Checks nothing but names a UE and an app, as a traffic-influence key's binding does.
_ANY_BINDING = Binding("ti.a.i", ue="imsi-1", app="a", instance="i")


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(kind=st.sampled_from(list(BodyKind)), document=_JSON)
def test_arbitrary_json_raises_only_invalid_callback(kind: BodyKind, document: object) -> None:
    """Whatever JSON arrives, normalize_body returns a result or raises InvalidCallback."""
    body = json.dumps(document).encode()
    try:
        result = normalize_body(
            kind, body, ingest_time=INGEST, ue_context_id="imsi-1", binding=_ANY_BINDING
        )
    except InvalidCallback:
        return
    assert_records_are_their_events(result)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(kind=st.sampled_from(list(BodyKind)), body=st.binary(max_size=64))
def test_arbitrary_bytes_raise_only_invalid_callback(kind: BodyKind, body: bytes) -> None:
    """Bytes that are not JSON at all are an InvalidCallback too, never another exception."""
    with contextlib.suppress(InvalidCallback):
        normalize_body(kind, body, ingest_time=INGEST, ue_context_id="imsi-1", binding=_ANY_BINDING)


_VECTOR_KINDS = [
    (BodyKind.AMF_CREATED_SUBSCRIPTION, "d1-amf-created-location.json"),
    (BodyKind.AMF_CREATED_SUBSCRIPTION, "d2-amf-created-anyue-rm-cm.json"),
    (BodyKind.AMF_NOTIFICATION, "d1-amf-notification-location.json"),
    (BodyKind.SMF_NOTIFICATION, "d3-smf-up-path-ch-early.json"),
    (BodyKind.INFLUENCE_NOTIFICATION, "d3-smf-up-path-ch-late.json"),
    (BodyKind.PROVIDE_LOC_INFO, "v5-provide-loc-info-nr-mixed-case.json"),
]


def _paths(node: object, prefix: tuple[int | str, ...] = ()) -> list[tuple[int | str, ...]]:
    """Every path into a JSON document, the root included."""
    found = [prefix]
    if isinstance(node, dict):
        for key, child in node.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += _paths(child, (*prefix, index))
    return found


def _replace(node: Any, path: tuple[int | str, ...], value: object) -> Any:
    """A copy of ``node`` with ``value`` at ``path``."""
    if not path:
        return value
    head, *rest = path
    copy = dict(node) if isinstance(node, dict) else list(node)
    copy[head] = _replace(node[head], tuple(rest), value)  # type: ignore[index]
    return copy


@st.composite
def _mutated_vectors(draw: st.DrawFn) -> tuple[BodyKind, bytes]:
    kind, name = draw(st.sampled_from(_VECTOR_KINDS))
    document = json.loads(vector(name))
    path = draw(st.sampled_from(_paths(document)))
    return kind, json.dumps(_replace(document, path, draw(_JSON))).encode()


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(case=_mutated_vectors())
def test_mutated_vectors_raise_only_invalid_callback(case: tuple[BodyKind, bytes]) -> None:
    """A vector with any one member replaced by arbitrary JSON normalizes or is InvalidCallback."""
    kind, body = case
    try:
        result = normalize_body(
            kind, body, ingest_time=INGEST, ue_context_id="imsi-1", binding=_ANY_BINDING
        )
    except InvalidCallback as exc:
        params = exc.invalid_params
    else:
        params = ()
        assert_records_are_their_events(result)
    assert all(p.param.startswith("/") or p.param == "" for p in params)
