"""Turn 3GPP reports into :class:`~subscriber.events.LocationEvent` records: pure, no I/O, no clock.

One function per body kind; each returns :class:`Normalized`, the events' Kafka records (what
:func:`~subscriber.events.encode_event` would write, made without building the models) plus the
reports that carry no location (skipped, with a reason, never an error). :func:`normalize_body`
parses and normalizes bytes in one call, which is what the receiver and the poller use.

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
from typing import Any, Literal, NamedTuple

import orjson

from subscriber.errors import ForeignCallback, InvalidParam
from subscriber.events import (
    SCHEMA_VERSION,
    Delivery,
    EventRecord,
    LocationEvent,
    NfType,
    UeIdentity,
    decode_event,
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
    """The records of one body's events, in body order, and the reports that produced none."""

    records: list[EventRecord]
    skipped: list[Skipped]

    @property
    def events(self) -> list[LocationEvent]:
        """The events, decoded from their records: what a consumer of the topic reads."""
        return [decode_event(record.value) for record in self.records]


_EventTimeField = Literal["ueLocationTimestamp", "timeStamp", "eventTime", "ingest"]
# An event and its parts as the JSON objects the events topic holds, built straight from the
# parsed body: four pydantic models and their serialization cost the receiver more than
# validating the body (docs/performance.md). Their keys follow LocationEvent's fields in order
# and a None field is left out, so the record is what encode_event would write, byte for byte
# (the tests compare both for every body).
_Json = dict[str, Any]


def _utc(moment: datetime) -> datetime:
    # A core that omits the offset means UTC (TS 29.571 DateTime is RFC 3339, which requires one).
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _cell(location: UserLocation | None) -> tuple[_Json | None, datetime | None]:
    """The cell of a UserLocation and its ``ueLocationTimestamp``."""
    if location is None:
        return None, None
    nr = location.nr_location
    if nr is not None:
        cell = {"rat": "NR", "plmn": nr.tai.plmn_id.as_string(), "tac": nr.tai.tac}
        if not nr.ignore_ncgi:
            cell["cell_id"] = nr.ncgi.nr_cell_id
        return cell, nr.ue_location_timestamp
    eutra = location.eutra_location
    if eutra is not None:
        cell = {"rat": "EUTRA", "plmn": eutra.tai.plmn_id.as_string(), "tac": eutra.tai.tac}
        if not eutra.ignore_ecgi:
            cell["cell_id"] = eutra.ecgi.eutra_cell_id
        return cell, eutra.ue_location_timestamp
    n3ga = location.n3ga_location
    if n3ga is not None and n3ga.n3gpp_tai is not None:
        tai = n3ga.n3gpp_tai
        return {"rat": "N3GA", "plmn": tai.plmn_id.as_string(), "tac": tai.tac}, None
    return None, None


def _nef_cell(info: LocationInfo | None) -> tuple[_Json | None, datetime | None]:
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
    cell_id = info.cell_id
    if cell_id is not None:
        rat = "NR" if len(cell_id) == 9 else "EUTRA"
    elif info.enode_b_id is not None and len(info.enode_b_id) == 7:
        # free5GC's NEF puts the 28-bit E-UTRA cell id in enodeBId (callback.go toLocationInfo).
        rat, cell_id = "EUTRA", info.enode_b_id
    else:
        # Without a cell, the TAC length tells the RAT: 24-bit TACs are 5GS, 16-bit are EPS.
        rat = "NR" if len(tac) == 6 else "EUTRA"
    cell = {"rat": rat, "plmn": plmn, "tac": tac}
    if cell_id is not None:
        cell["cell_id"] = cell_id
    return cell, None


def _source(
    nf_type: NfType,
    nf_instance_id: str | None,
    subscription_id: str | None,
    correlation_id: str | None,
    delivery: Delivery,
    event_type: str,
) -> _Json:
    source: _Json = {"nf_type": nf_type}
    if nf_instance_id is not None:
        source["nf_instance_id"] = nf_instance_id
    if subscription_id is not None:
        source["subscription_id"] = subscription_id
    if correlation_id is not None:
        source["correlation_id"] = correlation_id
    source["delivery"] = delivery
    source["event_type"] = event_type
    return source


def _change(
    change_type: str,
    source_dnai: str | None,
    target_dnai: str | None,
    app: str | None = None,
    instance: str | None = None,
) -> _Json:
    change: _Json = {"change_type": change_type}
    for name, value in (
        ("source_dnai", source_dnai),
        ("target_dnai", target_dnai),
        ("app", app),
        ("instance", instance),
    ):
        if value is not None:
            change[name] = value
    return change


def _event_id(
    source: _Json,
    ue: _Json,
    cell: _Json | None,
    change: _Json | None,
    time_field: str,
    raw_time: datetime | None,
) -> str:
    delivery = source["delivery"]
    subscription = source.get("subscription_id") if delivery is Delivery.NOTIFIED else None
    cell = cell or {}
    change = change or {}
    parts = (
        source["nf_type"],
        source.get("nf_instance_id") or "",
        source.get("correlation_id") or "",
        subscription or "",
        delivery,
        source["event_type"],
        ue.get("supi") or "",
        ue.get("gpsi") or "",
        ue.get("session_ref") or "",
        cell.get("rat") or "",
        cell.get("plmn") or "",
        cell.get("tac") or "",
        cell.get("cell_id") or "",
        time_field if raw_time is not None else "",
        raw_time.isoformat() if raw_time is not None else "",
        change.get("change_type") or "",
        change.get("source_dnai") or "",
        change.get("target_dnai") or "",
    )
    canonical = "\x1f".join(parts).encode()
    return hashlib.blake2b(canonical, digest_size=16).hexdigest()


def _record(
    *,
    source: _Json,
    ue: _Json,
    cell: _Json | None,
    change: _Json | None,
    times: Iterable[tuple[_EventTimeField, datetime | None]],
    ingest_time: datetime,
) -> EventRecord:
    time_field: _EventTimeField = "ingest"
    raw_time: datetime | None = None
    for field, moment in times:
        # Go's zero time.Time ("0001-01-01T00:00:00Z") means "not set", not the year 1.
        if moment is not None and moment.year > 1:
            time_field, raw_time = field, _utc(moment)
            break
    event_id = _event_id(source, ue, cell, change, time_field, raw_time)
    event: _Json = {
        "schema_version": SCHEMA_VERSION,
        "event_id": event_id,
        "ue": ue,
        "source": source,
    }
    if cell is not None:
        event["location"] = cell
    if change is not None:
        event["dnai_change"] = change
    event["event_time"] = raw_time if raw_time is not None else ingest_time
    event["event_time_field"] = time_field
    event["ingest_time"] = ingest_time
    key = ue.get("supi") or ue.get("gpsi") or ue["session_ref"]
    return EventRecord(event_id, key.encode(), orjson.dumps(event, option=orjson.OPT_UTC_Z))


def _check_ingest_time(ingest_time: datetime) -> None:
    if ingest_time.tzinfo is None:
        raise ValueError("ingest_time must be timezone-aware")


def _ue_identity(supi: str | None, gpsi: str | None) -> _Json | None:
    if supi:
        return {"supi": supi, "gpsi": gpsi} if gpsi else {"supi": supi}
    return {"gpsi": gpsi} if gpsi else None


def _amf_reports(
    reports: list[AmfEventReport] | None,
    *,
    correlation_id: str | None,
    subscription_id: str | None,
    nf_instance_id: str | None,
    delivery: Delivery,
    default_ue: _Json | None,
    ingest_time: datetime,
) -> Normalized:
    records: list[EventRecord] = []
    skipped: list[Skipped] = []
    for index, report in enumerate(reports or ()):
        cell, seen = _cell(report.location)
        if cell is None:
            skipped.append(Skipped(index, report.type, SkipReason.NO_LOCATION))
            continue
        ue = _ue_identity(report.supi, report.gpsi) or default_ue
        if ue is None:
            skipped.append(Skipped(index, report.type, SkipReason.NO_UE_IDENTITY))
            continue
        source = _source(
            NfType.AMF,
            nf_instance_id,
            report.subscription_id or subscription_id,
            correlation_id,
            delivery,
            report.type,
        )
        records.append(
            _record(
                source=source,
                ue=ue,
                cell=cell,
                change=None,
                times=(("ueLocationTimestamp", seen), ("timeStamp", report.time_stamp)),
                ingest_time=ingest_time,
            )
        )
    return Normalized(records, skipped)


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
        default_ue=None if default_ue is None else default_ue.model_dump(exclude_none=True),
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
    return _amf_reports(
        created.report_list,
        correlation_id=subscription.notify_correlation_id or None,
        subscription_id=created.subscription_id,
        nf_instance_id=nf_instance_id,
        delivery=Delivery.POLLED,
        default_ue=_ue_identity(subscription.supi, subscription.gpsi),
        ingest_time=ingest_time,
    )


def _ue_from_context_id(ue_context_id: str) -> _Json:
    if ue_context_id.startswith(("imsi-", "nai-", "gci-", "gli-")):
        return {"supi": ue_context_id}
    if ue_context_id.startswith(("msisdn-", "extid-")):
        return {"gpsi": ue_context_id}
    # A PEI (imei-/imeisv-) or 5G-GUTI: not a subscriber identity, but it names the UE.
    return {"session_ref": ue_context_id}


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
    source = _source(NfType.AMF, nf_instance_id, None, None, Delivery.POLLED, PROVIDE_LOC_INFO)
    record = _record(
        source=source,
        ue=_ue_from_context_id(ue_context_id),
        cell=cell,
        change=None,
        times=(("ueLocationTimestamp", seen),),
        ingest_time=ingest_time,
    )
    return Normalized([record], [])


def _smf_session_ref(notif_id: str, event: EventNotification) -> str:
    address = None
    if event.ue_ip_addr is not None:
        address = event.ue_ip_addr.ipv4_addr or event.ue_ip_addr.ipv6_prefix
    address = address or event.ipv4_addr or event.source_ue_ipv4_addr
    return f"smf-notif:{notif_id}/ue:{address}" if address else f"smf-notif:{notif_id}"


def _dnai(explicit: str | None, routing: str | None) -> str | None:
    # free5GC omits sourceDnai/targetDnai for the default route and writes it as dnai "".
    return explicit or routing or None


def _smf_records(
    notification: NsmfEventExposureNotification,
    *,
    ingest_time: datetime,
    nf_instance_id: str | None,
    subscription_id: str | None,
    ue: _Json | None = None,
    app: str | None = None,
    instance: str | None = None,
) -> Normalized:
    """A record per UP_PATH_CH item that says how the path changed, the other items skipped.

    ``ue`` names the UE when the caller knows it; otherwise each item's SUPI or GPSI does, or
    its session. ``app`` and ``instance`` go into the change (traffic influence).
    """
    notif_id = notification.notif_id
    records: list[EventRecord] = []
    skipped: list[Skipped] = []
    for index, item in enumerate(notification.event_notifs):
        if item.event != SmfEvent.UP_PATH_CH:
            skipped.append(Skipped(index, item.event, SkipReason.NOT_A_PATH_CHANGE))
            continue
        if not item.dnai_chg_type:
            skipped.append(Skipped(index, item.event, SkipReason.NO_CHANGE_TYPE))
            continue
        source_route, target_route = item.source_tra_routing, item.target_tra_routing
        change = _change(
            item.dnai_chg_type,
            _dnai(item.source_dnai, source_route.dnai if source_route else None),
            _dnai(item.target_dnai, target_route.dnai if target_route else None),
            app,
            instance,
        )
        source = _source(
            NfType.SMF, nf_instance_id, subscription_id, notif_id, Delivery.NOTIFIED, item.event
        )
        records.append(
            _record(
                source=source,
                ue=ue
                or _ue_identity(item.supi, item.gpsi)
                or {"session_ref": _smf_session_ref(notif_id, item)},
                cell=None,
                change=change,
                times=(("timeStamp", item.time_stamp),),
                ingest_time=ingest_time,
            )
        )
    return Normalized(records, skipped)


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
    return _smf_records(
        notification,
        ingest_time=ingest_time,
        nf_instance_id=nf_instance_id,
        subscription_id=subscription_id,
    )


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
    records: list[EventRecord] = []
    skipped: list[Skipped] = []
    link = notification.subscription
    subscription_id = notification.subscription_id()
    for index, report in enumerate(notification.monitoring_event_reports or ()):
        cell, seen = _nef_cell(report.location_info)
        if cell is None:
            skipped.append(Skipped(index, report.monitoring_type, SkipReason.NO_LOCATION))
            continue
        gpsi = _gpsi(report.external_id, report.msisdn)
        source = _source(
            NfType.NEF,
            nf_instance_id,
            subscription_id,
            link,
            Delivery.NOTIFIED,
            report.monitoring_type,
        )
        records.append(
            _record(
                source=source,
                ue={"gpsi": gpsi} if gpsi else {"session_ref": f"nef-sub:{link}"},
                cell=cell,
                change=None,
                times=(("ueLocationTimestamp", seen), ("eventTime", report.event_time)),
                ingest_time=ingest_time,
            )
        )
    return Normalized(records, skipped)


def _bound_ue(ue: str) -> _Json:
    return {"gpsi": ue} if ue.startswith(("msisdn-", "extid-")) else {"supi": ue}


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
        return _smf_records(
            notification,
            ingest_time=ingest_time,
            nf_instance_id=None,
            subscription_id=binding.subscription_id,
            ue=ue,
            app=binding.app,
            instance=binding.instance,
        )
    if not notification.dnai_chg_type:
        return Normalized(
            [], [Skipped(0, notification.subscribed_event, SkipReason.NO_CHANGE_TYPE)]
        )
    source_route, target_route = (
        notification.source_traffic_route,
        notification.target_traffic_route,
    )
    change = _change(
        notification.dnai_chg_type,
        _dnai(notification.source_dnai, source_route.dnai if source_route else None),
        _dnai(notification.target_dnai, target_route.dnai if target_route else None),
        binding.app,
        binding.instance,
    )
    source = _source(
        NfType.NEF,
        None,
        binding.subscription_id,
        notification.af_trans_id,
        Delivery.NOTIFIED,
        notification.subscribed_event,
    )
    # The specification's notification has no time of its own: the ingest time stands in.
    record = _record(
        source=source, ue=ue, cell=None, change=change, times=(), ingest_time=ingest_time
    )
    return Normalized([record], [])


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
