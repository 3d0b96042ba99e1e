"""The fake NEF's traffic-influence API (TS 29.522) and its SMF callback, as free5GC has them.

free5gc/nef, newest revision (``internal/sbi/processor/ti.go``, ``callback.go``,
``internal/sbi/server.go``, ``internal/context/af_*.go``; docs/free5gc.md, "Traffic influence"):

* ``{apiRoot}/3gpp-traffic-influence/v1/{afId}/subscriptions[/{subId}]``. A create needs
  ``notificationDestination`` (a URI with scheme and host), ``afAppId`` (or traffic filters), a
  UE and ``trafficRoutes``; else 400 "Malformed request syntax". A body that is not JSON-typed is
  answered 500 with a 400 ProblemDetails inside (api_ti.go ``checkContentTypeIsJSON``).
* A single-UE request becomes a PCF app session (the UE's IPv4 only: the GPSI is not passed on),
  its ``upPathChgSub`` pointing at the NEF's own ``/nnef-callback/v1/notification/smf`` with the
  NEF's correlation id, a global counter; the PCF's refusals come back unchanged. Any-UE and
  group requests go to the UDR; the fake keeps them and routes nothing.
* Ids: a per-AF counter, taken even when the PCF refuses. 201 with ``Location`` and the request
  echoed with ``self``; GET answers the stored request (``null`` for an AF with no subscription
  left); PUT reposts the app session and stores the new request (without ``self``); PATCH sends
  the PCF routes without ``spVal`` (refused 400) and overwrites the patchable fields; DELETE 204.
* From v4.2.2 the API wants a bearer token with scope ``3gpp-traffic-influence`` (``tokens``),
  and the callback one with scope ``nnef-callback`` (``callback_tokens``), which the SMF, sending
  with ``context.Background()``, never has: with both on, as v4.2.3 with OAuth has them, no path
  change ever reaches the AF. The fake checks the callback only when asked to.
* The callback finds the subscription by ``notifId`` (404 otherwise) and forwards the SMF's body
  to ``notificationDestination`` with Go's default client (HTTP/1.1 for ``http://``), with a
  ``nnef-callback`` token when OAuth is on; 204 when the AF took it, 502 when not.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import orjson
import structlog
from aiohttp import web

from subscriber.fakes.core.pcf import FakePcf
from subscriber.fakes.core.wire import TokenSigner, check_bearer, json_response, read_json

log = structlog.get_logger()

PREFIX = "/3gpp-traffic-influence/v1"
CALLBACK = "/nnef-callback/v1/notification/smf"
_JSON_TYPE = re.compile(r"(?i:(?:application|text)/(?:[a-zA-Z0-9./-]+\+)?json)")
# The fields PatchTiSubData overwrites, whether the patch carries them or not.
_PATCHED = (
    "appReloInd",
    "trafficFilters",
    "ethTrafficFilters",
    "trafficRoutes",
    "tfcCorrInd",
    "tempValidities",
    "validGeoZoneIds",
    "afAckInd",
    "addrPreserInd",
)

ForwardJson = Callable[[str, bytes, dict[str, str]], Awaitable[int]]
"""POSTs a body to a URI over HTTP/1.1 with extra headers; the status (raises on no answer)."""


def _malformed(detail: str, status: int = 400) -> web.Response:
    # openapi ProblemDetailsMalformedReqSyntax: a title, status 400, the detail; no cause.
    return json_response(
        {"title": "Malformed request syntax", "status": 400, "detail": detail}, status
    )


def _not_found(detail: str) -> web.Response:
    return json_response({"title": "Data not found", "status": 404, "detail": detail}, 404)


@dataclass
class _Sub:
    ti: dict[str, Any]
    notif_corre_id: str
    app_session_id: str = ""
    influence_id: str = ""


@dataclass
class _Af:
    subs: dict[str, _Sub] = field(default_factory=dict)
    next_sub: int = 0


class FakeTrafficInfluence:
    """The NEF's traffic-influence subscriptions and its SMF callback.

    Args:
        pcf: where single-UE requests become app sessions.
        base_url: the NEF's apiRoot, once it serves (for ``self`` and the callback URI).
        signer: checks and makes tokens like the NRF's.
        forward: the HTTP/1.1 client the callback forwards with; None drops notifications.
        oauth: whether the core runs with OAuth (tokens on the forwarded notifications).
    """

    def __init__(
        self,
        *,
        pcf: FakePcf,
        base_url: Callable[[], str],
        signer: TokenSigner,
        forward: ForwardJson | None,
        oauth: bool,
    ) -> None:
        self._pcf = pcf
        self._base = base_url
        self.signer = signer
        self._forward = forward
        self.oauth = oauth
        self.tokens = oauth
        """The API checks bearer tokens (free5GC >= v4.2.2 with OAuth)."""
        self.callback_tokens = False
        """The callback checks bearer tokens (free5GC >= v4.2.2 with OAuth): the SMF has none."""
        self.down = False
        """Answer every request 503, as an NEF whose PCF cannot be reached would."""
        self.afs: dict[str, _Af] = {}
        self._corre = 0
        self.forwarded: list[tuple[str, int]] = []

    def routes(self) -> list[web.RouteDef]:
        """The API's and the callback's routes."""
        one = PREFIX + "/{af_id}/subscriptions/{sub_id}"
        return [
            web.get(PREFIX + "/{af_id}/subscriptions", self._list),
            web.post(PREFIX + "/{af_id}/subscriptions", self._create),
            web.get(one, self._read),
            web.put(one, self._replace),
            web.patch(one, self._patch),
            web.delete(one, self._delete),
            web.post(CALLBACK, self._smf_notification),
        ]

    def restart(self) -> None:
        """Forget every subscription and the counters (the NEF keeps them in memory)."""
        self.afs.clear()
        self._corre = 0

    # -- the API ---------------------------------------------------------------------------

    def _refused(self, request: web.Request, service: str, *, enabled: bool) -> web.Response | None:
        return check_bearer(request, self.signer, service, enabled=enabled)

    async def _body(self, request: web.Request) -> tuple[Any, web.Response | None]:
        content_type = request.headers.get("Content-Type", "")
        if not _JSON_TYPE.search(content_type):
            return None, _malformed(f'Wrong content type "{content_type}"', status=500)
        return await read_json(request)

    @staticmethod
    def _invalid(ti: Any) -> web.Response | None:
        if not isinstance(ti, dict):
            return _malformed("json: cannot unmarshal into Go value of type TrafficInfluSub")
        destination = str(ti.get("notificationDestination") or "")
        if not destination:
            return _malformed("Missing notificationDestination")
        parsed = urlparse(destination)
        if not parsed.scheme or not parsed.netloc:
            return _malformed("Invalid notificationDestination")
        if not (ti.get("afAppId") or ti.get("trafficFilters") or ti.get("ethTrafficFilters")):
            return _malformed("Missing one of afAppId, trafficFilters or ethTrafficFilters")
        ue_keys = ("gpsi", "ipv4Addr", "ipv6Addr", "externalGroupId", "anyUeInd")
        if not any(ti.get(k) for k in ue_keys):
            return _malformed("Missing one of Gpsi, Ipv4Addr, Ipv6Addr, ExternalGroupId, AnyUeInd")
        if not ti.get("trafficRoutes"):
            return _malformed("Missing trafficRoutes")
        return None

    def _app_session(self, ti: dict[str, Any], notif_corre_id: str) -> dict[str, Any]:
        # convertTrafficInfluSubToAppSessionContext: no gpsi, no supi.
        route_req: dict[str, Any] = {"routeToLocs": ti.get("trafficRoutes") or []}
        if ti.get("appReloInd"):
            route_req["appReloc"] = True
        if ti.get("dnaiChgType"):
            route_req["upPathChgSub"] = {
                "dnaiChgType": ti["dnaiChgType"],
                "notificationUri": self._base() + CALLBACK,
                "notifCorreId": notif_corre_id,
            }
        asc = {
            "afAppId": ti.get("afAppId", ""),
            "afRoutReq": route_req,
            "ueIpv4": ti.get("ipv4Addr", ""),
            "ueIpv6": ti.get("ipv6Addr", ""),
            "ueMac": ti.get("macAddr", ""),
            "notifUri": ti.get("notificationDestination", ""),
            "suppFeat": ti.get("suppFeat", ""),
            "dnn": ti.get("dnn", ""),
        }
        if ti.get("snssai") is not None:
            asc["sliceInfo"] = ti["snssai"]
        return asc

    def _self(self, af_id: str, sub_id: str) -> str:
        return f"{self._base()}{PREFIX}/{af_id}/subscriptions/{sub_id}"

    async def _valid_request(self, request: web.Request) -> tuple[Any, web.Response | None]:
        """The request's TrafficInfluSub once its token, media type and fields pass."""
        refusal = self._refused(request, "3gpp-traffic-influence", enabled=self.tokens)
        if refusal is not None:
            return None, refusal
        ti, error = await self._body(request)
        if error is not None:
            return None, error
        return ti, self._invalid(ti)

    async def _create(self, request: web.Request) -> web.Response:
        ti, error = await self._valid_request(request)
        if error is not None:
            return error
        if self.down:
            return _malformed("Query to PCF failed", status=500)
        af_id = request.match_info["af_id"]
        af = self.afs.setdefault(af_id, _Af())
        self._corre += 1
        af.next_sub += 1
        sub_id = str(af.next_sub)
        sub = _Sub(ti=ti, notif_corre_id=str(self._corre))
        if ti.get("gpsi") or ti.get("ipv4Addr") or ti.get("ipv6Addr"):
            answer = self._pcf.post_app_session(self._app_session(ti, sub.notif_corre_id))
            if answer.status != 201:
                return answer.response()
            sub.app_session_id = answer.app_session_id or ""
        else:
            sub.influence_id = f"influ-{af_id}-{sub_id}"
        ti["self"] = self._self(af_id, sub_id)
        af.subs[sub_id] = sub
        response = json_response(ti, 201)
        response.headers["Location"] = ti["self"]
        return response

    def _find(self, request: web.Request) -> tuple[_Af | None, _Sub | None, web.Response | None]:
        af = self.afs.get(request.match_info["af_id"])
        if af is None:
            return None, None, _not_found("AF is not found")
        sub = af.subs.get(request.match_info["sub_id"])
        if sub is None:
            return af, None, _not_found("Subscription is not found")
        return af, sub, None

    async def _list(self, request: web.Request) -> web.Response:
        refusal = self._refused(request, "3gpp-traffic-influence", enabled=self.tokens)
        if refusal is not None:
            return refusal
        af = self.afs.get(request.match_info["af_id"])
        if af is None:
            return _not_found("AF is not found")
        # A nil Go slice when the AF has none: JSON null.
        return json_response([s.ti for s in af.subs.values()] or None)

    async def _read(self, request: web.Request) -> web.Response:
        refusal = self._refused(request, "3gpp-traffic-influence", enabled=self.tokens)
        if refusal is not None:
            return refusal
        _, sub, missing = self._find(request)
        if missing is not None or sub is None:
            return missing or _not_found("Subscription is not found")
        return json_response(sub.ti)

    async def _replace(self, request: web.Request) -> web.Response:
        ti, error = await self._valid_request(request)
        if error is not None:
            return error
        _, sub, missing = self._find(request)
        if missing is not None or sub is None:
            return missing or _not_found("Subscription is not found")
        if self.down:
            return _malformed("Query to PCF failed", status=500)
        if sub.app_session_id:
            answer = self._pcf.post_app_session(self._app_session(ti, sub.notif_corre_id))
            if answer.status != 201:
                return answer.response()
            sub.app_session_id = answer.app_session_id or ""
        elif not sub.influence_id:
            return _not_found("No AppSessID or InfluID")
        sub.ti = ti
        return json_response(ti)

    async def _patch(self, request: web.Request) -> web.Response:
        refusal = self._refused(request, "3gpp-traffic-influence", enabled=self.tokens)
        if refusal is not None:
            return refusal
        patch, error = await self._body(request)
        if error is not None:
            return error
        if not isinstance(patch, dict):
            return _malformed("json: cannot unmarshal into Go value of type TrafficInfluSubPatch")
        _, sub, missing = self._find(request)
        if missing is not None or sub is None:
            return missing or _not_found("Subscription is not found")
        if sub.app_session_id:
            route_req = {
                "appReloc": bool(patch.get("appReloInd")),
                "routeToLocs": patch.get("trafficRoutes"),
                "tempVals": patch.get("tempValidities"),
            }
            answer = self._pcf.patch_app_session(sub.app_session_id, {"afRoutReq": route_req})
            if answer.status not in (200, 204):
                return answer.response()
        for key in _PATCHED:
            if patch.get(key) is None:
                sub.ti.pop(key, None)
            else:
                sub.ti[key] = patch[key]
        return json_response(sub.ti)

    async def _delete(self, request: web.Request) -> web.Response:
        refusal = self._refused(request, "3gpp-traffic-influence", enabled=self.tokens)
        if refusal is not None:
            return refusal
        af, sub, missing = self._find(request)
        if missing is not None or sub is None or af is None:
            return missing or _not_found("Subscription is not found")
        if sub.app_session_id:
            answer = self._pcf.delete_app_session(sub.app_session_id)
            if answer.status not in (200, 204):
                return answer.response()
        del af.subs[request.match_info["sub_id"]]
        return web.Response(status=204)

    # -- the SMF's notifications ---------------------------------------------------------------

    async def _smf_notification(self, request: web.Request) -> web.Response:
        status, body = await self.smf_notification(
            await request.read(), request.headers.get("Authorization")
        )
        if body is None:
            return web.Response(status=status)
        return json_response(body, status)

    async def smf_notification(
        self, raw: bytes, authorization: str | None
    ) -> tuple[int, dict[str, Any] | None]:
        """Take one SMF notification (``POST /nnef-callback/v1/notification/smf``).

        The fake SMF calls this in process with the exact bytes it would POST: the fake core's
        server speaks HTTP/1.1 only, free5GC's SMF h2c only (docs/free5gc.md, "h2c callbacks").

        Returns:
            The status and body the NEF answers the SMF with.
        """
        if self.callback_tokens:
            fields = (authorization or "").split(" ")
            try:
                claims = self.signer.verify(fields[1]) if len(fields) > 1 else {}
            except ValueError:
                claims = {}
            if "nnef-callback" not in str(claims.get("scope", "")).split(" "):
                return 401, {"error": "Authorization header is missing or invalid"}
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return 400, {"title": "Malformed request syntax", "status": 400, "detail": str(exc)}
        notif_id = str(body.get("notifId", "")) if isinstance(body, dict) else ""
        sub = next(
            (
                s
                for af in self.afs.values()
                for s in af.subs.values()
                if s.notif_corre_id == notif_id
            ),
            None,
        )
        if sub is None:
            return 404, {
                "title": "Data not found",
                "status": 404,
                "detail": "Subscription is not found",
            }
        destination = str(sub.ti.get("notificationDestination") or "")
        if not destination or self._forward is None:
            return 500, {
                "title": "System failure",
                "status": 500,
                "detail": "AF notification destination is empty",
                "cause": "SYSTEM_FAILURE",
            }
        headers = {"Content-Type": "application/json"}
        if self.oauth:
            token = self.signer.sign({"scope": "nnef-callback", "sub": "NEF"})
            headers["Authorization"] = f"Bearer {token}"
        try:
            status = await self._forward(destination, orjson.dumps(body), headers)
            failure = None if 200 <= status < 300 else f"AF callback returned status code {status}"
        except Exception as exc:  # postNotificationToAf: any failure is a 502 to the SMF
            status, failure = 0, f"send AF callback failed: {type(exc).__name__}"
        self.forwarded.append((destination, status))
        if failure is not None:
            log.info("fake_nef_forward_failed", status=status)
            return 502, {
                "title": "System failure",
                "status": 500,
                "detail": failure,
                "cause": "SYSTEM_FAILURE",
            }
        return 204, None
