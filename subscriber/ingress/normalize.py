"""Turn 3GPP reports into :class:`~subscriber.events.LocationEvent`: pure, no I/O, no clock.

One function per body kind; each returns :class:`Normalized`, the events plus the reports that
carry no location (skipped, with a reason, never an error). :func:`normalize_body` parses and
normalizes bytes in one call, which is what the receiver and the poller use.

Decisions, with their reasons (docs/free5gc.md, which cites the free5GC sources):

* **Event time.** The location's ``ueLocationTimestamp`` first: free5GC's report ``timeStamp`` is
  the time the subscription was created (amf v1.4.5 newAmfEventReport), not when the UE was seen.
  Then the report or
  notification time (``timeStamp``, NEF ``eventTime``), else the ingest time. ``event_time_field``
  says which.
* **Event id.** A hash of what the core said: source NF type and instance, correlation id,
  subscription id, delivery, event type, UE, location, the raw event time and the DNAI change. Not
  the ingest time, so a redelivered or replayed body gets the same id. For polled reports the
  subscription id is left out of the hash: each poll creates a throw-away subscription (and free5GC
  reuses ids after a restart), while the observation itself is the same.
  Consequence: two UP_PATH_CH posts with identical content and free5GC's ``timeStamp: null``
  (say default -> mec, back, and -> mec again) share an id; downstream dedup must be windowed.
* **UE identity.** SUPI and GPSI when present. free5GC's UP_PATH_CH carries neither, so the session
  is ``smf-notif:<notifId>``, plus ``/ue:<address>`` when the SMF sends the UE's address
  (``ueIpAddr``, ``ipv4Addr`` or ``sourceUeIpv4Addr``). ``routeInfo`` is deliberately not used: per
  TS 29.571 it is the data-network tunnel end point of the route, and it changes with the target
  DNAI, which would scatter one UE's events over several keys.
* **Location.** NR first, then E-UTRA, then non-3GPP access (its TAI only). A LOCATION_REPORT whose
  location is ``{}`` (free5GC before the first ULI) and reports such as REGISTRATION_STATE_REPORT
  yield no event.
* **Body and path.** A notification must name the subscription its callback URI is bound to
  (:class:`Binding`): the AMF's ``notifyCorrelationId`` and each report's ``subscriptionId``, the
  SMF's ``notifId``, the NEF's ``subscription`` link. Otherwise :class:`ForeignCallback`, and no
  event: a body replayed or forged onto another subscription's URI is refused whole.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal, NamedTuple

from subscriber.errors import ForeignCallback, InvalidParam
from subscriber.events import (
    Cell,
    Delivery,
    DnaiChange,
    EventSource,
    LocationEvent,
    NfType,
    UeIdentity,
    build,
)
from subscriber.sbi.amf import (
    AmfCreatedEventSubscription,
    AmfEventNotification,
    AmfEventReport,
    ProvideLocInfo,
    parse_amf_created_subscription,
    parse_amf_notification,
    parse_provide_loc_info,
)
from subscriber.sbi.common import UserLocation
from subscriber.sbi.nef import LocationInfo, MonitoringNotification, parse_nef_notification
from subscriber.sbi.smf import (
    EventNotification,
    NsmfEventExposureNotification,
    SmfEvent,
    parse_smf_notification,
)
from subscriber.sbi.traffic_influence import (
    InfluenceNotification,
    UpPathChangeNotification,
    parse_influence_notification,
)

# event_type of a Namf_Location answer, which is a pull, not a subscribed event.
PROVIDE_LOC_INFO = "PROVIDE_LOC_INFO"


@dataclass(frozen=True, slots=True)
class Binding:
    """The subscription a callback URI's key belongs to, and what its bodies must name.

    ``None`` means "not checked": a subscription id not known yet (a notification racing the
    201), or a correlation id the kind does not have (NEF).
    """

    name: str
    """The subscription's name: not secret, safe for logs and dead letters."""
    correlation_id: str | None = None
    """The AMF's ``notifyCorrelationId`` or the SMF's ``notifId`` a body must carry."""
    subscription_id: str | None = None
    """The producer's id of the subscription (AMF report ``subscriptionId``, NEF link)."""
    ue: str | None = None
    """Traffic influence: the UE (SUPI or GPSI) the subscription steers; its bodies name none."""
    app: str | None = None
    """Traffic influence: the application the subscription steers."""
    instance: str | None = None
    """Traffic influence: that application's instance."""
    pin: str | None = None
    """Traffic influence: the file pinning the notifId of free5GC's forwarded notifications
    (:func:`subscriber.influence.pin_notif_id`); the receiver fills ``correlation_id`` from it."""


def _same_subscription(named: str, subscription_id: str) -> bool:
    """A subscription named by its id or by a URI ending in it."""
    return named == subscription_id or named.rstrip("/").endswith("/" + subscription_id)


def _foreign(param: str) -> ForeignCallback:
    return ForeignCallback(
        "the body names another subscription than its callback URI",
        [InvalidParam(param, "does not match the subscription of this callback URI")],
    )


def check_amf_binding(notification: AmfEventNotification, binding: Binding) -> None:
    """Refuse an AMF notification naming another subscription than ``binding``.

    Raises:
        ForeignCallback: its notifyCorrelationId or a report's subscriptionId is not ours.
    """
    expected = binding.correlation_id
    if expected is not None and notification.notify_correlation_id != expected:
        raise _foreign("/notifyCorrelationId")
    if binding.subscription_id is None:
        return
    for index, report in enumerate(notification.report_list or ()):
        named = report.subscription_id
        if named and not _same_subscription(named, binding.subscription_id):
            raise _foreign(f"/reportList/{index}/subscriptionId")


def check_smf_binding(notification: NsmfEventExposureNotification, binding: Binding) -> None:
    """Refuse an SMF notification whose notifId is not the bound subscription's.

    Raises:
        ForeignCallback: the notifId is not ours.
    """
    if binding.correlation_id is not None and notification.notif_id != binding.correlation_id:
        raise _foreign("/notifId")


def check_nef_binding(notification: MonitoringNotification, binding: Binding) -> None:
    """Refuse a NEF notification whose subscription link is not the bound subscription's.

    Raises:
        ForeignCallback: the link names another subscription.
    """
    expected = binding.subscription_id
    if expected is not None and not _same_subscription(notification.subscription, expected):
        raise _foreign("/subscription")


class BodyKind(StrEnum):
    """What a body is, so :func:`normalize_body` knows how to parse it."""

    AMF_NOTIFICATION = "amf_notification"
    AMF_CREATED_SUBSCRIPTION = "amf_created_subscription"
    PROVIDE_LOC_INFO = "provide_loc_info"
    SMF_NOTIFICATION = "smf_notification"
    NEF_NOTIFICATION = "nef_notification"
    INFLUENCE_NOTIFICATION = "influence_notification"


class SkipReason(StrEnum):
    """Why a report produced no event."""

    NO_LOCATION = "no_location"
    NOT_A_PATH_CHANGE = "not_a_path_change"
    NO_CHANGE_TYPE = "no_change_type"
    NO_UE_IDENTITY = "no_ue_identity"


class Skipped(NamedTuple):
    """A report that produced no event: its position in its list, its type, and why."""

    position: int
    event_type: str
    reason: SkipReason


class Normalized(NamedTuple):
    """The events of one body, in body order, and the reports that produced none."""

    events: list[LocationEvent]
    skipped: list[Skipped]


_EventTimeField = Literal["ueLocationTimestamp", "timeStamp", "eventTime", "ingest"]


def _utc(moment: datetime) -> datetime:
    # A core that omits the offset means UTC (TS 29.571 DateTime is RFC 3339, which requires one).
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _cell(location: UserLocation | None) -> tuple[Cell | None, datetime | None]:
    """The cell of a UserLocation and its ``ueLocationTimestamp``."""
    if location is None:
        return None, None
    nr = location.nr_location
    if nr is not None:
        cell = build(
            Cell,
            rat="NR",
            plmn=nr.tai.plmn_id.as_string(),
            tac=nr.tai.tac,
            cell_id=None if nr.ignore_ncgi else nr.ncgi.nr_cell_id,
        )
        return cell, nr.ue_location_timestamp
    eutra = location.eutra_location
    if eutra is not None:
        cell = build(
            Cell,
            rat="EUTRA",
            plmn=eutra.tai.plmn_id.as_string(),
            tac=eutra.tai.tac,
            cell_id=None if eutra.ignore_ecgi else eutra.ecgi.eutra_cell_id,
        )
        return cell, eutra.ue_location_timestamp
    n3ga = location.n3ga_location
    if n3ga is not None and n3ga.n3gpp_tai is not None:
        tai = n3ga.n3gpp_tai
        cell = build(Cell, rat="N3GA", plmn=tai.plmn_id.as_string(), tac=tai.tac, cell_id=None)
        return cell, None
    return None, None


def _nef_cell(info: LocationInfo | None) -> tuple[Cell | None, datetime | None]:
    """The cell of a TS 29.122 LocationInfo: its userLocation, else its flat fields."""
    if info is None:
        return None, None
    if info.user_location is not None:
        cell, seen = _cell(info.user_location)
        if cell is not None:
            return cell, seen
    if info.plmn_id is None or info.tracking_area_id is None:
        return None, None
    plmn = info.plmn_id.replace("-", "")
    tac = info.tracking_area_id
    rat: Literal["NR", "EUTRA"]
    cell_id = info.cell_id
    if cell_id is not None:
        rat = "NR" if len(cell_id) == 9 else "EUTRA"
    elif info.enode_b_id is not None and len(info.enode_b_id) == 7:
        # free5GC's NEF puts the 28-bit E-UTRA cell id in enodeBId (callback.go toLocationInfo).
        rat, cell_id = "EUTRA", info.enode_b_id
    else:
        # Without a cell, the TAC length tells the RAT: 24-bit TACs are 5GS, 16-bit are EPS.
        rat = "NR" if len(tac) == 6 else "EUTRA"
    return build(Cell, rat=rat, plmn=plmn, tac=tac, cell_id=cell_id), None


def _event_id(
    source: EventSource,
    ue: UeIdentity,
    cell: Cell | None,
    change: DnaiChange | None,
    time_field: str,
    raw_time: datetime | None,
) -> str:
    subscription = source.subscription_id if source.delivery is Delivery.NOTIFIED else None
    parts = (
        source.nf_type,
        source.nf_instance_id or "",
        source.correlation_id or "",
        subscription or "",
        source.delivery,
        source.event_type,
        ue.supi or "",
        ue.gpsi or "",
        ue.session_ref or "",
        cell.rat if cell else "",
        cell.plmn if cell else "",
        cell.tac if cell else "",
        (cell.cell_id or "") if cell else "",
        time_field if raw_time is not None else "",
        raw_time.isoformat() if raw_time is not None else "",
        change.change_type if change else "",
        (change.source_dnai or "") if change else "",
        (change.target_dnai or "") if change else "",
    )
    canonical = "\x1f".join(parts).encode()
    return hashlib.blake2b(canonical, digest_size=16).hexdigest()


def _event(
    *,
    source: EventSource,
    ue: UeIdentity,
    cell: Cell | None,
    change: DnaiChange | None,
    times: Iterable[tuple[_EventTimeField, datetime | None]],
    ingest_time: datetime,
) -> LocationEvent:
    time_field: _EventTimeField = "ingest"
    raw_time: datetime | None = None
    for field, moment in times:
        # Go's zero time.Time ("0001-01-01T00:00:00Z") means "not set", not the year 1.
        if moment is not None and moment.year > 1:
            time_field, raw_time = field, _utc(moment)
            break
    return build(
        LocationEvent,
        event_id=_event_id(source, ue, cell, change, time_field, raw_time),
        ue=ue,
        source=source,
        location=cell,
        dnai_change=change,
        event_time=raw_time if raw_time is not None else ingest_time,
        event_time_field=time_field,
        ingest_time=ingest_time,
    )


def _check_ingest_time(ingest_time: datetime) -> None:
    if ingest_time.tzinfo is None:
        raise ValueError("ingest_time must be timezone-aware")


def _ue_identity(
    supi: str | None, gpsi: str | None, default: UeIdentity | None
) -> UeIdentity | None:
    if supi or gpsi:
        return build(UeIdentity, supi=supi or None, gpsi=gpsi or None, session_ref=None)
    return default


def _amf_reports(
    reports: list[AmfEventReport] | None,
    *,
    correlation_id: str | None,
    subscription_id: str | None,
    nf_instance_id: str | None,
    delivery: Delivery,
    default_ue: UeIdentity | None,
    ingest_time: datetime,
) -> Normalized:
    events: list[LocationEvent] = []
    skipped: list[Skipped] = []
    for index, report in enumerate(reports or ()):
        cell, seen = _cell(report.location)
        if cell is None:
            skipped.append(Skipped(index, report.type, SkipReason.NO_LOCATION))
            continue
        ue = _ue_identity(report.supi, report.gpsi, default_ue)
        if ue is None:
            skipped.append(Skipped(index, report.type, SkipReason.NO_UE_IDENTITY))
            continue
        source = build(
            EventSource,
            nf_type=NfType.AMF,
            nf_instance_id=nf_instance_id,
            subscription_id=report.subscription_id or subscription_id,
            correlation_id=correlation_id,
            delivery=delivery,
            event_type=report.type,
        )
        events.append(
            _event(
                source=source,
                ue=ue,
                cell=cell,
                change=None,
                times=(("ueLocationTimestamp", seen), ("timeStamp", report.time_stamp)),
                ingest_time=ingest_time,
            )
        )
    return Normalized(events, skipped)


def normalize_amf_notification(
    notification: AmfEventNotification,
    *,
    ingest_time: datetime,
    nf_instance_id: str | None = None,
    subscription_id: str | None = None,
    default_ue: UeIdentity | None = None,
) -> Normalized:
    """Events of an AmfEventNotification the AMF POSTed to us.

    Args:
        notification: the parsed body.
        ingest_time: when we received it (timezone-aware).
        nf_instance_id: the AMF's NF instance id, if the receiver knows it.
        subscription_id: our subscription's id at the AMF, used when a report does not name it.
        default_ue: the UE a per-UE subscription targets, for reports that omit SUPI and GPSI.
    """
    _check_ingest_time(ingest_time)
    return _amf_reports(
        notification.report_list,
        correlation_id=notification.notify_correlation_id or None,
        subscription_id=subscription_id,
        nf_instance_id=nf_instance_id,
        delivery=Delivery.NOTIFIED,
        default_ue=default_ue,
        ingest_time=ingest_time,
    )


def normalize_amf_created_subscription(
    created: AmfCreatedEventSubscription,
    *,
    ingest_time: datetime,
    nf_instance_id: str | None = None,
) -> Normalized:
    """Events of the immediate reports in a subscribe 201 (free5GC's only reports: polled).

    Args:
        created: the parsed 201 body.
        ingest_time: when we received it (timezone-aware).
        nf_instance_id: the AMF's NF instance id, if the poller knows it.
    """
    _check_ingest_time(ingest_time)
    subscription = created.subscription
    default_ue = _ue_identity(subscription.supi, subscription.gpsi, None)
    return _amf_reports(
        created.report_list,
        correlation_id=subscription.notify_correlation_id or None,
        subscription_id=created.subscription_id,
        nf_instance_id=nf_instance_id,
        delivery=Delivery.POLLED,
        default_ue=default_ue,
        ingest_time=ingest_time,
    )


def _ue_from_context_id(ue_context_id: str) -> UeIdentity:
    if ue_context_id.startswith(("imsi-", "nai-", "gci-", "gli-")):
        return build(UeIdentity, supi=ue_context_id, gpsi=None, session_ref=None)
    if ue_context_id.startswith(("msisdn-", "extid-")):
        return build(UeIdentity, supi=None, gpsi=ue_context_id, session_ref=None)
    # A PEI (imei-/imeisv-) or 5G-GUTI: not a subscriber identity, but it names the UE.
    return build(UeIdentity, supi=None, gpsi=None, session_ref=ue_context_id)


def normalize_provide_loc_info(
    info: ProvideLocInfo,
    *,
    ue_context_id: str,
    ingest_time: datetime,
    nf_instance_id: str | None = None,
) -> Normalized:
    """The event of a Namf_Location provide-loc-info answer (polled; at most one event).

    Args:
        info: the parsed 200 body.
        ue_context_id: the ``{ueContextId}`` the request was made for (usually ``imsi-...``).
        ingest_time: when we received it (timezone-aware).
        nf_instance_id: the AMF's NF instance id, if the poller knows it.
    """
    _check_ingest_time(ingest_time)
    cell, seen = _cell(info.location)
    if cell is None or not ue_context_id:
        reason = SkipReason.NO_LOCATION if cell is None else SkipReason.NO_UE_IDENTITY
        return Normalized([], [Skipped(0, PROVIDE_LOC_INFO, reason)])
    source = build(
        EventSource,
        nf_type=NfType.AMF,
        nf_instance_id=nf_instance_id,
        subscription_id=None,
        correlation_id=None,
        delivery=Delivery.POLLED,
        event_type=PROVIDE_LOC_INFO,
    )
    event = _event(
        source=source,
        ue=_ue_from_context_id(ue_context_id),
        cell=cell,
        change=None,
        times=(("ueLocationTimestamp", seen),),
        ingest_time=ingest_time,
    )
    return Normalized([event], [])


def _smf_session_ref(notif_id: str, event: EventNotification) -> str:
    address = None
    if event.ue_ip_addr is not None:
        address = event.ue_ip_addr.ipv4_addr or event.ue_ip_addr.ipv6_prefix
    address = address or event.ipv4_addr or event.source_ue_ipv4_addr
    return f"smf-notif:{notif_id}/ue:{address}" if address else f"smf-notif:{notif_id}"


def _dnai(explicit: str | None, routing: str | None) -> str | None:
    # free5GC omits sourceDnai/targetDnai for the default route and writes it as dnai "".
    return explicit or routing or None


def normalize_smf_notification(
    notification: NsmfEventExposureNotification,
    *,
    ingest_time: datetime,
    nf_instance_id: str | None = None,
    subscription_id: str | None = None,
) -> Normalized:
    """Events of an NsmfEventExposureNotification: one per UP_PATH_CH, EARLY and LATE apart.

    Args:
        notification: the parsed body.
        ingest_time: when we received it (timezone-aware).
        nf_instance_id: the SMF's NF instance id, if the receiver knows it.
        subscription_id: the subscription (or app session) the notifId belongs to, if known.
    """
    _check_ingest_time(ingest_time)
    events: list[LocationEvent] = []
    skipped: list[Skipped] = []
    notif_id = notification.notif_id
    for index, item in enumerate(notification.event_notifs):
        if item.event != SmfEvent.UP_PATH_CH:
            skipped.append(Skipped(index, item.event, SkipReason.NOT_A_PATH_CHANGE))
            continue
        if not item.dnai_chg_type:
            skipped.append(Skipped(index, item.event, SkipReason.NO_CHANGE_TYPE))
            continue
        change = build(
            DnaiChange,
            change_type=item.dnai_chg_type,
            source_dnai=_dnai(
                item.source_dnai, item.source_tra_routing.dnai if item.source_tra_routing else None
            ),
            target_dnai=_dnai(
                item.target_dnai, item.target_tra_routing.dnai if item.target_tra_routing else None
            ),
        )
        ue = _ue_identity(item.supi, item.gpsi, None) or build(
            UeIdentity, supi=None, gpsi=None, session_ref=_smf_session_ref(notif_id, item)
        )
        source = build(
            EventSource,
            nf_type=NfType.SMF,
            nf_instance_id=nf_instance_id,
            subscription_id=subscription_id,
            correlation_id=notif_id,
            delivery=Delivery.NOTIFIED,
            event_type=item.event,
        )
        events.append(
            _event(
                source=source,
                ue=ue,
                cell=None,
                change=change,
                times=(("timeStamp", item.time_stamp),),
                ingest_time=ingest_time,
            )
        )
    return Normalized(events, skipped)


def _gpsi(external_id: str | None, msisdn: str | None) -> str | None:
    if external_id:
        return external_id if external_id.startswith("extid-") else f"extid-{external_id}"
    if msisdn:
        return msisdn if msisdn.startswith("msisdn-") else f"msisdn-{msisdn}"
    return None


def normalize_nef_notification(
    notification: MonitoringNotification,
    *,
    ingest_time: datetime,
    nf_instance_id: str | None = None,
) -> Normalized:
    """Events of a TS 29.122 MonitoringNotification: one per report that carries a location.

    The UE is the report's externalId or MSISDN as a GPSI, else the subscription link.

    Args:
        notification: the parsed body.
        ingest_time: when we received it (timezone-aware).
        nf_instance_id: the NEF's NF instance id, if the receiver knows it.
    """
    _check_ingest_time(ingest_time)
    events: list[LocationEvent] = []
    skipped: list[Skipped] = []
    link = notification.subscription
    subscription_id = notification.subscription_id()
    for index, report in enumerate(notification.monitoring_event_reports or ()):
        cell, seen = _nef_cell(report.location_info)
        if cell is None:
            skipped.append(Skipped(index, report.monitoring_type, SkipReason.NO_LOCATION))
            continue
        gpsi = _gpsi(report.external_id, report.msisdn)
        ue = build(
            UeIdentity, supi=None, gpsi=gpsi, session_ref=None if gpsi else f"nef-sub:{link}"
        )
        source = build(
            EventSource,
            nf_type=NfType.NEF,
            nf_instance_id=nf_instance_id,
            subscription_id=subscription_id,
            correlation_id=link,
            delivery=Delivery.NOTIFIED,
            event_type=report.monitoring_type,
        )
        events.append(
            _event(
                source=source,
                ue=ue,
                cell=cell,
                change=None,
                times=(("ueLocationTimestamp", seen), ("eventTime", report.event_time)),
                ingest_time=ingest_time,
            )
        )
    return Normalized(events, skipped)


def _bound_ue(ue: str) -> UeIdentity:
    if ue.startswith(("msisdn-", "extid-")):
        return UeIdentity.model_construct(supi=None, gpsi=ue, session_ref=None)
    return UeIdentity.model_construct(supi=ue, gpsi=None, session_ref=None)


def check_influence_binding(notification: InfluenceNotification, binding: Binding) -> None:
    """Refuse a traffic-influence notification naming another subscription than ``binding``.

    The specification's shape must echo our afTransId (the binding's name); free5GC's forwarded
    SMF body must carry the notifId pinned for the key (``binding.correlation_id``).

    Raises:
        ForeignCallback: the body names another subscription.
    """
    if isinstance(notification, NsmfEventExposureNotification):
        check_smf_binding(notification, binding)
    elif notification.af_trans_id is not None and notification.af_trans_id != binding.name:
        raise _foreign("/afTransId")


def normalize_influence_notification(
    notification: InfluenceNotification, *, binding: Binding, ingest_time: datetime
) -> Normalized:
    """Events of a notification on one of our traffic-influence subscriptions.

    The body names no UE (free5GC's never does); the binding does, so each event carries the UE
    and, in its ``dnai_change``, the application instance the subscription steers.

    Args:
        notification: the parsed body, in either shape.
        binding: the subscription of the callback URI, with ``ue``, ``app`` and ``instance``.
        ingest_time: when we received it (timezone-aware).
    """
    _check_ingest_time(ingest_time)
    if binding.ue is None:
        raise ValueError("a traffic-influence binding names its UE")
    ue = _bound_ue(binding.ue)
    if isinstance(notification, NsmfEventExposureNotification):
        plain = normalize_smf_notification(
            notification, ingest_time=ingest_time, subscription_id=binding.subscription_id
        )
        items = [
            (e.source, e.dnai_change, e.event_time_field, e.event_time)
            for e in plain.events
            if e.dnai_change is not None
        ]
        skipped = plain.skipped
    else:
        items, skipped = [], []
        if not notification.dnai_chg_type:
            skipped.append(Skipped(0, notification.subscribed_event, SkipReason.NO_CHANGE_TYPE))
        else:
            items.append(_influence_item(notification, binding))
    events = []
    for source, change, time_field, moment in items:
        change = change.model_copy(update={"app": binding.app, "instance": binding.instance})
        raw = moment if time_field != "ingest" else None
        events.append(
            LocationEvent.model_construct(
                event_id=_event_id(source, ue, None, change, time_field, raw),
                ue=ue,
                source=source,
                location=None,
                dnai_change=change,
                event_time=raw if raw is not None else ingest_time,
                event_time_field=time_field,
                ingest_time=ingest_time,
            )
        )
    return Normalized(events, skipped)


def _influence_item(
    notification: UpPathChangeNotification, binding: Binding
) -> tuple[EventSource, DnaiChange, str, datetime]:
    source_route, target_route = (
        notification.source_traffic_route,
        notification.target_traffic_route,
    )
    change = DnaiChange.model_construct(
        change_type=notification.dnai_chg_type,
        source_dnai=_dnai(notification.source_dnai, source_route.dnai if source_route else None),
        target_dnai=_dnai(notification.target_dnai, target_route.dnai if target_route else None),
    )
    source = EventSource.model_construct(
        nf_type=NfType.NEF,
        nf_instance_id=None,
        subscription_id=binding.subscription_id,
        correlation_id=notification.af_trans_id,
        delivery=Delivery.NOTIFIED,
        event_type=notification.subscribed_event,
    )
    # The specification's notification has no time of its own: the ingest time stands in.
    return source, change, "ingest", datetime.min.replace(tzinfo=UTC)


def normalize_body(
    kind: BodyKind,
    body: bytes | bytearray | str,
    *,
    ingest_time: datetime,
    nf_instance_id: str | None = None,
    subscription_id: str | None = None,
    ue_context_id: str | None = None,
    binding: Binding | None = None,
) -> Normalized:
    """Parse a body of the given kind and normalize it.

    Args:
        kind: what the body is.
        body: the raw JSON.
        ingest_time: when we received it (timezone-aware).
        nf_instance_id: the producing NF's instance id, if known.
        subscription_id: our subscription at the producer, if known (AMF and SMF notifications).
        ue_context_id: required for PROVIDE_LOC_INFO: the UE the request was made for.
        binding: for a notification, the subscription its callback URI belongs to; the body
            must name it. Its subscription id stands in for ``subscription_id``.

    Raises:
        InvalidCallback: the body is malformed (``ForeignCallback``: it names another
            subscription than ``binding``); nothing else is raised for any input body.
    """
    if binding is not None and binding.subscription_id is not None:
        subscription_id = binding.subscription_id
    if kind is BodyKind.AMF_NOTIFICATION:
        amf = parse_amf_notification(body)
        if binding is not None:
            check_amf_binding(amf, binding)
        return normalize_amf_notification(
            amf,
            ingest_time=ingest_time,
            nf_instance_id=nf_instance_id,
            subscription_id=subscription_id,
        )
    if kind is BodyKind.AMF_CREATED_SUBSCRIPTION:
        return normalize_amf_created_subscription(
            parse_amf_created_subscription(body),
            ingest_time=ingest_time,
            nf_instance_id=nf_instance_id,
        )
    if kind is BodyKind.PROVIDE_LOC_INFO:
        if ue_context_id is None:
            raise ValueError("PROVIDE_LOC_INFO needs ue_context_id")
        return normalize_provide_loc_info(
            parse_provide_loc_info(body),
            ue_context_id=ue_context_id,
            ingest_time=ingest_time,
            nf_instance_id=nf_instance_id,
        )
    if kind is BodyKind.SMF_NOTIFICATION:
        smf = parse_smf_notification(body)
        if binding is not None:
            check_smf_binding(smf, binding)
        return normalize_smf_notification(
            smf,
            ingest_time=ingest_time,
            nf_instance_id=nf_instance_id,
            subscription_id=subscription_id,
        )
    if kind is BodyKind.INFLUENCE_NOTIFICATION:
        if binding is None:
            raise ValueError("INFLUENCE_NOTIFICATION needs its binding")
        influence = parse_influence_notification(body)
        check_influence_binding(influence, binding)
        return normalize_influence_notification(influence, binding=binding, ingest_time=ingest_time)
    nef = parse_nef_notification(body)
    if binding is not None:
        check_nef_binding(nef, binding)
    return normalize_nef_notification(nef, ingest_time=ingest_time, nf_instance_id=nf_instance_id)
