"""ETSI GS MEC 021 (Application Mobility Service API, v2.2.1) data types, as pydantic models.

Names, shapes and enumerations follow the ETSI OpenAPI definition ``MEC021_AppMobilityService.yaml``
(ETSI Forge ``mec/gs021-amsi-api``, v2.2.1); each model names its clause. Bodies are validated
here, at the boundary, with the limits the AMS enforces (identifier and URI lengths, list sizes),
so the store and the workflow never see a value they would refuse later. Pure: no I/O.

One addition, not in MEC 021: ``DeviceInformation.contextTransferFailure``. MEC 021 lets an
application report a completed transfer (``contextTransferState`` 1) but has no way to report a
failed one short of letting the AMS time out; the application sets this attribute to say why it
could not hand the context over, and the move follows the application's policy at once.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from enum import IntEnum
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

MAX_ID = 256
"""Longest identifier accepted (appInstanceId, associateId value, resource ids)."""
MAX_URI = 2048
"""Longest URI accepted (callbackReference)."""
MAX_DEVICES = 1000
"""Most devices one registration may list."""
MAX_REASON = 256


def _uri(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http or https URI")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry user information")
    if parts.fragment:
        raise ValueError("must not carry a fragment")
    _ = parts.port  # raises ValueError for a port out of range
    return value


Id = Annotated[str, Field(min_length=1, max_length=MAX_ID, pattern=r"^[\x21-\x7e]+$")]
"""An identifier: printable ASCII without spaces, at most MAX_ID characters."""
Uri = Annotated[str, Field(min_length=1, max_length=MAX_URI), AfterValidator(_uri)]


class _Mec(BaseModel):
    # MEC 021 bodies are closed: an unknown attribute is more likely a typo than an extension.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class AppMobilityServiceLevel(IntEnum):
    """Clause 7.5.x (AppMobilityServiceLevel): may the serving instance change, and how."""

    APP_MOBILITY_NOT_ALLOWED = 1
    APP_MOBILITY_WITH_CONFIRMATION = 2
    APP_MOBILITY_WITHOUT_CONFIRMATION = 3


class ContextTransferState(IntEnum):
    """Clause 7.5.x (ContextTransferState): where the user context of one device is."""

    NOT_TRANSFERRED = 0
    USER_CONTEXT_TRANSFER_COMPLETED = 1


class MobilityStatus(IntEnum):
    """Clause 7.4.2 (MobilityProcedureNotification.mobilityStatus)."""

    INTERHOST_MOVEOUT_TRIGGERED = 1
    INTERHOST_MOVEOUT_COMPLETED = 2
    INTERHOST_MOVEOUT_FAILED = 3


class AssociateId(_Mec):
    """ETSI GS MEC 012 AssociateId: the device, e.g. by its IPv4 address (type 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal[1, 2, 3, 4] = Field(
        description="1 = UE_IPv4_ADDRESS, 2 = UE_IPV6_ADDRESS, 3 = NATED_IP_ADDRESS, 4 = GTP_TEID."
    )
    value: Id

    def key(self) -> str:
        """A stable key for maps and storage."""
        return f"{self.type}:{self.value}"


class DeviceInformation(_Mec):
    """Clause 7.2.2, RegistrationInfo.deviceInformation: one device the instance serves."""

    associateId: AssociateId
    appMobilityServiceLevel: AppMobilityServiceLevel | None = Field(
        None, description="Present for a stateful application (MEC 021 clause 7.2.2)."
    )
    contextTransferState: ContextTransferState | None = None
    contextTransferFailure: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_REASON,
        description="Not MEC 021 (subscriber extension): why the application could not "
        "transfer this device's context; ends the procedure at once.",
    )


class ServiceConsumerId(_Mec):
    """Clause 7.2.2, RegistrationInfo.serviceConsumerId: exactly one of the two."""

    appInstanceId: Id | None = None
    mepId: Id | None = None


class RegistrationInfo(_Mec):
    """Clause 7.2.2: an application instance's registration, and its devices."""

    appMobilityServiceId: Id | None = Field(
        None, description="Absent in POST requests, present otherwise."
    )
    serviceConsumerId: ServiceConsumerId
    deviceInformation: list[DeviceInformation] = Field(default_factory=list, max_length=MAX_DEVICES)
    expiryTime: int | None = Field(
        None, ge=0, le=2**32 - 1, description="Seconds from registration; 0 or absent: never."
    )


class TimeStamp(_Mec):
    """Clause 6.x TimeStamp (ETSI GS MEC 011): Unix time in seconds and nanoseconds."""

    seconds: int = Field(ge=0, le=2**32 - 1)
    nanoSeconds: int = Field(ge=0, le=999_999_999)

    @classmethod
    def of(cls, when: datetime) -> TimeStamp:
        """The time stamp of ``when``."""
        micros = int(when.timestamp() * 1_000_000)
        return cls(seconds=micros // 1_000_000, nanoSeconds=(micros % 1_000_000) * 1000)

    def to_datetime(self) -> datetime:
        """As an aware datetime."""
        return datetime.fromtimestamp(self.seconds + self.nanoSeconds / 1e9, UTC)


class LinkType(_Mec):
    """A hyperlink."""

    href: str


class SelfLink(_Mec):
    """``_links`` with only ``self``."""

    self_: LinkType = Field(alias="self")


class MobilityProcedureFilter(_Mec):
    """Clause 7.3.2, MobilityProcedureSubscription.filterCriteria."""

    appInstanceId: Id | None = None
    associateId: list[AssociateId] = Field(default_factory=list, max_length=MAX_DEVICES)
    mobilityStatus: list[MobilityStatus] = Field(
        default_factory=list,
        max_length=3,
        description="Absent: 1 = INTERHOST_MOVEOUT_TRIGGERED only (MEC 021 clause 7.3.2).",
    )


class _Subscription(_Mec):
    links: SelfLink | None = Field(None, alias="_links")
    callbackReference: Uri | None = None
    requestTestNotification: bool | None = None
    websockNotifConfig: dict[str, object] | None = Field(
        None, description="Not supported: notifications are POSTed to callbackReference."
    )
    expiryDeadline: TimeStamp | None = None


class MobilityProcedureSubscription(_Subscription):
    """Clause 7.3.2: notifications of mobility procedures for some devices or an instance."""

    subscriptionType: Literal["MobilityProcedureSubscription"]
    filterCriteria: MobilityProcedureFilter


class AdjacentAppInfoFilter(_Mec):
    """Clause 7.3.3, AdjacentAppInfoSubscription.filterCriteria."""

    appInstanceId: Id


class AdjacentAppInfoSubscription(_Subscription):
    """Clause 7.3.3: notifications of new instances adjacent to an application instance."""

    subscriptionType: Literal["AdjacentAppInfoSubscription"]
    filterCriteria: AdjacentAppInfoFilter


Subscription = Annotated[
    MobilityProcedureSubscription | AdjacentAppInfoSubscription,
    Field(discriminator="subscriptionType"),
]


class SubscriptionLink(_Mec):
    """One entry of SubscriptionLinkList.subscription."""

    href: str
    subscriptionType: str


class SubscriptionLinkList(_Mec):
    """Clause 7.3.4: the subscriptions of the requester."""

    links: SelfLink = Field(alias="_links")
    subscription: list[SubscriptionLink] = Field(default_factory=list)


class IpAddress(_Mec):
    """One address of a CommunicationInterface."""

    host: str
    port: int = Field(ge=1, le=65535)


class CommunicationInterface(_Mec):
    """Clause 7.5.x CommunicationInterface: where an instance is reached."""

    ipAddresses: list[IpAddress] = Field(default_factory=list)


class TargetAppInfo(_Mec):
    """Clause 7.4.2, MobilityProcedureNotification.targetAppInfo."""

    appInstanceId: str
    commInterface: CommunicationInterface | None = None


class NotificationLinks(_Mec):
    """``_links`` of a notification: the subscription it answers."""

    subscription: LinkType


class MobilityProcedureNotification(_Mec):
    """Clause 7.4.2: the AMS tells an instance its devices are moving (or moved, or not)."""

    notificationType: Literal["MobilityProcedureNotification"] = "MobilityProcedureNotification"
    timeStamp: TimeStamp | None = None
    associateId: list[AssociateId] = Field(default_factory=list)
    mobilityStatus: MobilityStatus
    targetAppInfo: TargetAppInfo | None = None
    links: NotificationLinks = Field(alias="_links")


class AdjacentAppInfo(_Mec):
    """One entry of AdjacentAppInfoNotification.adjacentAppInfo."""

    appInstanceId: str
    commInterface: list[CommunicationInterface] = Field(default_factory=list)


class AdjacentAppInfoNotification(_Mec):
    """Clause 7.4.3: a new instance adjacent to the subscriber's instance."""

    notificationType: Literal["AdjacentAppInfoNotification"] = "AdjacentAppInfoNotification"
    timeStamp: TimeStamp | None = None
    adjacentAppInfo: list[AdjacentAppInfo] = Field(default_factory=list)
    links: NotificationLinks = Field(alias="_links")


class MecHostInformation(_Mec):
    """ETSI GS MEC 011 MECHostInformation: the host (for us, the cluster)."""

    hostName: str | None = None
    hostId: str


class AdjacentAppInstanceInfo(_Mec):
    """Clause 7.2.3: an instance of the same application on another host."""

    appDId: str
    appInstanceCommLink: list[CommunicationInterface] = Field(min_length=1)
    appInstanceId: str
    mecHostInformation: MecHostInformation | None = None


class ProblemDetails(_Mec):
    """IETF RFC 7807 problem details, as ETSI GS MEC 009 uses them for every error answer."""

    model_config = ConfigDict(extra="forbid")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


def app_instance_id(app: str, instance: str, cluster: str) -> str:
    """The MEC application instance id of our instance ``instance`` of ``app`` on ``cluster``.

    The orchestrator hands it to the instance it starts; dots cannot occur in the three DNS
    labels, so the id names exactly one of them.
    """
    return f"{app}.{instance}.{cluster}"


def is_ip_literal(host: str) -> bool:
    """Whether ``host`` is an IPv4 or IPv6 address rather than a name."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True
