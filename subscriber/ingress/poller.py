"""Poll-and-diff: UE locations from AMFs that never notify (free5GC).

The free5GC AMF never POSTs an event notification; its only reports are the immediate ones in
the 201 of a subscribe (free5gc/amf#78). So, every ``core.poll_interval_s``, for
each AMF this instance owns, the poller:

1. POSTs one ``anyUE`` + ``ONE_TIME`` subscription with an immediate LOCATION_REPORT, which returns
   the last known location of every UE in the AMF; free5GC deletes such a subscription at once,
   but with zero UEs there is no report and it stays, so we DELETE it (amf v1.4.5
   newAmfEventReport);
2. optionally asks Namf_Location provide-loc-info for each tracked SUPI (amf v1.4.5
processor/location_info.go);
3. diffs each UE on (PLMN, TAC, cell) against the last known state, ignoring reports older than
   that state by ``ueLocationTimestamp`` (the report's ``timeStamp`` is only the subscription
   time, amf v1.4.5 newAmfEventReport), and turns the reports that changed into
   :class:`~subscriber.events.LocationEvent`
   (``delivery=polled``) with :mod:`subscriber.ingress.normalize`, in ``ueLocationTimestamp``
   order;
4. hands them to the :class:`EventSink` (the Kafka publisher), and only once that returns (the
   events are durable) records the new state in ``state_dir/poller-state.json``. A crash between
   the two re-emits the same events, whose ids are deterministic, so consumers dedupe them.

A UE seen for the first time yields one event (its initial location). Errors back off
exponentially up to ``core.poll_max_backoff_s``. Subscription ids that go back to 1 reveal an
AMF restart (amf v1.4.5 processor/event_exposure.go): discovery is refreshed and the subscription
manager told.

**Several daemon instances.** Each AMF must be polled by exactly one instance. Instance ``i`` of
``n`` (``core.instance_index``, ``core.instance_count``) polls the AMFs whose NF instance id
hashes to ``i`` modulo ``n`` (:func:`subscriber.ingress.subscriptions.owns`). Every instance
discovers the same AMFs from the NRF and computes the same split, with no coordination. When an
AMF restarts it registers under a new id and may move to another instance: that instance sees
every UE for the first time and emits their locations once (deduplicated downstream by state).
Give each instance its own ``state_dir``. Changing ``n`` needs a rolling restart of all
instances; while their settings disagree an AMF may be polled twice or skipped for a cycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol, Self

import orjson
import structlog

from subscriber.errors import CoreUnavailable
from subscriber.events import EventRecord
from subscriber.ingress.normalize import (
    normalize_amf_created_subscription,
    normalize_provide_loc_info,
)
from subscriber.ingress.nrf import NrfClient, Producer
from subscriber.ingress.statefile import load_or_set_aside, write_atomic
from subscriber.ingress.subscriptions import SubscriptionManager, owns
from subscriber.sbi.amf import parse_amf_created_subscription, parse_provide_loc_info
from subscriber.settings import CoreSettings

log = structlog.get_logger()

STATE_FILE = "poller-state.json"
_LOC_CONCURRENCY = 16
_POLL_CORRELATION = "poll"

# Per SUPI: (location key "plmn|tac|cell", sortable ueLocationTimestamp). Two short strings per
# UE, the key interned (few distinct cells), keep 100k tracked UEs in a few tens of MB.
UeState = tuple[str, str]


class EventSink(Protocol):
    """Where polled events go: the same publishing path as received callbacks."""

    async def publish(self, records: Sequence[EventRecord]) -> None:
        """Publish ``records``; when this returns they are durable (Kafka ack or local spool)."""


def sortable_time(text: str) -> str:
    """A Go/RFC 3339 UTC timestamp padded to 9 fractional digits, so strings sort by time.

    Go trims trailing zeros (``…:30.1Z`` vs ``…:30.12Z``, amf v1.4.5 context/ran_ue.go), which
    breaks plain
    string order.
    """
    if not text.endswith("Z"):
        return text
    head, dot, frac = text[:-1].partition(".")
    return f"{head}.{frac.ljust(9, '0')[:9]}Z" if dot else f"{head}.000000000Z"


def location_key(location: Any) -> str | None:
    """``plmn|tac|cell`` of a raw UserLocation dict (NR, then E-UTRA), or None without one."""
    if not isinstance(location, dict):
        return None
    nr = location.get("nrLocation")
    if isinstance(nr, dict):
        tai, cgi, cell_field = nr.get("tai") or {}, nr.get("ncgi") or {}, "nrCellId"
    else:
        eutra = location.get("eutraLocation")
        if not isinstance(eutra, dict):
            return None
        nr = eutra
        tai, cgi, cell_field = eutra.get("tai") or {}, eutra.get("ecgi") or {}, "eutraCellId"
    plmn = tai.get("plmnId") or {}
    tac = tai.get("tac")
    if not tac:
        return None
    return "|".join(
        (
            f"{plmn.get('mcc', '')}{plmn.get('mnc', '')}",
            str(tac).lower(),
            str(cgi.get(cell_field, "")).lower(),
        )
    )


def location_time(location: Any) -> str:
    """The sortable ``ueLocationTimestamp`` of a raw UserLocation, or ``""``."""
    if not isinstance(location, dict):
        return ""
    inner = location.get("nrLocation") or location.get("eutraLocation") or {}
    stamp = inner.get("ueLocationTimestamp") if isinstance(inner, dict) else None
    return sortable_time(stamp) if isinstance(stamp, str) else ""


# One LOCATION_REPORT exactly as free5GC serializes it (Go field order, lowercase hex, no
# escapes; amf v1.4.5 newAmfEventReport): SUPI, the TAI+NCGI segment, ueLocationTimestamp,
# timeStamp.
# Anything else (another core's field order, an escape, an E-UTRA cell) fails to match, and the
# whole body then takes the general path.
_FREE5GC_REPORT = re.compile(
    rb'\{"type":"LOCATION_REPORT","state":\{[^{}]*\},"timeStamp":"([0-9T:.Z+-]+)"'
    rb'(?:,"subscriptionId":"[0-9A-Za-z-]*")?(?:,"anyUe":(?:true|false))?'
    rb',"supi":"([A-Za-z0-9._@-]+)","location":\{"nrLocation":\{'
    rb'("tai":\{"plmnId":\{"mcc":"[0-9]{3}","mnc":"[0-9]{2,3}"\},"tac":"[0-9A-Fa-f]{4,6}"'
    rb'(?:,"nid":"[0-9A-Fa-f]{11}")?\},'
    rb'"ncgi":\{"plmnId":\{"mcc":"[0-9]{3}","mnc":"[0-9]{2,3}"\},"nrCellId":"[0-9A-Fa-f]{9}"'
    rb'(?:,"nid":"[0-9A-Fa-f]{11}")?\})'
    rb'(?:,"ignoreNcgi":false)?(?:,"ageOfLocationInformation":-?[0-9]+)?'
    rb'(?:,"ueLocationTimestamp":"([0-9T:.Z+-]+)")?\}\}'
)
_SUBSCRIPTION_ID = re.compile(rb'"subscriptionId":"([0-9A-Za-z-]*)"')
_REPORT_LIST = b'"reportList":['
_SEGMENT_CACHE_MAX = 1_000_000
_NORMALIZE_CHUNK = 5_000


def _as_report(item: Any) -> Any:
    """A report dict: as decoded (general path), or rebuilt from a scanned tuple."""
    if isinstance(item, dict):
        return item
    supi, segment, located_raw, stamp_raw = item
    nr: dict[str, Any] = orjson.loads(b"{" + segment + b"}")
    if located_raw:
        nr["ueLocationTimestamp"] = located_raw.decode()
    return {
        "type": "LOCATION_REPORT",
        "timeStamp": stamp_raw.decode(),
        "supi": supi,
        "location": {"nrLocation": nr},
    }


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC around a synchronous, allocation-heavy block.

    Decoding and normalizing 100k reports allocates millions of acyclic objects; each young
    collection then rescans them, which made a cold 100k cycle 4x slower. No coroutine runs
    inside the block (it never awaits), and the GC resumes at its end.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def answer_subscription_id(body: bytes) -> str:
    """The ``subscriptionId`` of a subscribe answer, read before its ``reportList``; or ``""``."""
    start = body.find(_REPORT_LIST)
    found = _SUBSCRIPTION_ID.search(body, 0, start if start >= 0 else len(body))
    return found.group(1).decode() if found is not None else ""


def scan_location_reports(body: bytes) -> tuple[str, list[Any]] | None:
    """Read a free5GC anyUE poll answer without building a Python object per JSON node.

    A 100k-UE answer is ~34 MB; decoding it into dicts costs about a second of CPU, scanning it
    with one compiled expression a few tens of milliseconds. The scan is trusted only when it
    accounts for every report in the list (a UE with ``"location":{}`` counts as accounted for,
    and is skipped like in the general path); otherwise None is returned and the caller decodes
    the body in full.

    Returns:
        The subscription id and, per located UE, the tuple ``(supi, tai_ncgi_segment,
        ue_location_timestamp, report_timestamp)`` as raw bytes; or None.
    """
    start = body.find(_REPORT_LIST)
    head_end = start if start >= 0 else len(body)
    found = _SUBSCRIPTION_ID.search(body, 0, head_end)
    if found is None:
        return None
    if start < 0:
        return found.group(1).decode(), []
    matches = [(m[1], m[2], m[3], m[0]) for m in _FREE5GC_REPORT.findall(body, start)]
    reports = body.count(b'"type":', start)
    if len(matches) + body.count(b'"location":{}', start) != reports:
        return None
    return found.group(1).decode(), matches


class Poller:
    """Polls the AMFs this instance owns, diffs UE locations and publishes the changes.

    An async context manager: entering loads the last known state, leaving saves it.

    Args:
        settings: the ``core`` settings group.
        nrf: tokens, discovery and authorized calls.
        sink: the publisher the events go to.
        manager: the subscription manager, told about AMF restarts (optional).
        notify_uri: the eventNotifyUri put in poll subscriptions (never called by free5GC).
        clock: returns the current UTC time; injected by tests.
    """

    def __init__(
        self,
        *,
        settings: CoreSettings,
        nrf: NrfClient,
        sink: EventSink,
        manager: SubscriptionManager | None = None,
        notify_uri: str = "http://127.0.0.1/unused",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._nrf = nrf
        self._sink = sink
        self._manager = manager
        self._notify_uri = notify_uri
        self._clock = clock
        self._path = settings.state_dir / STATE_FILE
        self.state: dict[str, UeState] = {}
        self._max_ids: dict[str, int] = {}
        self._interned: dict[str, str] = {}
        self._segment_keys: dict[bytes, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.polls = 0
        self.failures = 0
        self.events_emitted = 0

    async def __aenter__(self) -> Self:
        self.state = load_or_set_aside(self._path, self._parse_state, {})
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._save()

    def _parse_state(self, stored: Any) -> dict[str, UeState]:
        return {
            str(supi): (self._intern(str(key)), str(seen))
            for supi, (key, seen) in stored["ues"].items()
        }

    def _intern(self, key: str) -> str:
        return self._interned.setdefault(key, key)

    def _save(self) -> None:
        write_atomic(self._path, orjson.dumps({"ues": self.state}))

    # -- loop --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll forever, every ``poll_interval_s``, backing off while the core fails."""
        interval = self._settings.poll_interval_s
        backoff = interval
        while True:
            started = time.monotonic()
            try:
                await self.poll_once()
            except CoreUnavailable as exc:
                self.failures += 1
                log.warning("poll_failed", error=str(exc), retry_in_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._settings.poll_max_backoff_s)
                continue
            backoff = interval
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    async def poll_once(self) -> list[EventRecord]:
        """One cycle over every owned AMF; returns the records of the events published.

        Raises:
            CoreUnavailable: discovery or a poll failed (events of AMFs polled before the
                failure are published first).
        """
        amfs = [
            amf
            for amf in await self._nrf.discover("AMF")
            if owns(amf.nf_instance_id, self._settings)
        ]
        events: list[EventRecord] = []
        updates: dict[str, UeState] = {}
        failure: CoreUnavailable | None = None
        for amf in amfs:
            try:
                events += await self._poll_amf(amf, updates)
                if self._settings.poll_provide_loc_info:
                    events += await self._poll_locations(amf, updates)
            except CoreUnavailable as exc:
                failure = exc
                break
        if events:
            await self._sink.publish(events)
            self.events_emitted += len(events)
        if updates:
            self.state.update(updates)
            self._save()
        self.polls += 1
        if failure is not None:
            raise failure
        return events

    # -- one AMF -----------------------------------------------------------------------------

    def _poll_body(self) -> bytes:
        return orjson.dumps(
            {
                "subscription": {
                    "eventList": [{"type": "LOCATION_REPORT", "immediateFlag": True}],
                    "eventNotifyUri": self._notify_uri,
                    "notifyCorrelationId": _POLL_CORRELATION,
                    "nfId": self._nrf.instance_id,
                    "anyUE": True,
                    "options": {"trigger": "ONE_TIME"},
                }
            }
        )

    async def _poll_amf(self, amf: Producer, updates: dict[str, UeState]) -> list[EventRecord]:
        url = f"{amf.api_root}/namf-evts/v1/subscriptions"
        request = self._poll_body()
        lock = (
            self._manager.creation_lock(amf.nf_instance_id)
            if self._manager is not None
            else self._locks.setdefault(amf.nf_instance_id, asyncio.Lock())
        )
        async with lock:
            response = await self._nrf.call("AMF", "namf-evts", "POST", url, request)
            if response.status != 201:
                raise CoreUnavailable(
                    f"AMF poll refused: {response.status}", status=response.status
                )
            location = response.headers.get("Location")
            sub_id = answer_subscription_id(response.body)
            # Only free5GC (no Location header) hands out counter ids worth watching (amf v1.4.5
            # processor/event_exposure.go).
            if sub_id and not location:
                self._observe(amf, sub_id)
        with _gc_paused():
            parsed_id, reports_present, changed, subscription = self._diff_answer(
                response.body, request, updates
            )
        if not sub_id and location:
            sub_id = location.rstrip("/").rsplit("/", 1)[-1]
        elif not sub_id:
            sub_id = parsed_id
            self._observe(amf, sub_id)
        if not reports_present:
            # anyUE with zero UEs: no report, and the subscription stays (amf v1.4.5
            # newAmfEventReport).
            await self._delete_leftover(amf, location or f"{url}/{sub_id}")
            return []
        if not changed:
            return []
        events: list[EventRecord] = []
        # In chunks, so a cold start with 100k UEs never holds 100k parsed reports at once.
        for start in range(0, len(changed), _NORMALIZE_CHUNK):
            with _gc_paused():
                reports = [_as_report(item) for item in changed[start : start + _NORMALIZE_CHUNK]]
                body = orjson.dumps(
                    {"subscription": subscription, "subscriptionId": sub_id, "reportList": reports}
                )
                events += normalize_amf_created_subscription(
                    parse_amf_created_subscription(body),
                    ingest_time=self._clock(),
                    nf_instance_id=amf.nf_instance_id,
                ).records
        return events

    def _diff_answer(
        self, answer: bytes, request: bytes, updates: dict[str, UeState]
    ) -> tuple[str, bool, list[Any], Any]:
        scanned = scan_location_reports(answer)
        if scanned is not None:
            sub_id, matches = scanned
            present = bool(matches) or _REPORT_LIST in answer
            # free5GC echoes our request as the subscription (amf v1.4.5 newAmfEventReport).
            return (
                sub_id,
                present,
                self._diff_scanned(matches, updates),
                orjson.loads(request)["subscription"],
            )
        try:
            created = orjson.loads(answer)
        except orjson.JSONDecodeError as exc:
            raise CoreUnavailable(f"AMF poll answer is not JSON: {exc}") from exc
        if not isinstance(created, dict):
            raise CoreUnavailable("AMF poll answer is not an object")
        reports = created.get("reportList") or []
        changed = self._diff(reports, updates)
        return (
            str(created.get("subscriptionId", "")),
            bool(reports),
            changed,
            created.get("subscription"),
        )

    def _diff_scanned(self, matches: list[Any], updates: dict[str, UeState]) -> list[Any]:
        changed: list[tuple[str, Any]] = []
        state = self.state
        segment_keys = self._segment_keys
        for supi_raw, segment, located_raw, stamp_raw in matches:
            key = segment_keys.get(segment)
            if key is None:
                key = self._segment_key(segment)
            supi = supi_raw.decode()
            known = updates.get(supi) or state.get(supi)
            if known is not None and known[0] == key:
                continue
            stamp = sortable_time(located_raw.decode()) if located_raw else ""
            if known is not None and stamp and known[1] and stamp < known[1]:
                continue
            updates[supi] = (key, stamp)
            changed.append((stamp, (supi, segment, located_raw, stamp_raw)))
        changed.sort(key=lambda item: item[0])
        return [item for _, item in changed]

    def _segment_key(self, segment: bytes) -> str:
        if len(self._segment_keys) >= _SEGMENT_CACHE_MAX:
            self._segment_keys.clear()
        key = location_key({"nrLocation": orjson.loads(b"{" + segment + b"}")})
        assert key is not None  # the scanner only matches complete TAI and NCGI
        interned = self._intern(key)
        self._segment_keys[segment] = interned
        return interned

    def _diff(self, reports: list[Any], updates: dict[str, UeState]) -> list[Any]:
        changed: list[tuple[str, Any]] = []
        state = self.state
        for report in reports:
            if not isinstance(report, dict) or report.get("type") != "LOCATION_REPORT":
                continue
            supi = report.get("supi")
            location = report.get("location")
            key = location_key(location)
            if not supi or key is None:
                # No SUPI yet, or "location":{} before the first ULI (amf v1.4.5 newAmfEventReport).
                continue
            known = updates.get(supi) or state.get(supi)
            if known is not None and known[0] == key:
                continue
            stamp = location_time(location)
            if known is not None and stamp and known[1] and stamp < known[1]:
                continue  # older than what we already know
            updates[supi] = (self._intern(key), stamp)
            changed.append((stamp, report))
        changed.sort(key=lambda item: item[0])
        return [report for _, report in changed]

    def _observe(self, amf: Producer, sub_id: str) -> None:
        if self._manager is not None:
            restarted = self._manager.observe_id(amf.nf_instance_id, sub_id)
        elif sub_id.isdigit():
            previous = self._max_ids.get(amf.nf_instance_id)
            self._max_ids[amf.nf_instance_id] = int(sub_id)
            restarted = previous is not None and int(sub_id) <= previous
        else:
            restarted = False
        if restarted:
            # Counter ids restart at 1 with the AMF (amf v1.4.5 processor/event_exposure.go); its
            # NF id changed too.
            log.info("amf_restart_detected", amf=amf.nf_instance_id)
            self._nrf.forget_discovery("AMF")

    async def _delete_leftover(self, amf: Producer, resource: str) -> None:
        response = await self._nrf.call("AMF", "namf-evts", "DELETE", resource)
        # free5GC answers 200 null, the spec 204 (amf v1.4.5 processor/event_exposure.go).
        if response.status not in (200, 204, 404):
            raise CoreUnavailable(
                f"AMF refused to delete poll leftover: {response.status}", status=response.status
            )

    async def _poll_locations(
        self, amf: Producer, updates: dict[str, UeState]
    ) -> list[EventRecord]:
        semaphore = asyncio.Semaphore(_LOC_CONCURRENCY)
        body = orjson.dumps({"req5gsLoc": True, "reqCurrentLoc": True, "reqRatType": True})

        async def one(supi: str) -> tuple[str, bytes] | None:
            async with semaphore:
                url = f"{amf.api_root}/namf-loc/v1/{supi}/provide-loc-info"
                response = await self._nrf.call("AMF", "namf-loc", "POST", url, body)
            if response.status == 404:
                # CONTEXT_NOT_FOUND: not (or no longer) in this AMF (amf v1.4.5 location_info.go).
                return None
            if response.status != 200:
                raise CoreUnavailable(
                    f"provide-loc-info: {response.status}", status=response.status
                )
            return supi, response.body

        answers = await asyncio.gather(*(one(supi) for supi in list(self.state)))
        events: list[EventRecord] = []
        pending: list[tuple[str, str, bytes]] = []
        for answer in answers:
            if answer is None:
                continue
            supi, raw = answer
            location = orjson.loads(raw).get("location")
            key = location_key(location)
            known = updates.get(supi) or self.state.get(supi)
            if key is None or (known is not None and known[0] == key):
                continue
            stamp = location_time(location)
            if known is not None and stamp and known[1] and stamp < known[1]:
                continue
            updates[supi] = (self._intern(key), stamp)
            pending.append((stamp, supi, raw))
        for _, supi, raw in sorted(pending, key=lambda item: item[0]):
            events += normalize_provide_loc_info(
                parse_provide_loc_info(raw),
                ue_context_id=supi,
                ingest_time=self._clock(),
                nf_instance_id=amf.nf_instance_id,
            ).records
        if pending:
            log.info("provide_loc_info_changes", count=len(pending))
        return events
