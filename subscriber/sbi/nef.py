"""TS 29.122 MonitoringEvent models (the NEF's northbound ``3gpp-monitoring-event`` API).

Field names are those of ``TS29122_MonitoringEvent.yaml``.

A notification names its subscription by the ``subscription`` link (the resource the NEF
created), which is how the receiver ties it to what we subscribed. For LOCATION_REPORTING the
location comes in ``locationInfo``: either a full TS 29.571 ``userLocation``, or the flat string
fields ``plmnId``, ``trackingAreaId``, ``cellId`` and ``enodeBId``. The specification leaves those
strings free-form; free5GC's NEF (newer revision, ``internal/sbi/processor/callback.go``
``toLocationInfo``) fills them from the AMF report as ``plmnId: "<mcc>-<mnc>"``,
``trackingAreaId: <tac>``, ``cellId: <nrCellId>`` and, for E-UTRA, ``enodeBId: <eutraCellId>``, and
copies the AMF report ``timeStamp`` into ``eventTime``. Those are the shapes validated here:
a TAC of 4 or 6 hex digits, a cell id of 9 (NR) or 7 (E-UTRA) hex digits, lower-cased.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints

from subscriber.sbi.common import SbiModel, Tac, UserLocation, validate_json


class MonitoringType(StrEnum):
    """Monitoring event types; other values are accepted as plain strings."""

    LOSS_OF_CONNECTIVITY = "LOSS_OF_CONNECTIVITY"
    UE_REACHABILITY = "UE_REACHABILITY"
    LOCATION_REPORTING = "LOCATION_REPORTING"
    CHANGE_OF_IMSI_IMEI_ASSOCIATION = "CHANGE_OF_IMSI_IMEI_ASSOCIATION"
    ROAMING_STATUS = "ROAMING_STATUS"
    COMMUNICATION_FAILURE = "COMMUNICATION_FAILURE"
    AVAILABILITY_AFTER_DDN_FAILURE = "AVAILABILITY_AFTER_DDN_FAILURE"
    NUMBER_OF_UES_IN_AN_AREA = "NUMBER_OF_UES_IN_AN_AREA"
    PDN_CONNECTIVITY_STATUS = "PDN_CONNECTIVITY_STATUS"
    DOWNLINK_DATA_DELIVERY_STATUS = "DOWNLINK_DATA_DELIVERY_STATUS"
    API_SUPPORT_CAPABILITY = "API_SUPPORT_CAPABILITY"
    NUM_OF_REGD_UES = "NUM_OF_REGD_UES"
    NUM_OF_ESTD_PDU_SESSIONS = "NUM_OF_ESTD_PDU_SESSIONS"
    AREA_OF_INTEREST = "AREA_OF_INTEREST"
    GROUP_MEMBER_LIST_CHANGE = "GROUP_MEMBER_LIST_CHANGE"
    APPLICATION_START = "APPLICATION_START"
    # The Rel-18 yaml spells it with a space; its description says APPLICATION_STOP.
    APPLICATION_STOP = "APPLICATION STOP"


class LocationType(StrEnum):
    """Current or last known location."""

    CURRENT_LOCATION = "CURRENT_LOCATION"
    LAST_KNOWN_LOCATION = "LAST_KNOWN_LOCATION"
    CURRENT_OR_LAST_KNOWN_LOCATION = "CURRENT_OR_LAST_KNOWN_LOCATION"
    INITIAL_LOCATION = "INITIAL_LOCATION"


class Accuracy(StrEnum):
    """Granularity of the reported location."""

    CGI_ECGI = "CGI_ECGI"
    ENODEB = "ENODEB"
    TA_RA = "TA_RA"
    PLMN = "PLMN"
    TWAN_ID = "TWAN_ID"
    GEO_AREA = "GEO_AREA"
    CIVIC_ADDR = "CIVIC_ADDR"


NefPlmnId = Annotated[str, StringConstraints(pattern=r"^[0-9]{3}-?[0-9]{2,3}$")]
NefCellId = Annotated[
    str, StringConstraints(pattern=r"^(?:[A-Fa-f0-9]{7}|[A-Fa-f0-9]{9})$", to_lower=True)
]
NefEnodeBId = Annotated[str, StringConstraints(pattern=r"^[A-Fa-f0-9]{5,8}$", to_lower=True)]


class LocationInfo(SbiModel):
    """Where the UE is, in the NEF's words."""

    age_of_location_info: int | None = None
    cell_id: NefCellId | None = None
    enode_b_id: NefEnodeBId | None = None
    routing_area_id: str | None = None
    tracking_area_id: Tac | None = None
    plmn_id: NefPlmnId | None = None
    twan_id: str | None = None
    user_location: UserLocation | None = None


class MonitoringEventReport(SbiModel):
    """One monitoring report; ``monitoringType`` is mandatory."""

    monitoring_type: str = Field(description="A MonitoringType value; unknown values are kept.")
    external_id: str | None = None
    msisdn: str | None = None
    location_info: LocationInfo | None = None
    loc_failure_cause: str | None = None
    event_time: datetime | None = None
    plmn_id: dict[str, object] | None = None
    reachability_type: str | None = None


class MonitoringNotification(SbiModel):
    """Body the NEF POSTs to ``notificationDestination``."""

    subscription: str = Field(description="Link to the NEF's subscription resource.")
    monitoring_event_reports: list[MonitoringEventReport] | None = None
    cancel_ind: bool | None = None

    def subscription_id(self) -> str:
        """The last path segment of the subscription link (the NEF's subscription id)."""
        return self.subscription.rstrip("/").rsplit("/", 1)[-1]


class MonitoringEventSubscription(SbiModel):
    """Body of ``POST {apiRoot}/3gpp-monitoring-event/v1/{scsAsId}/subscriptions`` and its 201.

    The specification requires ``maximumNumberOfReports`` or ``monitorExpireTime``; free5GC's NEF
    rejects a request with neither.
    """

    self_: str | None = Field(None, alias="self")
    supported_features: str | None = None
    mtc_provider_id: str | None = None
    af_service_id: str | None = None
    external_id: str | None = None
    msisdn: str | None = None
    external_group_id: str | None = None
    ipv4_addr: str | None = None
    ipv6_addr: str | None = None
    dnn: str | None = None
    notification_destination: str
    request_test_notification: bool | None = None
    monitoring_type: str = Field(description="A MonitoringType value; unknown values are kept.")
    maximum_number_of_reports: int | None = Field(None, ge=1)
    monitor_expire_time: datetime | None = None
    rep_period: int | None = None
    location_type: str | None = None
    accuracy: str | None = None
    minimum_report_interval: int | None = None
    immediate_rep: bool | None = None
    monitoring_event_report: MonitoringEventReport | None = None


def parse_nef_notification(body: bytes | bytearray | str) -> MonitoringNotification:
    """Parse a MonitoringNotification callback body.

    Raises:
        InvalidCallback: malformed JSON or schema violation, with JSON-pointer invalid params.
    """
    return validate_json(MonitoringNotification, body)


def parse_monitoring_subscription(body: bytes | bytearray | str) -> MonitoringEventSubscription:
    """Parse a MonitoringEventSubscription (the 201 of a subscribe POST).

    Raises:
        InvalidCallback: malformed JSON or schema violation, with JSON-pointer invalid params.
    """
    return validate_json(MonitoringEventSubscription, body)
