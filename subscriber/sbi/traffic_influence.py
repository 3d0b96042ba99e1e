"""TS 29.522 TrafficInfluence models (the NEF's northbound ``3gpp-traffic-influence`` API).

Field names are those of ``TS29522_TrafficInfluence.yaml`` and, for Snssai, ``TS29571_CommonData``.

The AF asks the NEF to route a UE's application traffic to a DNAI (``trafficRoutes``) and to be
told when the user plane moves (``subscribedEvents: [UP_PATH_CHANGE]``, ``dnaiChgType``).
Notifications reach ``notificationDestination`` in one of two shapes:

* the specification's ``EventNotification``, here :class:`UpPathChangeNotification`
  (``subscribedEvent``, ``dnaiChgType``, ``sourceTrafficRoute``, ``targetTrafficRoute``,
  ``afTransId``, ``afAckUri``);
* free5GC's: its NEF forwards the SMF's ``NsmfEventExposureNotification`` unchanged (TS 29.508,
  :mod:`subscriber.sbi.smf`), ``notifId`` being the NEF's own correlation id (free5gc/nef
  ``internal/sbi/processor/callback.go`` ``SmfNotification``, see docs/free5gc.md).

:func:`parse_influence_notification` tells them apart by their required fields.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import orjson
from pydantic import Field, RootModel, StringConstraints

from subscriber.errors import InvalidCallback, InvalidParam
from subscriber.sbi.common import SbiModel, validate_json
from subscriber.sbi.smf import (
    NsmfEventExposureNotification,
    RouteToLocation,
    parse_smf_notification,
)

UP_PATH_CHANGE = "UP_PATH_CHANGE"
"""The one TS 29.522 traffic-influence event."""

Sd = Annotated[str, StringConstraints(pattern=r"^[A-Fa-f0-9]{6}$", to_lower=True)]


class AfResultStatus(StrEnum):
    """The AF's answer to a user-plane path change it was asked to acknowledge."""

    SUCCESS = "SUCCESS"
    TEMPORARY_CONGESTION = "TEMPORARY_CONGESTION"
    RELOC_NO_ALLOWED = "RELOC_NO_ALLOWED"
    OTHER = "OTHER"


class Snssai(SbiModel):
    """A network slice: slice/service type and optional differentiator (TS 29.571)."""

    sst: int = Field(ge=0, le=255)
    sd: Sd | None = None


class TrafficInfluSub(SbiModel):
    """Body of ``POST {apiRoot}/3gpp-traffic-influence/v1/{afId}/subscriptions`` and its 201.

    Only the attributes an AF steering one UE's application needs are modelled; unknown ones
    in answers are ignored.
    """

    af_app_id: str | None = None
    af_trans_id: str | None = None
    app_relo_ind: bool | None = None
    dnn: str | None = None
    snssai: Snssai | None = None
    any_ue_ind: bool | None = None
    external_group_id: str | None = None
    subscribed_events: list[str] | None = None
    gpsi: str | None = None
    ipv4_addr: str | None = None
    ipv6_addr: str | None = None
    dnai_chg_type: str | None = None
    notification_destination: str | None = None
    self_: str | None = Field(None, alias="self")
    traffic_routes: list[RouteToLocation] | None = None
    af_ack_ind: bool | None = None
    addr_preser_ind: bool | None = None
    supp_feat: str | None = None


class TrafficInfluSubPatch(SbiModel):
    """Body of ``PATCH .../subscriptions/{subscriptionId}`` (``application/merge-patch+json``)."""

    app_relo_ind: bool | None = None
    traffic_routes: list[RouteToLocation] | None = None
    af_ack_ind: bool | None = None
    notification_destination: str | None = None


class UpPathChangeNotification(SbiModel):
    """The specification's UP_PATH_CHANGE notification (``EventNotification``, TS 29.522
    §5.4.3.3.5), renamed here apart from TS 29.508's model of the same name."""

    af_trans_id: str | None = None
    dnai_chg_type: str = Field(description="EARLY, LATE or EARLY_LATE; unknown values kept.")
    source_traffic_route: RouteToLocation | None = None
    subscribed_event: str = Field(description="UP_PATH_CHANGE; unknown values kept.")
    target_traffic_route: RouteToLocation | None = None
    source_dnai: str | None = None
    target_dnai: str | None = None
    gpsi: str | None = None
    src_ue_ipv4_addr: str | None = None
    tgt_ue_ipv4_addr: str | None = None
    af_ack_uri: str | None = None


class AfResultInfo(SbiModel):
    """How the application side took the path change."""

    af_status: str
    traffic_route: RouteToLocation | None = None


class AfAckInfo(SbiModel):
    """The AF acknowledgement POSTed to ``afAckUri`` when the subscription set ``afAckInd``."""

    af_trans_id: str | None = None
    ack_result: AfResultInfo
    gpsi: str | None = None


InfluenceNotification = UpPathChangeNotification | NsmfEventExposureNotification
"""A traffic-influence notification in either shape the module docstring names."""


class TrafficInfluenceNotification(
    RootModel[UpPathChangeNotification | NsmfEventExposureNotification]
):
    """A body on ``/callbacks/ti/{key}``, in either shape (for the OpenAPI document)."""


def parse_traffic_influ_sub(body: bytes | bytearray | str) -> TrafficInfluSub:
    """Parse a TrafficInfluSub (a 201, 200 or GET answer).

    Raises:
        InvalidCallback: malformed JSON or schema violation, with JSON-pointer invalid params.
    """
    return validate_json(TrafficInfluSub, body)


def parse_influence_notification(body: bytes | bytearray | str) -> InfluenceNotification:
    """Parse a notification on a traffic-influence subscription, in either shape.

    A body with ``eventNotifs`` is free5GC's forwarded SMF notification; anything else must be
    the specification's EventNotification.

    Raises:
        InvalidCallback: neither shape: malformed JSON or schema violation.
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidCallback(f"not JSON: {exc}", [InvalidParam("", "not JSON")]) from exc
    if isinstance(doc, dict) and ("eventNotifs" in doc or "notifId" in doc):
        return parse_smf_notification(body)
    notification = validate_json(UpPathChangeNotification, body)
    if notification.subscribed_event != UP_PATH_CHANGE:
        raise InvalidCallback(
            "not a traffic-influence notification",
            [InvalidParam("/subscribedEvent", f"must be {UP_PATH_CHANGE}")],
        )
    return notification
