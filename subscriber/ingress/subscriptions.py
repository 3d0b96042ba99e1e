"""Subscription lifecycle against the AMF, SMF and NEF: create, renew, recover, delete.

What the cores do, and what we do about it (docs/free5gc.md, which cites the free5GC sources):

* **Ids.** free5GC's AMF sends no Location header: the id is the body's ``subscriptionId``
  (amf v1.4.5 processor/event_exposure.go). A spec producer's id is the last segment of its
  Location header.
* **Renewal.** Before ``expiry`` we PATCH the expiry. free5GC decodes only its own body dialect
  ``{"optionItem":[...]}`` and answers 400 to the spec's JSON-Patch array (openapi
  ModifySubscriptionRequest), so the dialect is
  chosen per subscription: free5GC's when the create had no Location header, the spec's otherwise;
  a 400 switches dialect once.
* **Producer restarts.** A 404 on renew means the producer forgot us: subscribe again. free5GC's
  ids are a counter that starts again at 1 when the AMF restarts (amf v1.4.5
  processor/event_exposure.go), so an id not above the
  last one we saw from that producer also means it restarted
  (:meth:`SubscriptionManager.observe_id`, fed by the poller too). The free5GC AMF also
  registers under a new instance id when it restarts;
  a subscription whose producer is no longer discovered is dropped *without* a DELETE, since its
  id may belong to another consumer now.
* **Shutdown.** Every subscription is deleted; free5GC answers ``200 null``, the spec 204 (amf
v1.4.5 processor/event_exposure.go).
* **SMF.** free5GC answers 501 (or ``200 {}`` before smf v1.2.4) on ``/nsmf_event-exposure``
  (smf v1.4.4 sbi/api_eventexposure.go): the SMF is marked unsupported and not asked again until it
  is rediscovered.
* **Persistence.** Records live in ``state_dir/subscriptions.json`` (atomic writes) and are
  written *before* the create is sent, so a crash never leaks an unrecorded subscription, and a
  restarted daemon renews (reuses) or deletes what the last run created.

**Callback keys.** Callback URIs are ``{receiver public url}/callbacks/{amf|smf|nef}/{callback
key}``: 192 random bits per subscription (:func:`new_callback_key`), kept in the state file and
never logged, so nobody who could not read the subscription request can guess one. The
correlation id (``notifyCorrelationId``, ``notifId``) is the record's key, a stable name that is
not secret; :class:`SubscriptionRegistry` tells the receiver which subscription a callback key
belongs to and what its bodies must name (:class:`~subscriber.ingress.normalize.Binding`).
Records from before callback keys existed are deleted at their producer and created again.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

import orjson
import structlog
from pydantic import BaseModel, ConfigDict

from subscriber.errors import CoreUnavailable
from subscriber.ingress.normalize import Binding
from subscriber.ingress.nrf import NrfClient, Producer, SbiResponse
from subscriber.ingress.statefile import WatchedKeys, load_or_set_aside, write_atomic
from subscriber.sbi.amf import (
    AmfCreateEventSubscription,
    AmfEvent,
    AmfEventMode,
    AmfEventSubscription,
)
from subscriber.sbi.nef import MonitoringEventSubscription
from subscriber.sbi.smf import EventSubscription, NsmfEventExposure
from subscriber.settings import CoreSettings, Settings

if TYPE_CHECKING:
    from subscriber.influence import CallbackRegistry

log = structlog.get_logger()

Kind = Literal["amf", "smf", "nef"]
Dialect = Literal["free5gc", "spec"]

STATE_FILE = "subscriptions.json"
_AMF_PATH = "/namf-evts/v1/subscriptions"
# The spec path, then free5GC's underscore path (smf v1.4.4 sbi/api_eventexposure.go).
_SMF_PATHS = ("/nsmf-event-exposure/v1/subscriptions", "/nsmf_event-exposure/v1/subscriptions")
_SCOPES = {"amf": ("AMF", "namf-evts"), "smf": ("SMF", "nsmf-event-exposure"), "nef": ("NEF", "")}


def iso_time(epoch_s: float) -> str:
    """An RFC 3339 UTC time with ``Z``, as 3GPP DateTime fields want it."""
    moment = datetime.fromtimestamp(epoch_s, UTC).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


def _epoch(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def owns(producer_id: str, settings: CoreSettings) -> bool:
    """Whether this daemon instance is the one that handles ``producer_id``.

    Instance ``i`` of ``n`` handles the producers whose id hashes to ``i`` (a stable hash, so
    every instance computes the same split without talking to the others).
    """
    count = max(1, settings.instance_count)
    digest = hashlib.blake2b(producer_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count == settings.instance_index % count


def new_callback_key() -> str:
    """An unguessable callback key: 192 random bits, URL-safe."""
    return secrets.token_urlsafe(24)


def subscription_key(instance_id: str, kind: str, producer_id: str, purpose: str) -> str:
    """A stable name: the same daemon, producer and purpose always give the same one.

    Computed from identifiers the NRF publishes, so it is no secret: it names a subscription in
    the state file, in logs and as its correlation id, never authenticates a callback.
    """
    digest = hashlib.blake2b(
        f"{instance_id}|{kind}|{producer_id}|{purpose}".encode(), digest_size=8
    ).hexdigest()
    return f"{kind}-{purpose}-{digest}"


@dataclass(slots=True)
class SubscriptionRecord:
    """One subscription we created (or are creating) at a producer."""

    key: str
    kind: Kind
    producer_id: str
    api_root: str
    purpose: str
    subscription_id: str | None = None
    resource_uri: str | None = None
    dialect: Dialect = "spec"
    expiry_s: float | None = None
    created_s: float = 0.0
    target: str | None = None
    request: dict[str, Any] = field(default_factory=dict)
    callback_key: str = ""
    """The secret last segment of the callback URI; empty in records of older versions."""

    def to_json(self) -> dict[str, Any]:
        """The record as stored in the state file."""
        return asdict(self)

    def binding(self) -> Binding:
        """What a callback on this subscription's URI must name."""
        correlation = None if self.kind == "nef" else self.key
        return Binding(self.key, correlation_id=correlation, subscription_id=self.subscription_id)


class _StateFile(BaseModel):
    """The shape of ``subscriptions.json``; anything else is set aside, not obeyed."""

    model_config = ConfigDict(extra="ignore")

    records: list[SubscriptionRecord] = []
    maxIds: dict[str, int] = {}


def _parse_state(raw: Any) -> _StateFile:
    return _StateFile.model_validate(raw)


def _bindings(data: bytes) -> dict[tuple[str, str], Binding]:
    state = _parse_state(orjson.loads(data))
    return {(r.kind, r.callback_key): r.binding() for r in state.records if r.callback_key}


class SubscriptionRegistry(WatchedKeys[tuple[str, str], Binding]):
    """Which callback keys are ours, backed by the manager's state file.

    The receiver calls :meth:`binding` for every callback. In the daemon's own process the
    manager updates it directly; in another process (a receiver worker) it rereads the file when
    the file changes. A file it cannot read (the tracker sets such a file aside at its next
    start) keeps the keys it knew and makes it not ready until the file is good again.

    Args:
        state_dir: the directory holding ``subscriptions.json``.
    """

    def __init__(self, state_dir: Path) -> None:
        super().__init__(
            state_dir / STATE_FILE, _bindings, unreadable_event="subscriptions_unreadable"
        )

    def binding(self, kind: str, key: str) -> Binding | None:
        """The subscription of ours ``/callbacks/{kind}/{key}`` belongs to, or None."""
        return self.get((kind, key))

    def replace(self, records: Iterable[SubscriptionRecord], mtime_ns: int) -> None:
        """Take the manager's records as the known set (same process)."""
        self._known = {(r.kind, r.callback_key): r.binding() for r in records if r.callback_key}
        self._mtime_ns = mtime_ns
        self._ready = True


def registry_for(settings: Settings) -> CallbackRegistry:
    """The registry a receiver worker uses: the event subscriptions and the traffic-influence
    subscriptions kept in ``core.state_dir``.

    ``subscriber serve`` resolves this by name in each worker process.
    """
    from subscriber.influence import CallbackRegistry, InfluenceRegistry

    state_dir = settings.core.state_dir
    return CallbackRegistry(SubscriptionRegistry(state_dir), InfluenceRegistry(state_dir))


class SubscriptionManager:
    """Keeps our AMF/SMF/NEF event subscriptions alive and cleans them up.

    An async context manager: entering loads what a previous run left in ``state_dir``;
    :meth:`run` (or :meth:`reconcile`, once) creates, renews and recovers; leaving deletes every
    subscription (clean shutdown).

    Args:
        settings: the ``core`` settings group.
        nrf: tokens, discovery and authorized calls.
        callback_base: the receiver's public base URL, e.g. ``http://10.0.0.5:8800``.
        registry: the registry the receiver checks; one is made when not given.
        clock: wall-clock seconds; injected by tests.
    """

    def __init__(
        self,
        *,
        settings: CoreSettings,
        nrf: NrfClient,
        callback_base: str,
        registry: SubscriptionRegistry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._nrf = nrf
        self._callback_base = callback_base.rstrip("/")
        self.registry = registry or SubscriptionRegistry(settings.state_dir)
        self._clock = clock
        self._path = settings.state_dir / STATE_FILE
        self.records: dict[str, SubscriptionRecord] = {}
        self._max_ids: dict[str, int] = {}
        self._unsupported: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._legacy: list[SubscriptionRecord] = []
        self.restarts_detected = 0

    async def __aenter__(self) -> Self:
        stored = load_or_set_aside(self._path, _parse_state, _StateFile())
        for record in stored.records:
            if record.callback_key:
                self.records[record.key] = record
            else:
                self._legacy.append(record)
        self._max_ids = dict(stored.maxIds)
        self._save()
        if self.records:
            log.info("subscriptions_adopted", count=len(self.records))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.delete_all()

    # -- state -------------------------------------------------------------------------------

    def _save(self) -> None:
        doc = {
            "instanceId": self._nrf.instance_id,
            "records": [r.to_json() for r in (*self.records.values(), *self._legacy)],
            "maxIds": self._max_ids,
        }
        write_atomic(self._path, orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        self.registry.replace(self.records.values(), self._path.stat().st_mtime_ns)

    def observe_id(self, producer_id: str, subscription_id: str) -> bool:
        """Note an id a free5GC producer handed out; return True if it shows a restart.

        free5GC's ids count up from 1 for the life of the AMF (EventSubscriptionIDGenerator,
        amf v1.4.5 processor/event_exposure.go): an id not above the highest seen means the counter
        started again. Our
        subscriptions there are then gone and are dropped (not deleted: their ids may be
        someone else's now); :meth:`reconcile` subscribes again.
        """
        if not subscription_id.isdigit():
            return False
        value = int(subscription_id)
        previous = self._max_ids.get(producer_id)
        self._max_ids[producer_id] = value
        restarted = previous is not None and value <= previous
        if restarted:
            self.restarts_detected += 1
            lost = [r.key for r in self.records.values() if r.producer_id == producer_id]
            for key in lost:
                del self.records[key]
            log.info("producer_restart_detected", producer=producer_id, lost=len(lost))
            self._save()
        # Otherwise the new maximum is saved with the next change: no fsync on every poll.
        return restarted

    # -- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Reconcile forever, backing off while the core is unreachable."""
        backoff = 1.0
        while True:
            try:
                await self.reconcile()
                backoff = 1.0
                await asyncio.sleep(self._check_interval_s())
            except CoreUnavailable as exc:
                log.warning("subscriptions_reconcile_failed", error=str(exc), retry_in_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._settings.poll_max_backoff_s)

    def _check_interval_s(self) -> float:
        return max(0.2, min(self._renew_before_s() / 2, 5.0))

    def _renew_before_s(self) -> float:
        return min(self._settings.renew_before_s, self._settings.subscription_ttl_s / 2)

    async def reconcile(self) -> None:
        """One pass: subscribe where we should, renew what is due, drop what vanished.

        Raises:
            CoreUnavailable: the NRF or a producer could not be reached.
        """
        steps: list[Callable[[], Awaitable[None]]] = [self._replace_legacy]
        if self._settings.amf_tracking in ("notify", "both"):
            steps.append(self._reconcile_amf)
        if self._settings.smf_url or self._settings.nrf_url:
            steps.append(self._reconcile_smf)
        if self._settings.nef_targets and (self._settings.nef_url or self._settings.nrf_url):
            steps.append(self._reconcile_nef_targets)
        steps.append(self._renew_due)
        # Each step runs even if an earlier one failed: an SMF that is down must not let the
        # AMF subscription expire unrenewed.
        failure: CoreUnavailable | None = None
        for step in steps:
            try:
                await step()
            except CoreUnavailable as exc:
                log.warning("subscriptions_step_failed", step=step.__name__, error=str(exc))
                failure = failure or exc
        if failure is not None:
            raise failure

    async def _replace_legacy(self) -> None:
        """Delete subscriptions whose callback URI carries an old, guessable key.

        They were made before callback keys were random; the next steps create them again.
        """
        while self._legacy:
            record = self._legacy[0]
            try:
                await self.delete(record)
            except CoreUnavailable as exc:  # best effort: the receiver refuses its key anyway
                log.warning("subscription_delete_failed", key=record.key, error=str(exc))
            self._legacy.pop(0)
            self._save()

    async def _reconcile_amf(self) -> None:
        await self._reconcile_kind("amf", await self._nrf.discover("AMF"), "location")

    async def _reconcile_smf(self) -> None:
        await self._reconcile_kind("smf", await self._nrf.discover("SMF"), "up-path")

    async def _reconcile_nef_targets(self) -> None:
        await self._reconcile_nef(await self._nrf.discover("NEF"))

    async def _renew_due(self) -> None:
        now = self._clock()
        for record in list(self.records.values()):
            if record.key not in self.records:
                continue  # dropped while renewing an earlier one
            if record.expiry_s is not None and record.expiry_s - now <= self._renew_before_s():
                await self.renew(record)

    async def _reconcile_kind(self, kind: Kind, producers: list[Producer], purpose: str) -> None:
        live = {p.nf_instance_id for p in producers}
        for record in [r for r in self.records.values() if r.kind == kind]:
            if record.producer_id not in live:
                # Gone from the NRF (free5GC AMFs re-register under a new id after a restart):
                # forget it without DELETE, whose id could now name someone else's subscription.
                del self.records[record.key]
                self._save()
        for producer in producers:
            if not owns(producer.nf_instance_id, self._settings):
                continue
            if producer.nf_instance_id in self._unsupported:
                continue
            key = subscription_key(self._nrf.instance_id, kind, producer.nf_instance_id, purpose)
            if key not in self.records or self.records[key].subscription_id is None:
                await self.subscribe(kind, producer, purpose)

    async def _reconcile_nef(self, producers: list[Producer]) -> None:
        # One monitoring-event subscription per configured UE, at the first NEF this instance
        # owns; the purpose carries a hash of the target so the key stays URL-safe.
        owned = [p for p in producers if owns(p.nf_instance_id, self._settings)]
        live = {p.nf_instance_id for p in producers}
        for record in [r for r in self.records.values() if r.kind == "nef"]:
            if record.producer_id not in live:
                del self.records[record.key]
                self._save()
        if not owned:
            return
        for target in self._settings.nef_targets:
            purpose = "location-" + hashlib.blake2b(target.encode(), digest_size=4).hexdigest()
            key = subscription_key(self._nrf.instance_id, "nef", owned[0].nf_instance_id, purpose)
            if key not in self.records or self.records[key].subscription_id is None:
                await self.subscribe("nef", owned[0], purpose, target=target)

    # -- create ------------------------------------------------------------------------------

    def callback_uri(self, record: SubscriptionRecord) -> str:
        """Where the producer must POST notifications for ``record``: a secret URI."""
        return f"{self._callback_base}/callbacks/{record.kind}/{record.callback_key}"

    async def subscribe(
        self, kind: Kind, producer: Producer, purpose: str, *, target: str | None = None
    ) -> SubscriptionRecord | None:
        """Create one subscription and record it; None when the producer does not support it.

        Args:
            kind: amf, smf or nef.
            producer: where to subscribe.
            purpose: what for (``location``, ``up-path``); part of the stable key.
            target: for NEF, the UE's GPSI (``msisdn-...``) or external group id.

        Raises:
            CoreUnavailable: the producer could not be reached or refused.
        """
        key = subscription_key(self._nrf.instance_id, kind, producer.nf_instance_id, purpose)
        now = self._clock()
        expiry = now + self._settings.subscription_ttl_s
        record = SubscriptionRecord(
            key=key,
            kind=kind,
            producer_id=producer.nf_instance_id,
            api_root=producer.api_root,
            purpose=purpose,
            created_s=now,
            expiry_s=expiry,
            target=target,
            callback_key=new_callback_key(),
        )
        record.request = self._request(record, expiry, target)
        # Recorded before it exists: a crash after the POST leaves a record we can clean up,
        # and a notification racing the 201 finds its key known.
        self.records[key] = record
        self._save()
        try:
            created = await self._create(record)
        except BaseException:
            self.records.pop(key, None)
            self._save()
            raise
        if not created:
            self.records.pop(key, None)
            self._unsupported.add(producer.nf_instance_id)
            self._save()
            return None
        self._save()
        log.info(
            "subscription_created",
            kind=kind,
            key=key,
            subscription_id=record.subscription_id,
            dialect=record.dialect,
        )
        return record

    def _request(self, record: SubscriptionRecord, expiry: float, target: str | None) -> Any:
        uri = self.callback_uri(record)
        if record.kind == "amf":
            return AmfCreateEventSubscription(
                subscription=AmfEventSubscription(
                    event_list=[AmfEvent(type="LOCATION_REPORT")],
                    event_notify_uri=uri,
                    notify_correlation_id=record.key,
                    nf_id=self._nrf.instance_id,
                    any_ue=True,
                    options=AmfEventMode(trigger="CONTINUOUS", expiry=iso_time(expiry)),
                )
            ).model_dump(mode="json", exclude_none=True)
        if record.kind == "smf":
            return NsmfEventExposure(
                any_ue_ind=True,
                nf_id=self._nrf.instance_id,
                notif_id=record.key,
                notif_uri=uri,
                event_subs=[EventSubscription(event="UP_PATH_CH", dnai_chg_type="EARLY_LATE")],
                expiry=datetime.fromtimestamp(int(expiry), UTC),
            ).model_dump(mode="json", exclude_none=True)
        body = MonitoringEventSubscription(
            notification_destination=uri,
            monitoring_type="LOCATION_REPORTING",
            monitor_expire_time=datetime.fromtimestamp(int(expiry), UTC),
            location_type="LAST_KNOWN_LOCATION",
        ).model_dump(mode="json", exclude_none=True, by_alias=True)
        if target and target.startswith("msisdn-"):
            body["msisdn"] = target.removeprefix("msisdn-")
        elif target:
            body["externalGroupId"] = target
        return body

    def _collection_urls(self, record: SubscriptionRecord) -> list[str]:
        root = record.api_root
        if record.kind == "amf":
            return [root + _AMF_PATH]
        if record.kind == "smf":
            return [root + path for path in _SMF_PATHS]
        return [f"{root}/3gpp-monitoring-event/v1/{self._settings.nef_af_id}/subscriptions"]

    def creation_lock(self, producer_id: str) -> asyncio.Lock:
        """Held around each create at ``producer_id`` and the :meth:`observe_id` of its answer.

        The poller takes it too, so free5GC's counter ids are observed in the order the AMF
        issued them; two creates racing would otherwise look like a counter going back.
        """
        return self._locks.setdefault(producer_id, asyncio.Lock())

    async def _create(self, record: SubscriptionRecord) -> bool:
        async with self.creation_lock(record.producer_id):
            return await self._create_locked(record)

    async def _create_locked(self, record: SubscriptionRecord) -> bool:
        nf_type, scope = _SCOPES[record.kind]
        body = orjson.dumps(record.request)
        response: SbiResponse | None = None
        url = ""
        for url in self._collection_urls(record):
            response = await self._nrf.call(nf_type, scope, "POST", url, body)
            if response.status != 404:
                break
        assert response is not None
        if response.status == 501 or (record.kind == "smf" and response.status == 200):
            # free5GC's SMF: 501 {} since v1.2.4, a silent 200 {} before (smf v1.4.4
            # sbi/api_eventexposure.go).
            log.info("subscription_unsupported", kind=record.kind, status=response.status)
            return False
        if response.status != 201:
            raise CoreUnavailable(
                f"{record.kind} subscribe refused: {response.status}", status=response.status
            )
        answer = response.json() if response.body else {}
        location = response.headers.get("Location")
        if location:
            record.resource_uri = location
            record.subscription_id = location.rstrip("/").rsplit("/", 1)[-1]
            record.dialect = "spec"
        else:
            # free5GC: no Location header, the id only in the body (amf v1.4.5
            # processor/event_exposure.go).
            sub_id = answer.get("subscriptionId") or answer.get("subId")
            if not sub_id:
                raise CoreUnavailable(f"{record.kind} subscribe answer carries no id")
            record.subscription_id = str(sub_id)
            record.resource_uri = f"{url}/{record.subscription_id}"
            record.dialect = "free5gc"
            self.observe_id(record.producer_id, record.subscription_id)
            self.records[record.key] = record
        granted = _epoch(_granted_expiry(record.kind, answer))
        if granted is not None:
            record.expiry_s = granted
        return True

    # -- renew -------------------------------------------------------------------------------

    async def renew(self, record: SubscriptionRecord) -> None:
        """Push the expiry forward; subscribe again if the producer no longer knows it.

        Raises:
            CoreUnavailable: the producer could not be reached or refused.
        """
        if record.subscription_id is None or record.resource_uri is None:
            return
        expiry = self._clock() + self._settings.subscription_ttl_s
        nf_type, scope = _SCOPES[record.kind]
        response = await self._send_renewal(record, expiry, nf_type, scope)
        if response.status == 400 and record.kind == "amf":
            # The other dialect: free5GC refuses the JSON-Patch array and vice versa (openapi
            # ModifySubscriptionRequest).
            record.dialect = "spec" if record.dialect == "free5gc" else "free5gc"
            response = await self._send_renewal(record, expiry, nf_type, scope)
        if response.status == 404:
            log.info("subscription_lost", kind=record.kind, key=record.key)
            self.records.pop(record.key, None)
            self._save()
            producer = Producer(nf_type, record.producer_id, record.api_root)
            await self.subscribe(record.kind, producer, record.purpose, target=record.target)
            return
        if response.status not in (200, 204):
            raise CoreUnavailable(
                f"{record.kind} renew refused: {response.status}", status=response.status
            )
        answer = response.json() if response.body else {}
        record.expiry_s = _epoch(_granted_expiry(record.kind, answer)) or expiry
        self._save()
        log.info("subscription_renewed", kind=record.kind, key=record.key)

    async def _send_renewal(
        self, record: SubscriptionRecord, expiry: float, nf_type: str, scope: str
    ) -> SbiResponse:
        assert record.resource_uri is not None
        value = iso_time(expiry)
        if record.kind == "amf":
            item = {"op": "replace", "path": "/options/expiry", "value": value}
            if record.dialect == "free5gc":
                # ModifySubscriptionRequest without json tags (openapi ModifySubscriptionRequest).
                body, content_type = orjson.dumps({"optionItem": [item]}), "application/json"
            else:
                body, content_type = orjson.dumps([item]), "application/json-patch+json"
            return await self._nrf.call(
                nf_type, scope, "PATCH", record.resource_uri, body, content_type
            )
        # SMF (TS 29.508) and NEF (TS 29.522) replace the whole resource with PUT.
        request = dict(record.request)
        request["expiry" if record.kind == "smf" else "monitorExpireTime"] = value
        record.request = request
        return await self._nrf.call(
            nf_type, scope, "PUT", record.resource_uri, orjson.dumps(request)
        )

    # -- delete ------------------------------------------------------------------------------

    async def delete(self, record: SubscriptionRecord) -> None:
        """DELETE one subscription; ``200 null`` (free5GC), 204 and 404 all mean it is gone."""
        if record.resource_uri is not None:
            nf_type, scope = _SCOPES[record.kind]
            response = await self._nrf.call(nf_type, scope, "DELETE", record.resource_uri)
            if response.status not in (200, 204, 404):
                raise CoreUnavailable(
                    f"{record.kind} delete refused: {response.status}", status=response.status
                )
        self.records.pop(record.key, None)
        self._save()
        log.info("subscription_deleted", kind=record.kind, key=record.key)

    async def delete_all(self) -> None:
        """Delete every recorded subscription (clean shutdown); failures are logged and kept."""
        for record in list(self.records.values()):
            try:
                await self.delete(record)
            except CoreUnavailable as exc:
                log.warning("subscription_delete_failed", key=record.key, error=str(exc))


def _granted_expiry(kind: str, answer: Any) -> Any:
    if not isinstance(answer, dict):
        return None
    if kind == "amf":
        options = (answer.get("subscription") or {}).get("options") or {}
        return options.get("expiry")
    return answer.get("expiry") or answer.get("monitorExpireTime")
