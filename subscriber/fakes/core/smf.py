"""The fake SMF: an event-exposure API that is not there, and the UP_PATH_CH notifier.

free5GC's SMF answers 501 to every Nsmf_EventExposure route and only ever sends UP_PATH_CH, to a
URI that arrived through AF traffic influence (free5gc/smf v1.4.4). In ``notify`` mode the fake also
offers the spec's subscription API (TS 29.508) so a spec-conformant consumer can be tested.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import orjson
from aiohttp import web

from subscriber.fakes.core.amf import AmfMode, PostJson
from subscriber.fakes.core.wire import SERVICE_NAMES, json_response, problem, read_json

if TYPE_CHECKING:
    from subscriber.fakes.core.pcf import PduSession, TrafficControl

ChangeType = Literal["EARLY", "LATE", "EARLY_LATE"]


def _go_route(route: dict[str, Any]) -> dict[str, Any]:
    """A RouteToLocation as Go's encoding/json writes it (openapi model_route_to_location.go):
    ``dnai`` always, ``routeInfo`` and ``routeProfId`` only when set, and in the routeInfo
    ``portNumber`` always (no omitempty) after the addresses."""
    out: dict[str, Any] = {"dnai": str(route.get("dnai") or "")}
    info = route.get("routeInfo")
    if isinstance(info, dict):
        go_info = {k: info[k] for k in ("ipv4Addr", "ipv6Addr") if info.get(k)}
        go_info["portNumber"] = int(info.get("portNumber") or 0)
        out["routeInfo"] = go_info
    if route.get("routeProfId"):
        out["routeProfId"] = route["routeProfId"]
    return out


def path_change_body(
    notif_id: str,
    change_type: Literal["EARLY", "LATE"],
    source: dict[str, Any],
    target: dict[str, Any],
) -> bytes:
    """One UP_PATH_CH notification exactly as free5GC serializes it (smf v1.4.4 sm_context.go).

    ``timeStamp`` is never set, so it is ``null``; no ``supi``; ``sourceDnai``/``targetDnai``
    only when they differ and are not the default route ``""`` (omitempty); the routes in
    full, the default one as ``{"dnai": ""}`` (smf v1.4.4 internal/context/sm_context.go
    BuildUpPathChgEventExposureNotification; openapi model_smf_event_exposure_event_notification.go
    for the field order).
    """
    src, tgt = _go_route(source), _go_route(target)
    event: dict[str, Any] = {"event": "UP_PATH_CH", "timeStamp": None}
    if src["dnai"] != tgt["dnai"]:
        if src["dnai"]:
            event["sourceDnai"] = src["dnai"]
        if tgt["dnai"]:
            event["targetDnai"] = tgt["dnai"]
    event["dnaiChgType"] = change_type
    event["sourceTraRouting"] = src
    event["targetTraRouting"] = tgt
    return orjson.dumps({"notifId": notif_id, "eventNotifs": [event]})


def up_path_change_body(
    notif_id: str,
    change_type: Literal["EARLY", "LATE"],
    *,
    source_dnai: str,
    target_dnai: str,
    target_ipv4: str,
) -> bytes:
    """:func:`path_change_body` between two DNAIs, the target's route given by an address."""
    target: dict[str, Any] = {"dnai": target_dnai}
    if target_ipv4:
        target["routeInfo"] = {"ipv4Addr": target_ipv4, "portNumber": 0}
    return path_change_body(notif_id, change_type, {"dnai": source_dnai}, target)


@dataclass
class PathFaults:
    """What the fake SMF does wrong on purpose, for tests (one-shot counters)."""

    drop_late: int = 0
    """The next this-many LATE notifications are never sent."""
    reroute_to: str | None = None
    """The next path change goes to this DNAI instead of the requested one."""


UserPlane = Callable[[str, str, str], None]
"""Tells the user plane: (UE IPv4, afAppId, DNAI) now routes there (``""``: the default route)."""


class FakeSmf:
    """The SMF side of the fake core.

    Args:
        mode: ``free5gc`` (subscriptions answer 501) or ``notify`` (spec subscriptions work).
        post_json: sends notifications over h2c prior knowledge, without Authorization.
    """

    def __init__(
        self, *, mode: AmfMode, post_json: PostJson | None, user_plane: UserPlane | None = None
    ) -> None:
        self.mode: AmfMode = mode
        self._post_json = post_json
        self._user_plane = user_plane
        self.faults = PathFaults()
        self.path_changes: list[tuple[str, str, str]] = []
        self.instance_id = str(uuid.uuid4())
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self._next_id = 0
        self.sent: list[tuple[str, int]] = []

    def routes(self) -> list[web.RouteDef]:
        """The SMF's HTTP routes."""
        # Note the underscore: SmfEventExposureResUriPrefix = "/nsmf_event-exposure/v1", and
        # every route answers c.JSON(501, gin.H{}) since smf v1.2.4 (smf v1.4.4
        # sbi/api_eventexposure.go).
        routes = [
            web.post("/nsmf_event-exposure/v1/subscriptions", self._not_implemented),
            web.route("*", "/nsmf_event-exposure/v1/subscriptions/{sub_id}", self._not_implemented),
        ]
        if self.mode == "notify":
            routes += [
                web.post("/nsmf-event-exposure/v1/subscriptions", self._create),
                web.put("/nsmf-event-exposure/v1/subscriptions/{sub_id}", self._replace),
                web.delete("/nsmf-event-exposure/v1/subscriptions/{sub_id}", self._delete),
            ]
        return routes

    async def _not_implemented(self, request: web.Request) -> web.Response:
        return json_response({}, 501)

    async def _create(self, request: web.Request) -> web.Response:
        body, error = await read_json(request)
        if error is not None:
            return error
        if not isinstance(body, dict) or not body.get("notifUri") or not body.get("eventSubs"):
            return problem(400, "MANDATORY_IE_MISSING")
        self._next_id += 1
        sub_id = str(self._next_id)
        self.subscriptions[sub_id] = body
        response = json_response({**body, "subId": sub_id}, 201)
        response.headers["Location"] = (
            f"{request.url.origin()}/nsmf-event-exposure/v1/subscriptions/{sub_id}"
        )
        return response

    async def _replace(self, request: web.Request) -> web.Response:
        # TS 29.508 modifies a subscription by replacing it (PUT), answering 200 with the body.
        sub_id = request.match_info["sub_id"]
        body, error = await read_json(request)
        if error is not None:
            return error
        if sub_id not in self.subscriptions:
            return problem(404, "SUBSCRIPTION_NOT_FOUND")
        if not isinstance(body, dict) or not body.get("notifUri") or not body.get("eventSubs"):
            return problem(400, "MANDATORY_IE_MISSING")
        self.subscriptions[sub_id] = body
        return json_response({**body, "subId": sub_id})

    async def _delete(self, request: web.Request) -> web.Response:
        if self.subscriptions.pop(request.match_info["sub_id"], None) is None:
            return problem(404, "SUBSCRIPTION_NOT_FOUND")
        return web.Response(status=204)

    def restart(self) -> None:
        """Forget every subscription and take a new NF instance id, as the AMF does."""
        self.subscriptions.clear()
        self._next_id = 0
        self.instance_id = str(uuid.uuid4())

    def profile(self, api_prefix: str, port: int) -> dict[str, Any]:
        """The NFProfile this SMF registers (smf v1.4.4 internal/context InitNFService)."""
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
            for index, name in enumerate(SERVICE_NAMES["SMF"])
        ]
        return {
            "nfInstanceId": self.instance_id,
            "nfType": "SMF",
            "nfStatus": "REGISTERED",
            "ipv4Addresses": ["127.0.0.1"],
            "nfServices": services,
        }

    async def send_up_path_change(
        self,
        uri: str,
        notif_id: str,
        *,
        source_dnai: str = "",
        target_dnai: str,
        target_ipv4: str = "",
        change_type: ChangeType = "EARLY_LATE",
        concurrent: bool = False,
    ) -> list[int]:
        """POST UP_PATH_CH to ``uri``; EARLY_LATE gives two separate posts, EARLY then LATE.

        free5GC sends each from its own goroutine (``go notifCb``) with no retry and no token
        (smf v1.4.4 internal/sbi/processor/notifier.go): with ``concurrent`` the two
        posts race as they do there; otherwise EARLY is answered before LATE is sent.

        Returns:
            The HTTP status of each post (0 when it failed to connect).
        """
        if self._post_json is None:
            raise RuntimeError("the fake SMF has no HTTP client")
        kinds: list[Literal["EARLY", "LATE"]] = (
            ["EARLY", "LATE"] if change_type == "EARLY_LATE" else [change_type]
        )
        bodies = [
            up_path_change_body(
                notif_id,
                kind,
                source_dnai=source_dnai,
                target_dnai=target_dnai,
                target_ipv4=target_ipv4,
            )
            for kind in kinds
        ]
        if concurrent:
            statuses = list(await asyncio.gather(*(self._post(uri, b) for b in bodies)))
        else:
            statuses = [await self._post(uri, b) for b in bodies]
        return statuses

    async def _post(self, uri: str, body: bytes) -> int:
        assert self._post_json is not None
        try:
            status = await self._post_json(uri, body)
        except Exception:  # fire-and-forget in free5GC: errors are only logged
            status = 0
        self.sent.append((uri, status))
        return status

    async def change_path(
        self,
        session: PduSession,
        af_app_id: str,
        old: TrafficControl | None,
        new: TrafficControl | None,
    ) -> None:
        """Apply a PCC rule change to the user plane, with EARLY and LATE around it.

        As free5GC does it (smf v1.4.4 internal/context/sm_context_policy.go
        checkUpPathChangeEvt, internal/sbi/processor/notifier.go HandleSMPolicyUpdateNotify):
        the first route of each side, the default route ``{"dnai": ""}`` for a side without
        traffic-control data; the target's ``upPathChgSub`` (the source's when the rule goes);
        nothing to notify when the routes are equal or there is no notification URI; EARLY, the
        user-plane update, then LATE, each notification fire-and-forget so they may arrive in
        either order.
        """
        src = old.routes[0] if old is not None and old.routes else {"dnai": ""}
        tgt = new.routes[0] if new is not None and new.routes else {"dnai": ""}
        if self.faults.reroute_to is not None:
            tgt, self.faults.reroute_to = {"dnai": self.faults.reroute_to}, None
        sub = new.up_path_chg_sub if new is not None else (old.up_path_chg_sub if old else None)
        kinds: list[Literal["EARLY", "LATE"]] = []
        uri = str((sub or {}).get("notificationUri") or "")
        if _go_route(src) != _go_route(tgt) and uri:
            change = str((sub or {}).get("dnaiChgType") or "")
            kinds = [k for k in ("EARLY", "LATE") if k in change]
        notif_id = str((sub or {}).get("notifCorreId") or "")
        pending = []
        if "EARLY" in kinds:
            pending.append(self._fire(uri, path_change_body(notif_id, "EARLY", src, tgt)))
        self.path_changes.append((session.ipv4, af_app_id, str(tgt.get("dnai") or "")))
        if self._user_plane is not None:
            self._user_plane(session.ipv4, af_app_id, str(tgt.get("dnai") or ""))
        if "LATE" in kinds:
            if self.faults.drop_late > 0:
                self.faults.drop_late -= 1
            else:
                pending.append(self._fire(uri, path_change_body(notif_id, "LATE", src, tgt)))
        await asyncio.gather(*pending, return_exceptions=True)

    def _fire(self, uri: str, body: bytes) -> asyncio.Task[int]:
        # ``go notifCb(...)``: one goroutine per notification, no retry.
        return asyncio.get_running_loop().create_task(self._post(uri, body))

    def spec_targets(self) -> list[tuple[str, str]]:
        """(notifUri, notifId) of every spec subscription to UP_PATH_CH (notify mode)."""
        return [
            (str(body["notifUri"]), str(body.get("notifId", sub_id)))
            for sub_id, body in self.subscriptions.items()
            if any(e.get("event") == "UP_PATH_CH" for e in body.get("eventSubs") or [])
        ]
