"""TS 29.518 Namf_EventExposure and Namf_Location models.

Field names are those of ``TS29518_Namf_EventExposure.yaml`` and ``TS29518_Namf_Location.yaml``.
Note the spelling the specification itself uses: the subscription says ``anyUE``, the report says
``anyUe``.

What free5GC does with them (docs/free5gc.md; free5gc/amf ``internal/sbi/api_eventexposure.go``):
it never POSTs an AmfEventNotification; the only reports are the immediate ones in the
``reportList`` of the 201 to the subscribe POST, whose ``timeStamp`` is the subscription time (the
location's own time is ``ueLocationTimestamp``). It echoes ``eventNotifyUri``,
``notifyCorrelationId`` and ``nfId`` as ``""`` when absent, and accepts event types that are not
in the specification. So every enumeration here is an open string, and only ``type`` is mandatory
in a report.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from subscriber.sbi.common import SbiModel, UserLocation, validate_json


class AmfEventType(StrEnum):
    """Event types of Namf_EventExposure (Rel-18); other values are accepted as plain strings."""

    LOCATION_REPORT = "LOCATION_REPORT"
    PRESENCE_IN_AOI_REPORT = "PRESENCE_IN_AOI_REPORT"
    TIMEZONE_REPORT = "TIMEZONE_REPORT"
    ACCESS_TYPE_REPORT = "ACCESS_TYPE_REPORT"
    REGISTRATION_STATE_REPORT = "REGISTRATION_STATE_REPORT"
    CONNECTIVITY_STATE_REPORT = "CONNECTIVITY_STATE_REPORT"
    REACHABILITY_REPORT = "REACHABILITY_REPORT"
    COMMUNICATION_FAILURE_REPORT = "COMMUNICATION_FAILURE_REPORT"
    UES_IN_AREA_REPORT = "UES_IN_AREA_REPORT"
    SUBSCRIPTION_ID_CHANGE = "SUBSCRIPTION_ID_CHANGE"
    SUBSCRIPTION_ID_ADDITION = "SUBSCRIPTION_ID_ADDITION"
    SUBSCRIPTION_TERMINATION = "SUBSCRIPTION_TERMINATION"
    LOSS_OF_CONNECTIVITY = "LOSS_OF_CONNECTIVITY"
    FIVE_GS_USER_STATE_REPORT = "5GS_USER_STATE_REPORT"
    AVAILABILITY_AFTER_DDN_FAILURE = "AVAILABILITY_AFTER_DDN_FAILURE"
    TYPE_ALLOCATION_CODE_REPORT = "TYPE_ALLOCATION_CODE_REPORT"
    FREQUENT_MOBILITY_REGISTRATION_REPORT = "FREQUENT_MOBILITY_REGISTRATION_REPORT"
    SNSSAI_TA_MAPPING_REPORT = "SNSSAI_TA_MAPPING_REPORT"
    UE_LOCATION_TRENDS = "UE_LOCATION_TRENDS"
    UE_ACCESS_BEHAVIOR_TRENDS = "UE_ACCESS_BEHAVIOR_TRENDS"
    UE_MM_TRANSACTION_REPORT = "UE_MM_TRANSACTION_REPORT"


class AmfEventTrigger(StrEnum):
    """How the AMF generates reports for a subscribed event."""

    ONE_TIME = "ONE_TIME"
    CONTINUOUS = "CONTINUOUS"
    PERIODIC = "PERIODIC"


class LocationFilter(StrEnum):
    """Which location changes a LOCATION_REPORT subscription reports."""

    TAI = "TAI"
    CELL_ID = "CELL_ID"
    RAN_NODE = "RAN_NODE"
    N3IWF = "N3IWF"
    UE_IP = "UE_IP"
    UDP_PORT = "UDP_PORT"
    TNAP_ID = "TNAP_ID"
    GLI = "GLI"
    TWAP_ID = "TWAP_ID"


class AmfEvent(SbiModel):
    """One event of a subscription: its type and filters."""

    type: str = Field(description="An AmfEventType value; unknown values are kept.")
    immediate_flag: bool | None = None
    area_list: list[dict[str, object]] | None = None
    location_filter_list: list[str] | None = None
    ref_id: int | None = None
    report_ue_reachable: bool | None = None
    reachability_filter: str | None = None
    udm_detect_ind: bool | None = None
    max_reports: int | None = None
    presence_info_list: dict[str, object] | None = None
    max_response_time: int | None = None
    min_interval: int | None = None
    next_report: datetime | None = None
    idle_status_ind: bool | None = None
    next_periodic_report_time: datetime | None = None


class AmfEventMode(SbiModel):
    """How and for how long reports are generated."""

    trigger: str = Field(description="An AmfEventTrigger value; unknown values are kept.")
    max_reports: int | None = None
    expiry: datetime | None = None
    rep_period: int | None = None
    samp_ratio: int | None = None
    partitioning_criteria: list[str] | None = None
    notif_flag: str | None = None


class AmfEventSubscription(SbiModel):
    """The subscription resource. Targeting: ``supi``, ``gpsi``, ``groupId`` or ``anyUE``.

    The specification makes ``eventNotifyUri``, ``notifyCorrelationId`` and ``nfId`` mandatory;
    free5GC neither requires nor omits them (echoes ``""``), so they are optional here.
    """

    event_list: list[AmfEvent] = Field(min_length=1)
    event_notify_uri: str | None = None
    notify_correlation_id: str | None = None
    nf_id: str | None = None
    subs_change_notify_uri: str | None = None
    subs_change_notify_correlation_id: str | None = None
    supi: str | None = None
    group_id: str | None = None
    exclude_supi_list: list[str] | None = None
    exclude_gpsi_list: list[str] | None = None
    include_supi_list: list[str] | None = None
    include_gpsi_list: list[str] | None = None
    gpsi: str | None = None
    pei: str | None = None
    any_ue: bool | None = Field(None, alias="anyUE")
    options: AmfEventMode | None = None
    source_nf_type: str | None = None
    term_notify_ind: bool | None = None


class AmfCreateEventSubscription(SbiModel):
    """Body of ``POST {apiRoot}/namf-evts/v1/subscriptions``."""

    subscription: AmfEventSubscription
    supported_features: str | None = None
    old_guami: dict[str, object] | None = None


class AmfEventState(SbiModel):
    """Whether the subscribed event is still active, and what remains of it."""

    active: bool
    remain_reports: int | None = None
    remain_duration: int | None = None


class RmInfo(SbiModel):
    """Registration state of a UE on one access type."""

    rm_state: str
    access_type: str


class CmInfo(SbiModel):
    """Connection-management state of a UE on one access type."""

    cm_state: str
    access_type: str


class AmfEventReport(SbiModel):
    """One report. Only ``type`` is required: ``state`` and ``timeStamp`` are mandatory in the
    specification but their absence does not stop us from using the report.
    """

    type: str = Field(description="An AmfEventType value; unknown values are kept.")
    state: AmfEventState | None = None
    time_stamp: datetime | None = None
    subscription_id: str | None = None
    any_ue: bool | None = None
    supi: str | None = None
    area_list: list[dict[str, object]] | None = None
    ref_id: int | None = None
    gpsi: str | None = None
    pei: str | None = None
    location: UserLocation | None = None
    additional_location: UserLocation | None = None
    timezone: str | None = None
    access_type_list: list[str] | None = None
    rm_info_list: list[RmInfo] | None = None
    cm_info_list: list[CmInfo] | None = None
    reachability: str | None = None
    loss_of_connect_reason: str | None = None
    number_of_ues: int | None = None


class AmfEventNotification(SbiModel):
    """Body the AMF POSTs to ``eventNotifyUri`` (never sent by free5GC)."""

    notify_correlation_id: str | None = None
    subs_change_notify_correlation_id: str | None = None
    report_list: list[AmfEventReport] | None = None


class AmfCreatedEventSubscription(SbiModel):
    """Body of the 201 to the subscribe POST, with the immediate reports in ``reportList``."""

    subscription: AmfEventSubscription
    subscription_id: str
    report_list: list[AmfEventReport] | None = None
    supported_features: str | None = None


class RequestLocInfo(SbiModel):
    """Body of ``POST {apiRoot}/namf-loc/v1/{ueContextId}/provide-loc-info``."""

    req5gs_loc: bool | None = Field(None, alias="req5gsLoc")
    req_current_loc: bool | None = None
    req_rat_type: bool | None = None
    req_time_zone: bool | None = None
    supported_features: str | None = None


class ProvideLocInfo(SbiModel):
    """Answer of provide-loc-info. free5GC returns its cached location with ``currentLoc: true``."""

    current_loc: bool | None = None
    location: UserLocation | None = None
    additional_location: UserLocation | None = None
    geo_info: dict[str, object] | None = None
    location_age: int | None = None
    rat_type: str | None = None
    timezone: str | None = None
    supported_features: str | None = None


def parse_amf_notification(body: bytes | bytearray | str) -> AmfEventNotification:
    """Parse an AmfEventNotification callback body.

    Raises:
        InvalidCallback: malformed JSON or schema violation, with JSON-pointer invalid params.
    """
    return validate_json(AmfEventNotification, body)


def parse_amf_created_subscription(body: bytes | bytearray | str) -> AmfCreatedEventSubscription:
    """Parse the 201 body of a subscribe POST (the polled immediate reports).

    Raises:
        InvalidCallback: malformed JSON or schema violation, with JSON-pointer invalid params.
    """
    return validate_json(AmfCreatedEventSubscription, body)


def parse_amf_create_subscription(body: bytes | bytearray | str) -> AmfCreateEventSubscription:
    """Parse a subscribe POST body (used by the fake core and by tests).

    Raises:
        InvalidCallback: malformed JSON or schema violation, with JSON-pointer invalid params.
    """
    return validate_json(AmfCreateEventSubscription, body)


def parse_provide_loc_info(body: bytes | bytearray | str) -> ProvideLocInfo:
    """Parse the 200 body of provide-loc-info.

    Raises:
        InvalidCallback: malformed JSON or schema violation, with JSON-pointer invalid params.
    """
    return validate_json(ProvideLocInfo, body)
