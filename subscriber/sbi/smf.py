"""TS 29.508 Nsmf_EventExposure models.

Field names are those of ``TS29508_Nsmf_EventExposure.yaml`` and, for RouteToLocation and
DnaiChangeType, ``TS29571_CommonData.yaml``.

What free5GC does (docs/free5gc.md; free5gc/smf ``internal/sbi/api_eventexposure.go``): it has no
subscription API (501), and sends only
UP_PATH_CH, to a ``notificationUri`` learned from AF traffic influence, when PCC rules change. Its
notification has ``"timeStamp": null`` although the specification makes it mandatory, no SUPI, no
UE address, ``sourceTraRouting: {"dnai": ""}`` for the default route, and an EARLY_LATE request
yields two POSTs, EARLY and LATE, which may arrive in either order. So ``timeStamp`` is optional
here and RouteToLocation accepts an empty DNAI with neither ``routeInfo`` nor ``routeProfId``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from subscriber.sbi.common import IpAddr, PlmnId, SbiModel, validate_json


class SmfEvent(StrEnum):
    """Nsmf_EventExposure event types (Rel-18); other values are accepted as plain strings."""

    AC_TY_CH = "AC_TY_CH"
    UP_PATH_CH = "UP_PATH_CH"
    PDU_SES_REL = "PDU_SES_REL"
    PLMN_CH = "PLMN_CH"
    UE_IP_CH = "UE_IP_CH"
    RAT_TY_CH = "RAT_TY_CH"
    DDDS = "DDDS"
    COMM_FAIL = "COMM_FAIL"
    PDU_SES_EST = "PDU_SES_EST"
    QFI_ALLOC = "QFI_ALLOC"
    QOS_MON = "QOS_MON"
    SMCC_EXP = "SMCC_EXP"
    DISPERSION = "DISPERSION"
    RED_TRANS_EXP = "RED_TRANS_EXP"
    WLAN_INFO = "WLAN_INFO"
    UPF_INFO = "UPF_INFO"
    UP_STATUS_INFO = "UP_STATUS_INFO"
    SATB_CH = "SATB_CH"
    TRAFFIC_CORRELATION = "TRAFFIC_CORRELATION"


class DnaiChangeType(StrEnum):
    """Which side of a user-plane path change a notification is about."""

    EARLY = "EARLY"
    EARLY_LATE = "EARLY_LATE"
    LATE = "LATE"


class NotificationMethod(StrEnum):
    """When the SMF notifies."""

    PERIODIC = "PERIODIC"
    ONE_TIME = "ONE_TIME"
    ON_EVENT_DETECTION = "ON_EVENT_DETECTION"


class RouteInformation(SbiModel):
    """Where N6 traffic of the DNAI is routed (the data-network tunnel end point)."""

    ipv4_addr: str | None = None
    ipv6_addr: str | None = None
    port_number: int | None = None


class RouteToLocation(SbiModel):
    """A DNAI and how to reach it; ``{"dnai": ""}`` is free5GC's default route."""

    dnai: str
    route_info: RouteInformation | None = None
    route_prof_id: str | None = None


class EventSubscription(SbiModel):
    """One subscribed SMF event."""

    event: str = Field(description="An SmfEvent value; unknown values are kept.")
    dnai_chg_type: str | None = None
    app_ids: list[str] | None = None


class NsmfEventExposure(SbiModel):
    """Body of ``POST {apiRoot}/nsmf-event-exposure/v1/subscriptions`` and of its 201."""

    supi: str | None = None
    gpsi: str | None = None
    any_ue_ind: bool | None = None
    group_id: str | None = None
    pdu_se_id: int | None = None
    dnn: str | None = None
    snssai: dict[str, object] | None = None
    dnai: str | None = None
    nf_id: str | None = None
    sub_id: str | None = None
    notif_id: str
    notif_uri: str
    event_subs: list[EventSubscription] = Field(min_length=1)
    event_notifs: list[EventNotification] | None = None
    imme_rep: bool | None = Field(None, alias="ImmeRep")
    notif_method: str | None = None
    max_report_nbr: int | None = None
    expiry: datetime | None = None
    rep_period: int | None = None
    supported_features: str | None = None


class EventNotification(SbiModel):
    """One event that occurred; the UP_PATH_CH fields are modelled, the rest ignored."""

    event: str = Field(description="An SmfEvent value; unknown values are kept.")
    time_stamp: datetime | None = None
    supi: str | None = None
    gpsi: str | None = None
    ue_ip_addr: IpAddr | None = None
    source_dnai: str | None = None
    target_dnai: str | None = None
    dnai_chg_type: str | None = Field(
        None, description="A DnaiChangeType value; unknown values are kept."
    )
    source_ue_ipv4_addr: str | None = None
    source_ue_ipv6_prefix: str | None = None
    target_ue_ipv4_addr: str | None = None
    target_ue_ipv6_prefix: str | None = None
    source_tra_routing: RouteToLocation | None = None
    target_tra_routing: RouteToLocation | None = None
    ue_mac: str | None = None
    plmn_id: PlmnId | None = None
    pdu_se_id: int | None = None
    dnn: str | None = None
    ipv4_addr: str | None = None


class NsmfEventExposureNotification(SbiModel):
    """Body the SMF POSTs to the notification URI."""

    notif_id: str
    event_notifs: list[EventNotification] = Field(min_length=1)
    ack_uri: str | None = None


NsmfEventExposure.model_rebuild()


def parse_smf_notification(body: bytes | bytearray | str) -> NsmfEventExposureNotification:
    """Parse an NsmfEventExposureNotification callback body.

    Raises:
        InvalidCallback: malformed JSON or schema violation, with JSON-pointer invalid params.
    """
    return validate_json(NsmfEventExposureNotification, body)


def parse_smf_subscription(body: bytes | bytearray | str) -> NsmfEventExposure:
    """Parse an NsmfEventExposure subscription (the 201 of a subscribe POST).

    Raises:
        InvalidCallback: malformed JSON or schema violation, with JSON-pointer invalid params.
    """
    return validate_json(NsmfEventExposure, body)
