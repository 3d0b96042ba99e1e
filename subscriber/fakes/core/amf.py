"""The fake AMF: Namf_EventExposure and Namf_Location, as free5GC implements them.

Two modes:

* ``free5gc`` reproduces free5gc/amf v1.4.5 (free5GC v4.2.3): no Location header, decimal counter
  ids restarting at 1, DELETE answering ``200 null``, PATCH in free5GC's own body dialect, no
  notification ever sent, expiry never enforced.
* ``notify`` is a spec-conformant AMF (TS 29.518): Location header, JSON Patch, DELETE 204, expiry
  enforced, and LOCATION_REPORT notifications POSTed to ``eventNotifyUri`` when a UE moves.

UE contexts are kept compact (one object with three slots, the location already serialized) so one
fake AMF holds 100k UEs and answers an anyUE poll for all of them quickly.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import orjson
import structlog
from aiohttp import web

from subscriber.fakes.core.wire import (
    SERVICE_NAMES,
    ClockNs,
    TokenVerifier,
    check_bearer,
    go_time,
    json_response,
    malformed,
    problem,
    raw_json_response,
    read_json,
)

log = structlog.get_logger()

AmfMode = Literal["free5gc", "notify"]
PostJson = Callable[[str, bytes], Awaitable[int]]
"""Sends one notification body to a URI and returns the HTTP status."""

_HEX_TAC = re.compile(r"[0-9a-fA-F]{6}")
_HEX_NR_CELL = re.compile(r"[0-9a-fA-F]{9}")
_MAX_INT32 = 2**31 - 1
_NS = 1_000_000_000

# AmfEventSubscription fields in Go struct order (openapi models/model_amf_event_subscription.go).
# eventNotifyUri, notifyCorrelationId and nfId have no omitempty: echoed as "" when absent (amf
# v1.4.5 processor/event_exposure.go).
_ECHO_ALWAYS = ("eventNotifyUri", "notifyCorrelationId", "nfId")
_ECHO_ORDER = (
    "eventList",
    "eventNotifyUri",
    "notifyCorrelationId",
    "nfId",
    "subsChangeNotifyUri",
    "subsChangeNotifyCorrelationId",
    "supi",
    "groupId",
    "excludeSupiList",
    "excludeGpsiList",
    "includeSupiList",
    "includeGpsiList",
    "gpsi",
    "pei",
    "anyUE",
    "options",
    "sourceNfType",
)


class UeContext:
    """One UE as the AMF knows it: SUPI, last location (serialized) and when it was received."""

    __slots__ = ("located_ns", "location_json", "supi")

    def __init__(self, supi: str, location_json: bytes, located_ns: int) -> None:
        self.supi = supi
        self.location_json = location_json
        self.located_ns = located_ns


@dataclass(slots=True)
class _Subscription:
    sub_id: str
    echo: dict[str, Any]
    supis: frozenset[str] | None  # None: every UE, now and later (spec anyUE, notify mode)
    created_ns: int
    expiry_ns: int | None
    remain_reports: int | None
    pending: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def event_types(self) -> list[str]:
        return [str(e.get("type")) for e in self.echo.get("eventList") or []]


def _echo(subscription: dict[str, Any]) -> dict[str, Any]:
    echo = {k: subscription[k] for k in _ECHO_ORDER if subscription.get(k) not in (None, False)}
    for key in _ECHO_ALWAYS:
        echo.setdefault(key, "")
    return {k: echo[k] for k in _ECHO_ORDER if k in echo}


def _parse_time_ns(text: str) -> int | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return int(moment.timestamp()) * _NS + moment.microsecond * 1000


class FakeAmf:
    """An in-memory AMF holding UE contexts and event subscriptions.

    Args:
        signer: verifies the NRF's tokens.
        oauth: whether routes require a token (``OAuth2Required`` from the NRF, nrf v1.4.5
        processor/access_token.go).
        mode: ``free5gc`` or ``notify`` (see the module docstring).
        clock_ns: wall clock.
        post_json: sends notifications (notify mode only).
        mcc, mnc: the PLMN of every UE location.
    """

    def __init__(
        self,
        *,
        signer: TokenVerifier,
        oauth: bool,
        mode: AmfMode,
        clock_ns: ClockNs,
        post_json: PostJson | None = None,
        mcc: str = "208",
        mnc: str = "93",
    ) -> None:
        self.signer = signer
        self.oauth = oauth
        self.mode: AmfMode = mode
        self._clock_ns = clock_ns
        self._post_json = post_json
        self._plmn = orjson.dumps({"mcc": mcc, "mnc": mnc})
        # A new NF instance id at every start: amf internal/context/context.go InitAmfContext
        # draws uuid.New() (free5GC does not persist it).
        self.instance_id = str(uuid.uuid4())
        self.ues: dict[str, UeContext] = {}
        self.subscriptions: dict[str, _Subscription] = {}
        self._next_id = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.notifications_sent = 0
        self.notification_failures = 0
        self.subscriptions_created = 0
        """Creates answered 201 since start, polls included (tests wait on it)."""

    # -- UE contexts ------------------------------------------------------------------------

    def location_json(self, tac: str, nr_cell_id: str, located_ns: int) -> bytes:
        """Serialize a UserLocation as the AMF does: lowercase hex, Go field order and time.

        TAC is ``hex.EncodeToString`` (6 lowercase digits) and nrCellId ``BitStringToHex``
        (9 lowercase digits); ueLocationTimestamp is the AMF's receive time (amf v1.4.5
        context/ran_ue.go).
        """
        if not _HEX_TAC.fullmatch(tac) or not _HEX_NR_CELL.fullmatch(nr_cell_id):
            raise ValueError("tac must be 6 hex digits and nrCellId 9 hex digits")
        plmn = self._plmn
        return b"".join(
            (
                b'{"nrLocation":{"tai":{"plmnId":',
                plmn,
                b',"tac":"',
                tac.lower().encode(),
                b'"},"ncgi":{"plmnId":',
                plmn,
                b',"nrCellId":"',
                nr_cell_id.lower().encode(),
                b'"},"ueLocationTimestamp":"',
                go_time(located_ns).encode(),
                b'"}}',
            )
        )

    def add_ue(self, supi: str, tac: str | None = None, nr_cell_id: str | None = None) -> None:
        """Register a UE; with no location it serializes as ``"location":{}`` (amf v1.4.5)."""
        now = self._clock_ns()
        if tac is None or nr_cell_id is None:
            self.ues[supi] = UeContext(supi, b"{}", now)
        else:
            self.ues[supi] = UeContext(supi, self.location_json(tac, nr_cell_id, now), now)

    def add_ues(
        self, count: int, *, first_imsi: int = 208930000000001, tac: str = "000001", cells: int = 16
    ) -> list[str]:
        """Register ``count`` UEs with consecutive IMSIs, spread over ``cells`` cells of one TAC."""
        now = self._clock_ns()
        by_cell = [
            self.location_json(tac, f"{index + 1:09x}", now) for index in range(max(cells, 1))
        ]
        supis = [f"imsi-{first_imsi + n:015d}" for n in range(count)]
        for n, supi in enumerate(supis):
            self.ues[supi] = UeContext(supi, by_cell[n % len(by_cell)], now)
        return supis

    def remove_ue(self, supi: str) -> bool:
        """Deregister a UE; return whether it was present."""
        return self.ues.pop(supi, None) is not None

    def move(self, supi: str, tac: str, nr_cell_id: str) -> None:
        """Record a new ULI for a UE, as RanUe.UpdateLocation does (amf v1.4.5 context/ran_ue.go).

        In free5gc mode nothing else happens: the AMF never notifies (free5gc/amf#78,
        free5gc/free5gc#396). In notify mode, matching LOCATION_REPORT subscriptions are notified.

        Raises:
            KeyError: the UE is not registered.
        """
        ue = self.ues[supi]
        now = self._clock_ns()
        ue.location_json = self.location_json(tac, nr_cell_id, now)
        ue.located_ns = now
        if self.mode == "notify":
            self._notify_location(ue, now)

    def restart(self) -> None:
        """Restart: subscriptions are lost and the id counter starts again at 1.

        Subscriptions live only in memory (AMFContext.EventSubscriptions sync.Map) and ids come
        from EventSubscriptionIDGenerator (amf v1.4.5 processor/event_exposure.go). UEs register
        again at once.
        """
        for task in self._tasks:
            task.cancel()
        self.subscriptions.clear()
        self._next_id = 0
        self.instance_id = str(uuid.uuid4())

    def profile(self, api_prefix: str, port: int) -> dict[str, Any]:
        """The NFProfile this AMF registers with the NRF (amf v1.4.5 context InitNFService)."""
        services = [
            {
                "serviceInstanceId": str(index),
                "serviceName": name,
                "versions": [{"apiVersionInUri": "v1", "apiFullVersion": "1.0.0"}],
                "scheme": "http",
                "nfServiceStatus": "REGISTERED",
                "apiPrefix": api_prefix,
                "ipEndPoints": [{"ipv4Address": "127.0.0.1", "transport": "TCP", "port": port}],
            }
            for index, name in enumerate(SERVICE_NAMES["AMF"])
        ]
        return {
            "nfInstanceId": self.instance_id,
            "nfType": "AMF",
            "nfStatus": "REGISTERED",
            "ipv4Addresses": ["127.0.0.1"],
            "nfServices": services,
        }

    async def drain(self) -> None:
        """Wait until every notification in flight has been answered (notify mode)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- HTTP -------------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        """The AMF's HTTP routes."""
        return [
            web.get("/namf-evts/v1/", self._hello),
            web.post("/namf-evts/v1/subscriptions", self._create),
            web.patch("/namf-evts/v1/subscriptions/{sub_id}", self._modify),
            web.delete("/namf-evts/v1/subscriptions/{sub_id}", self._delete),
            web.post("/namf-loc/v1/{ue_context_id}/provide-loc-info", self._provide_loc_info),
        ]

    async def _hello(self, request: web.Request) -> web.Response:
        # GET /namf-evts/v1/ answers "Hello World!" (amf v1.4.5 internal/sbi/api_eventexposure.go).
        return json_response("Hello World!")

    def _purge_expired(self, now: int) -> None:
        # free5GC stores expiry but never enforces it (amf v1.4.5 processor/event_exposure.go); the
        # spec AMF does.
        if self.mode != "notify":
            return
        for sub_id in [
            s.sub_id
            for s in self.subscriptions.values()
            if s.expiry_ns is not None and s.expiry_ns <= now
        ]:
            del self.subscriptions[sub_id]

    async def _create(self, request: web.Request) -> web.Response:
        refused = check_bearer(request, self.signer, "namf-evts", enabled=self.oauth)
        if refused is not None:
            return refused
        body, error = await read_json(request)
        if error is not None:
            return error
        subscription = body.get("subscription") if isinstance(body, dict) else None
        if not isinstance(subscription, dict) or not subscription.get("eventList"):
            # Missing subscription or eventList (amf v1.4.5 processor/event_exposure.go).
            return problem(400, "SUBSCRIPTION_EMPTY")
        now = self._clock_ns()
        self._purge_expired(now)
        targets: Iterable[UeContext]
        if subscription.get("anyUE"):
            # anyUE covers the UEs in UePool at this moment only; nothing attaches UEs that
            # register later (amf v1.4.5 processor/event_exposure.go). The spec AMF covers later
            # UEs too.
            targets = list(self.ues.values())
            supis: frozenset[str] | None = (
                None if self.mode == "notify" else frozenset(u.supi for u in targets)
            )
        elif subscription.get("groupId"):
            targets, supis = [], frozenset()  # the fake's UEs belong to no group
        else:
            ue = self.ues.get(str(subscription.get("supi", "")))
            if ue is None:
                # Gpsi/pei-only targeting ends here too: AmfUeFindBySupi("") (amf v1.4.5
                # processor/event_exposure.go).
                return problem(403, "UE_NOT_SERVED_BY_AMF")
            targets, supis = [ue], frozenset((ue.supi,))
        # EventSubscriptionIDGenerator: decimal counter 1..MaxInt32, never freed (amf v1.4.5
        # processor/event_exposure.go).
        self._next_id = self._next_id % _MAX_INT32 + 1
        self.subscriptions_created += 1
        sub_id = str(self._next_id)
        options = subscription.get("options") or {}
        expiry = options.get("expiry") if isinstance(options, dict) else None
        sub = _Subscription(
            sub_id=sub_id,
            echo=_echo(subscription),
            supis=supis,
            created_ns=now,
            expiry_ns=_parse_time_ns(expiry) if isinstance(expiry, str) else None,
            remain_reports=options.get("maxReports") if isinstance(options, dict) else None,
        )
        reports, inactive = self._immediate_reports(sub, options, targets, now)
        # An inactive (ONE_TIME) report deletes the subscription at once; with anyUE and zero
        # UEs there is no report and the subscription stays (amf v1.4.5 newAmfEventReport).
        if not inactive:
            self.subscriptions[sub_id] = sub
        parts = [b'{"subscription":', orjson.dumps(sub.echo), b',"subscriptionId":"']
        parts += [sub_id.encode(), b'"']
        if reports:
            # reportList has omitempty: absent when no UE was targeted (amf v1.4.5
            # processor/event_exposure.go).
            parts += [b',"reportList":[', b",".join(reports), b"]"]
        parts.append(b"}")
        response = raw_json_response(b"".join(parts), 201)
        if self.mode == "notify":
            # TS 29.518 requires the Location header; free5GC never sets it (amf v1.4.5
            # processor/event_exposure.go).
            response.headers["Location"] = (
                f"{request.url.origin()}/namf-evts/v1/subscriptions/{sub_id}"
            )
        return response

    def _state(self, options: dict[str, Any], sub: _Subscription, now: int) -> tuple[bytes, bool]:
        # newAmfEventReport: no options -> active; ONE_TIME -> inactive; CONTINUOUS active while
        # remainReports > 0; remainDuration from the stored expiry (amf v1.4.5 newAmfEventReport).
        trigger = options.get("trigger")
        state: dict[str, Any] = {"active": trigger != "ONE_TIME"}
        if trigger == "CONTINUOUS" and sub.remain_reports is not None:
            state["remainReports"] = sub.remain_reports
            state["active"] = sub.remain_reports > 0
        if sub.expiry_ns is not None:
            state["remainDuration"] = max(0, (sub.expiry_ns - now) // _NS)
        return orjson.dumps(state), bool(state["active"])

    def _immediate_reports(
        self,
        sub: _Subscription,
        options: dict[str, Any],
        targets: Iterable[UeContext],
        now: int,
    ) -> tuple[list[bytes], bool]:
        state, active = self._state(options, sub, now)
        # timeStamp is the subscription's creation time, not the event's (amf v1.4.5
        # newAmfEventReport).
        stamp = go_time(sub.created_ns).encode()
        any_ue = b',"anyUe":true' if sub.echo.get("anyUE") else b""
        reports: list[bytes] = []
        targets = list(targets)
        for event in sub.echo["eventList"]:
            if not isinstance(event, dict) or not event.get("immediateFlag"):
                continue
            event_type = str(event.get("type", ""))
            head = b"".join(
                (b'{"type":', orjson.dumps(event_type), b',"state":', state, b',"timeStamp":"')
            )
            head += stamp + b'"' + any_ue + b',"supi":"'
            if event_type == "LOCATION_REPORT":
                reports.extend(
                    b"".join((head, ue.supi.encode(), b'","location":', ue.location_json, b"}"))
                    for ue in targets
                )
            else:
                extra = _event_fields(event_type)
                reports.extend(
                    b"".join((head, ue.supi.encode(), b'"', extra, b"}")) for ue in targets
                )
        return reports, bool(reports) and not active

    async def _modify(self, request: web.Request) -> web.Response:
        refused = check_bearer(request, self.signer, "namf-evts", enabled=self.oauth)
        if refused is not None:
            return refused
        body, error = await read_json(request)
        if error is not None:
            return error
        self._purge_expired(self._clock_ns())
        sub = self.subscriptions.get(request.match_info["sub_id"])
        if self.mode == "free5gc":
            items = _free5gc_patch_items(body)
            if items is None:
                # A spec JSON-Patch array does not decode into ModifySubscriptionRequest (openapi
                # ModifySubscriptionRequest).
                return malformed("json: cannot unmarshal array into Go value")
        else:
            if not isinstance(body, list) or not body:
                return malformed("body must be a JSON Patch array")
            items = [("subscriptionItem", item) for item in body]
        if sub is None:
            return problem(404, "SUBSCRIPTION_NOT_FOUND")
        # free5GC processes only item [0] (openapi ModifySubscriptionRequest); the spec AMF applies
        # them all.
        for kind, item in items[:1] if self.mode == "free5gc" else items:
            refusal = self._apply_patch(sub, kind, item)
            if refusal is not None:
                return refusal
        return json_response({"subscription": sub.echo})

    def _apply_patch(self, sub: _Subscription, kind: str, item: Any) -> web.Response | None:
        if not isinstance(item, dict):
            return malformed("patch item must be an object")
        path = str(item.get("path", ""))
        value = item.get("value")
        # For optionItem the path is ignored: any path sets the expiry (openapi
        # ModifySubscriptionRequest).
        if kind == "optionItem" or path in ("/options/expiry", "/expiry"):
            moment = _parse_time_ns(value) if isinstance(value, str) else None
            if moment is None:
                return problem(400, "MANDATORY_IE_INCORRECT", "expiry must be a date-time")
            sub.expiry_ns = moment
            options = dict(sub.echo.get("options") or {})
            options["expiry"] = value
            sub.echo["options"] = options
            return None
        events: list[Any] = list(sub.echo.get("eventList") or [])
        parts = path.strip("/").split("/")
        # Bounds checks on /eventList/{i|-} (added for free5gc/free5gc#774).
        if len(parts) != 2 or parts[0] != "eventList":
            return problem(400, "MANDATORY_IE_INCORRECT", "unsupported path")
        index = len(events) if parts[1] == "-" else int(parts[1]) if parts[1].isdigit() else -1
        op = item.get("op")
        if op == "add" and 0 <= index <= len(events):
            events.insert(index, value)
        elif op in ("replace", "remove") and 0 <= index < len(events):
            if op == "replace":
                events[index] = value
            else:
                del events[index]
        else:
            return problem(400, "MANDATORY_IE_INCORRECT", "unsupported op or index")
        sub.echo["eventList"] = events
        return None

    async def _delete(self, request: web.Request) -> web.Response:
        refused = check_bearer(request, self.signer, "namf-evts", enabled=self.oauth)
        if refused is not None:
            return refused
        self._purge_expired(self._clock_ns())
        if self.subscriptions.pop(request.match_info["sub_id"], None) is None:
            return problem(404, "SUBSCRIPTION_NOT_FOUND")
        if self.mode == "free5gc":
            # c.JSON(http.StatusOK, nil): 200 with body "null" (amf v1.4.5
            # processor/event_exposure.go).
            return raw_json_response(b"null", 200)
        return web.Response(status=204)

    async def _provide_loc_info(self, request: web.Request) -> web.Response:
        refused = check_bearer(request, self.signer, "namf-loc", enabled=self.oauth)
        if refused is not None:
            return refused
        body, error = await read_json(request)
        if error is not None:
            return error
        # AmfUeFindByUeContextID; the fake knows UEs by SUPI only (amf v1.4.5
        # processor/location_info.go).
        ue = self.ues.get(request.match_info["ue_context_id"])
        if ue is None:
            return problem(404, "CONTEXT_NOT_FOUND")
        # processor/location_info.go returns the cached location with currentLoc:true; it never
        # runs NGAP Location Reporting Control (amf v1.4.5 processor/location_info.go).
        parts = [b'{"currentLoc":true,"location":', ue.location_json, b',"ratType":"NR"']
        if isinstance(body, dict) and body.get("reqTimeZone"):
            parts.append(b',"timezone":"+00:00"')
        parts.append(b"}")
        return raw_json_response(b"".join(parts))

    # -- notify mode ------------------------------------------------------------------------

    def _notify_location(self, ue: UeContext, now: int) -> None:
        self._purge_expired(now)
        for sub in list(self.subscriptions.values()):
            if "LOCATION_REPORT" not in sub.event_types:
                continue
            if sub.supis is not None and ue.supi not in sub.supis:
                continue
            uri = str(sub.echo.get("eventNotifyUri") or "")
            if not uri or self._post_json is None:
                continue
            if sub.remain_reports is not None:
                sub.remain_reports -= 1
                if sub.remain_reports <= 0:
                    self.subscriptions.pop(sub.sub_id, None)
            body = b"".join(
                (
                    b'{"notifyCorrelationId":',
                    orjson.dumps(sub.echo.get("notifyCorrelationId", "")),
                    b',"reportList":[{"type":"LOCATION_REPORT","state":{"active":true},'
                    b'"timeStamp":"',
                    go_time(now).encode(),
                    b'","supi":"',
                    ue.supi.encode(),
                    b'","location":',
                    ue.location_json,
                    b"}]}",
                )
            )
            task = asyncio.get_running_loop().create_task(self._send(uri, body))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, uri: str, body: bytes) -> None:
        assert self._post_json is not None
        try:
            status = await self._post_json(uri, body)
        except Exception as exc:  # a consumer that fails must not stop the AMF
            self.notification_failures += 1
            log.warning("fake_amf_notify_failed", error=type(exc).__name__)
            return
        if status // 100 == 2:
            self.notifications_sent += 1
        else:
            self.notification_failures += 1


def _event_fields(event_type: str) -> bytes:
    # The event-specific fields newAmfEventReport fills for the non-location types (amf v1.4.5
    # newAmfEventReport).
    if event_type == "REGISTRATION_STATE_REPORT":
        return b',"rmInfoList":[{"rmState":"REGISTERED","accessType":"3GPP_ACCESS"}]'
    if event_type == "CONNECTIVITY_STATE_REPORT":
        return b',"cmInfoList":[{"cmState":"CONNECTED","accessType":"3GPP_ACCESS"}]'
    if event_type == "ACCESS_TYPE_REPORT":
        return b',"accessTypeList":["3GPP_ACCESS"]'
    if event_type == "TIMEZONE_REPORT":
        return b',"timezone":"+00:00"'
    return b""


def _free5gc_patch_items(body: Any) -> list[tuple[str, Any]] | None:
    # models.ModifySubscriptionRequest has no json tags; encoding/json matches the keys
    # SubscriptionItem/OptionItem case-insensitively (openapi ModifySubscriptionRequest).
    if not isinstance(body, dict):
        return None
    items: list[tuple[str, Any]] = []
    for key, value in body.items():
        lowered = key.lower()
        if lowered in ("subscriptionitem", "optionitem") and isinstance(value, list):
            kind = "optionItem" if lowered == "optionitem" else "subscriptionItem"
            items.extend((kind, item) for item in value)
    return items
