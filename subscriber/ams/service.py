"""The Application Mobility Service: registrations, subscriptions and the procedures the
relocation workflow runs through it (ETSI GS MEC 021).

The HTTP API (:mod:`subscriber.ams.api`) and the context-transfer activities
(:mod:`subscriber.act.context_activities`) both call this one object, in the worker process.
Every change is written to the store before it is answered; a write by a source instance while a
procedure moves its devices marks the procedure in the same transaction
(:func:`subscriber.ams.procedure.observe`), and wakes whoever waits on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import TypeAdapter

from subscriber.ams import procedure as proc
from subscriber.ams.models import (
    AdjacentAppInfo,
    AdjacentAppInfoNotification,
    AdjacentAppInfoSubscription,
    AdjacentAppInstanceInfo,
    AssociateId,
    CommunicationInterface,
    IpAddress,
    LinkType,
    MecHostInformation,
    MobilityProcedureNotification,
    MobilityProcedureSubscription,
    MobilityStatus,
    NotificationLinks,
    RegistrationInfo,
    SelfLink,
    Subscription,
    SubscriptionLink,
    SubscriptionLinkList,
    TargetAppInfo,
    TimeStamp,
)
from subscriber.ams.notify import Notifier
from subscriber.ams.store import Row, Store, live
from subscriber.errors import RequestRejected
from subscriber.settings import AmsSettings

log = structlog.get_logger()

BASE_PATH = "/amsi/v1"
KINDS = {
    "mobility_proc": "MobilityProcedureSubscription",
    "adj_app_info": "AdjacentAppInfoSubscription",
}
_SUBSCRIPTION = TypeAdapter(Subscription)


def _not_found(what: str) -> RequestRejected:
    return RequestRejected(404, "Not Found", f"no {what} with this id")


class Ams:
    """The AMS over its store and notifier.

    Args:
        store: registrations, subscriptions, procedures.
        notifier: delivers notifications to allowed callbacks.
        settings: limits and the public URL.
        clock: wall-clock seconds (expiry, deadlines); tests may pass their own.
    """

    def __init__(
        self,
        *,
        store: Store,
        notifier: Notifier,
        settings: AmsSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._notifier = notifier
        self._s = settings
        self._clock = clock
        self._changed = asyncio.Condition()
        self.base_url = settings.url + BASE_PATH

    # Registrations (MEC 021 clause 8.3 app_mobility_services, 8.4 individual) ---------------

    async def register(self, info: RegistrationInfo) -> RegistrationInfo:
        """Create a registration; one of the same instance is replaced (a restarted instance
        registers again and must not leave its old devices behind)."""
        if info.appMobilityServiceId is not None:
            raise RequestRejected(
                400, "Bad Request", "appMobilityServiceId: shall be absent in a POST"
            )
        instance = _consumer(info)
        replacing = bool(await self._store.registrations(instance))
        if not replacing and await self._store.count("registrations") >= self._s.max_registrations:
            raise RequestRejected(
                503, "Service Unavailable", "the AMS holds as many registrations as it may"
            )
        rid = secrets.token_urlsafe(16)
        stored = info.model_copy(update={"appMobilityServiceId": rid})
        await self._store.put_registration(
            Row(rid, instance, _doc(stored), self._expiry(info.expiryTime)),
            replaces_instance=True,
        )
        log.info("ams.registered", devices=len(info.deviceInformation))
        await self._wake()
        return stored

    async def registrations(self) -> list[RegistrationInfo]:
        """Every live registration."""
        found = live(await self._store.registrations(), self._clock())
        return [RegistrationInfo.model_validate(r.body) for r in found]

    async def registration(self, rid: str) -> RegistrationInfo:
        """One live registration.

        Raises:
            RequestRejected: 404.
        """
        row = await self._store.registration(rid)
        if row is None or not live([row], self._clock()):
            raise _not_found("application mobility service")
        return RegistrationInfo.model_validate(row.body)

    async def update(self, rid: str, info: RegistrationInfo) -> RegistrationInfo:
        """Replace a registration (the application's word on its devices and their context)."""
        if info.appMobilityServiceId not in (None, rid):
            raise RequestRejected(
                400, "Bad Request", "appMobilityServiceId: differs from the resource's id"
            )
        old = await self.registration(rid)
        instance = _consumer(info)
        if instance != _consumer(old):
            raise RequestRejected(
                400, "Bad Request", "serviceConsumerId: a registration cannot change owner"
            )
        stored = info.model_copy(update={"appMobilityServiceId": rid})
        marks = []
        for p in await self._store.procedures(instance):
            waited = p.body["waited"]
            new = proc.observe(p.body["marks"], waited, stored)
            if new != p.body["marks"]:
                marks.append(Row(p.id, instance, {**p.body, "marks": new}))
        await self._store.put_registration(
            Row(rid, instance, _doc(stored), self._expiry(info.expiryTime)), marks=marks
        )
        log.info("ams.updated", devices=len(info.deviceInformation), marked=len(marks))
        await self._wake()
        return stored

    async def deregister(self, rid: str) -> None:
        """Delete a registration.

        Raises:
            RequestRejected: 404.
        """
        if not await self._store.delete_registration(rid):
            raise _not_found("application mobility service")
        await self._wake()

    # Subscriptions (MEC 021 clause 8.5 subscriptions, 8.6 individual) ------------------------

    async def subscribe(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a subscription; its callback must be an allowed destination."""
        sub = _SUBSCRIPTION.validate_python(body)
        _check_delivery(sub)
        assert sub.callbackReference is not None
        await self._notifier.vet(sub.callbackReference)
        if await self._store.count("subscriptions") >= self._s.max_subscriptions:
            raise RequestRejected(
                503, "Service Unavailable", "the AMS holds as many subscriptions as it may"
            )
        sid = secrets.token_urlsafe(16)
        stored = self._with_defaults(sub, sid)
        await self._store.put_subscription(
            Row(sid, stored.filterCriteria.appInstanceId, _doc(stored), self._deadline(stored)),
            stored.subscriptionType,
        )
        log.info("ams.subscribed", kind=stored.subscriptionType)
        return _doc(stored)

    async def subscriptions(self, kind: str | None) -> SubscriptionLinkList:
        """Links to every live subscription, or those of one ``subscriptionType`` query value."""
        if kind is not None and kind not in KINDS:
            raise RequestRejected(
                400, "Bad Request", "subscriptionType: mobility_proc or adj_app_info"
            )
        found = live(await self._store.subscriptions(KINDS[kind] if kind else None), self._clock())
        return SubscriptionLinkList(
            links=SelfLink(self_=LinkType(href=f"{self.base_url}/subscriptions")),
            subscription=[
                SubscriptionLink(
                    href=self._sub_href(r.id), subscriptionType=r.body["subscriptionType"]
                )
                for r in found
            ],
        )

    async def subscription(self, sid: str) -> dict[str, Any]:
        """One live subscription.

        Raises:
            RequestRejected: 404.
        """
        row = await self._store.subscription(sid)
        if row is None or not live([row], self._clock()):
            raise _not_found("subscription")
        return row.body

    async def resubscribe(self, sid: str, body: dict[str, Any]) -> dict[str, Any]:
        """Replace a subscription; its type and self link cannot change."""
        old = await self.subscription(sid)
        sub = _SUBSCRIPTION.validate_python(body)
        if sub.subscriptionType != old["subscriptionType"]:
            raise RequestRejected(400, "Bad Request", "subscriptionType: cannot change")
        if sub.links is not None and sub.links.self_.href != self._sub_href(sid):
            raise RequestRejected(400, "Bad Request", "_links.self: not this subscription")
        _check_delivery(sub)
        assert sub.callbackReference is not None
        await self._notifier.vet(sub.callbackReference)
        stored = self._with_defaults(sub, sid)
        await self._store.put_subscription(
            Row(sid, stored.filterCriteria.appInstanceId, _doc(stored), self._deadline(stored)),
            stored.subscriptionType,
        )
        return _doc(stored)

    async def unsubscribe(self, sid: str) -> None:
        """Delete a subscription.

        Raises:
            RequestRejected: 404.
        """
        if not await self._store.delete_subscription(sid):
            raise _not_found("subscription")

    # Adjacent application instances (MEC 021 clause 8.7 queries/adjacent_app_instances) ------

    async def adjacent(self, app_instance_id: str) -> list[AdjacentAppInstanceInfo]:
        """The other known instances of the application ``app_instance_id`` is an instance of."""
        app = app_instance_id.split(".", 1)[0]
        return [
            AdjacentAppInstanceInfo.model_validate(r.body)
            for r in await self._store.instances(app)
            if r.id != app_instance_id
        ]

    async def learn_instance(
        self, app_instance_id: str, app: str, cluster: str, host: str, port: int
    ) -> None:
        """Remember where an instance answers; tell who subscribed to its siblings' news."""
        link = CommunicationInterface(ipAddresses=[IpAddress(host=host, port=port)])
        info = AdjacentAppInstanceInfo(
            appDId=app,
            appInstanceCommLink=[link],
            appInstanceId=app_instance_id,
            mecHostInformation=MecHostInformation(hostId=cluster, hostName=cluster),
        )
        await self._store.put_instance(app_instance_id, app, _doc(info))
        siblings = {r.id for r in await self._store.instances(app)} - {app_instance_id}
        now = datetime.fromtimestamp(self._clock(), UTC)
        for row in live(await self._store.subscriptions(KINDS["adj_app_info"]), self._clock()):
            if row.app_instance_id in siblings:
                note = AdjacentAppInfoNotification(
                    timeStamp=TimeStamp.of(now),
                    adjacentAppInfo=[
                        AdjacentAppInfo(appInstanceId=app_instance_id, commInterface=[link])
                    ],
                    links=NotificationLinks(subscription=LinkType(href=self._sub_href(row.id))),
                )
                await self._notifier.deliver(
                    row.body["callbackReference"], _doc(note), what="adjacent_app_info"
                )

    # Procedures (driven by the relocation workflow's context-transfer step) ----------------

    async def plan(self, source_id: str) -> tuple[proc.Plan, list[RegistrationInfo]]:
        """What the source instance's live registrations ask of a move."""
        found = live(await self._store.registrations(source_id), self._clock())
        regs = [RegistrationInfo.model_validate(r.body) for r in found]
        return proc.plan(regs), regs

    async def start(
        self,
        pid: str,
        *,
        source_id: str,
        target_id: str,
        waited: dict[str, dict[str, Any]],
        notify: dict[str, dict[str, Any]],
        confirm: bool,
        deadline_s: float,
        regs: list[RegistrationInfo],
    ) -> None:
        """Record a procedure (idempotently: a retried start keeps the marks it has)."""
        existing = [p for p in await self._store.procedures(source_id) if p.id == pid]
        if existing:
            return
        body = {
            "target_id": target_id,
            "waited": sorted(waited),
            "notify": notify,
            "confirm": confirm,
            "deadline_s": deadline_s,
            "marks": {},
        }
        reset = [
            Row(r.appMobilityServiceId or "", source_id, _doc(proc.reset(r, waited))) for r in regs
        ]
        await self._store.begin_procedure(Row(pid, source_id, body), reset)

    async def notify_mobility(
        self,
        source_id: str,
        devices: list[dict[str, Any]],
        status: MobilityStatus,
        target: TargetAppInfo | None = None,
    ) -> int:
        """POST a MobilityProcedureNotification to every subscription it matches; returns how
        many answered 2xx."""
        ids = {AssociateId.model_validate(d).key() for d in devices}
        now = datetime.fromtimestamp(self._clock(), UTC)
        delivered = 0
        for row in live(await self._store.subscriptions(KINDS["mobility_proc"]), self._clock()):
            sub = MobilityProcedureSubscription.model_validate(row.body)
            f = sub.filterCriteria
            if f.appInstanceId not in (None, source_id):
                continue
            if f.associateId and not ids & {a.key() for a in f.associateId}:
                continue
            if status not in f.mobilityStatus:
                continue
            note = MobilityProcedureNotification(
                timeStamp=TimeStamp.of(now),
                associateId=[AssociateId.model_validate(d) for d in devices],
                mobilityStatus=status,
                targetAppInfo=target,
                links=NotificationLinks(subscription=LinkType(href=self._sub_href(row.id))),
            )
            assert sub.callbackReference is not None
            if await self._notifier.deliver(
                sub.callbackReference, _doc(note), what=status.name.lower()
            ):
                delivered += 1
        return delivered

    async def procedure(self, source_id: str, pid: str) -> dict[str, Any] | None:
        """A procedure's record, or None once it ended."""
        found = [p for p in await self._store.procedures(source_id) if p.id == pid]
        return found[0].body if found else None

    async def where_devices_are(self, source_id: str, target_id: str) -> tuple[set[str], set[str]]:
        """The device keys the source's and the target's live registrations list now."""
        now = self._clock()
        out = []
        for instance in (source_id, target_id):
            keys = set()
            for r in live(await self._store.registrations(instance), now):
                for d in RegistrationInfo.model_validate(r.body).deviceInformation:
                    keys.add(d.associateId.key())
            out.append(keys)
        return out[0], out[1]

    async def changed(self, timeout_s: float) -> None:
        """Return when a registration changed, or after ``timeout_s``."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout_s)

    async def end(self, pid: str) -> None:
        """Forget a procedure."""
        await self._store.end_procedure(pid)

    async def forget(self, app_instance_id: str) -> int:
        """Drop what belongs to an instance that was removed."""
        gone = await self._store.forget(app_instance_id)
        await self._wake()
        return gone

    # Helpers --------------------------------------------------------------------------------

    def now_s(self) -> float:
        """Wall-clock seconds, by the AMS's clock."""
        return self._clock()

    async def _wake(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _expiry(self, expiry_time: int | None) -> float | None:
        return self._clock() + expiry_time if expiry_time else None

    def _deadline(
        self, sub: MobilityProcedureSubscription | AdjacentAppInfoSubscription
    ) -> float | None:
        return sub.expiryDeadline.to_datetime().timestamp() if sub.expiryDeadline else None

    def _sub_href(self, sid: str) -> str:
        return f"{self.base_url}/subscriptions/{sid}"

    def _with_defaults(
        self, sub: MobilityProcedureSubscription | AdjacentAppInfoSubscription, sid: str
    ) -> MobilityProcedureSubscription | AdjacentAppInfoSubscription:
        links = SelfLink(self_=LinkType(href=self._sub_href(sid)))
        if isinstance(sub, MobilityProcedureSubscription) and not sub.filterCriteria.mobilityStatus:
            # MEC 021 clause 7.3.2: absent, INTERHOST_MOVEOUT_TRIGGERED is meant, and said back.
            criteria = sub.filterCriteria.model_copy(
                update={"mobilityStatus": [MobilityStatus.INTERHOST_MOVEOUT_TRIGGERED]}
            )
            return sub.model_copy(update={"filterCriteria": criteria, "links": links})
        return sub.model_copy(update={"links": links})


def _consumer(info: RegistrationInfo) -> str:
    c = info.serviceConsumerId
    if (c.appInstanceId is None) == (c.mepId is None):
        raise RequestRejected(
            400, "Bad Request", "serviceConsumerId: exactly one of appInstanceId and mepId"
        )
    keys = [d.associateId.key() for d in info.deviceInformation]
    if len(keys) != len(set(keys)):
        raise RequestRejected(400, "Bad Request", "deviceInformation: a device is listed twice")
    return c.appInstanceId or f"mep:{c.mepId}"


def _check_delivery(sub: MobilityProcedureSubscription | AdjacentAppInfoSubscription) -> None:
    if sub.websockNotifConfig is not None:
        raise RequestRejected(
            422, "Unprocessable Entity", "websockNotifConfig: not supported; give callbackReference"
        )
    if sub.callbackReference is None:
        raise RequestRejected(400, "Bad Request", "callbackReference: required")
    if isinstance(sub, MobilityProcedureSubscription):
        f = sub.filterCriteria
        if f.appInstanceId is None and not f.associateId:
            raise RequestRejected(
                400, "Bad Request", "filterCriteria: give appInstanceId or associateId"
            )


def _doc(model: Any) -> dict[str, Any]:
    data: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    return data
