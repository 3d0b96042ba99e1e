"""The fake PCF: PDU sessions' SM policies and the AF app sessions that route their traffic.

Only what AF traffic influence through free5GC's NEF needs, with free5GC's behaviour
(free5gc/pcf v1.4.5, ``internal/sbi/processor/policyauthorization.go``, ``internal/context``):

* an app session needs a UE address (``ueIpv4``): the NEF never passes the TI request's GPSI on,
  so a GPSI-only request is refused 400 ERROR_REQUEST_PARAMETERS;
* with ``afRoutReq`` it needs ``dnn`` (400 otherwise), and the negotiated ``suppFeat`` must set
  feature 1, InfluenceOnTrafficRouting (403 REQUESTED_SERVICE_NOT_AUTHORIZED otherwise);
* session binding (``context.go`` ``SessionBinding``) walks *every* UE and keeps the result of
  the last one visited, so only the UE visited last can be found; the fake visits sessions in
  the order they were established, so the newest session binds and an older one does not.
  Not found: 500 PDU_SESSION_NOT_AVAILABLE (``util/pcf_util.go`` maps that cause to 500);
* one PCC rule per application (found by ``afAppId``) holds the traffic-control data: the
  routes and the ``upPathChgSub`` of the latest request (``provisioningOfTrafficRoutingInfo``),
  and the SMF is told asynchronously (``go SendSMPolicyUpdateNotification``);
* an update (``PATCH``) whose ``afRoutReq`` has no ``spVal`` is refused 400 ERROR_REQUEST_PARAMETERS
  ("Field afRoutReq.spVal is nil"); with one, the routes change but ``upPathChgSub`` is whatever
  the update carries (the NEF sends none), so the SMF moves the path without notifying;
* deleting an app session removes its PCC rule: the SMF moves the path back to the default route.

Errors are ``util.GetProblemDetail``: ``{"status", "detail", "cause"}``, no title.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from subscriber.fakes.core.wire import json_response

DEFAULT_ROUTE: dict[str, Any] = {"dnai": ""}
"""free5GC's route of a PDU session no traffic influence applies to (smf checkUpPathChangeEvt)."""


@dataclass
class PduSession:
    """One UE's PDU session, as the PCF's SM policy knows it."""

    supi: str
    ipv4: str
    dnn: str = "internet"
    snssai: dict[str, Any] = field(default_factory=lambda: {"sst": 1, "sd": "010203"})
    rules: dict[str, TrafficControl] = field(default_factory=dict)
    """afAppId -> the traffic-control data of its PCC rule."""


@dataclass
class TrafficControl:
    """A PCC rule's traffic-control data: where the app's traffic goes, and who hears of it."""

    routes: list[dict[str, Any]]
    up_path_chg_sub: dict[str, Any] | None


@dataclass
class AppSession:
    """An AF app session: which session and application it steers."""

    session: PduSession
    af_app_id: str


class PathChanges(Protocol):
    """The SMF: it applies a PCC rule change to the user plane and notifies."""

    async def change_path(
        self,
        session: PduSession,
        af_app_id: str,
        old: TrafficControl | None,
        new: TrafficControl | None,
    ) -> None:
        """Move the session's user plane for ``af_app_id`` from ``old`` to ``new``."""
        ...


@dataclass
class PcfAnswer:
    """What the PCF answered the NEF: a status, a body, the app session id when created."""

    status: int
    body: dict[str, Any] | None = None
    app_session_id: str | None = None

    def response(self) -> web.Response:
        """The answer as the NEF passes it on (``c.JSON(int(pd.Status), pd)``)."""
        return json_response(self.body, self.status)


def _problem(detail: str, cause: str, status: int) -> PcfAnswer:
    return PcfAnswer(status, {"status": status, "detail": detail, "cause": cause})


def _feature_one(supp_feat: str) -> bool:
    # openapi NewSupportedFeature pads an odd-length string with "0" before decoding it.
    text = supp_feat if len(supp_feat) % 2 == 0 else "0" + supp_feat
    try:
        return bool(bytes.fromhex(text)[-1] & 1) if text else False
    except ValueError:
        return False


class FakePcf:
    """SM policies (one per PDU session) and app sessions.

    Args:
        smf: told of every change of a PCC rule's traffic control.
    """

    def __init__(self, smf: PathChanges) -> None:
        self._smf = smf
        self.sessions: dict[str, PduSession] = {}
        self.app_sessions: dict[str, AppSession] = {}
        self._next_app_session = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def establish(self, session: PduSession) -> None:
        """A PDU session comes up (replacing the UE's previous one); it is the newest."""
        self.sessions.pop(session.supi, None)
        self.sessions[session.supi] = session

    def release(self, supi: str) -> bool:
        """The UE's PDU session goes; False when it had none."""
        return self.sessions.pop(supi, None) is not None

    def _bind(self, asc: dict[str, Any]) -> PduSession | None:
        found: PduSession | None = None
        for session in self.sessions.values():  # every UE; the last one visited decides
            found = None
            if session.ipv4 != asc.get("ueIpv4"):
                continue
            if asc.get("dnn") and asc["dnn"] != session.dnn:
                continue
            if asc.get("sliceInfo") is not None and asc["sliceInfo"] != session.snssai:
                continue
            found = session
        return found

    def post_app_session(self, asc: dict[str, Any]) -> PcfAnswer:
        """``POST /npcf-policyauthorization/v1/app-sessions`` with an AppSessionContextReqData."""
        if not (asc.get("ueIpv4") or asc.get("ueIpv6") or asc.get("ueMac")):
            return _problem(
                "Ue UeIpv4 and UeIpv6 and UeMac are all empty", "ERROR_REQUEST_PARAMETERS", 400
            )
        route_req = asc.get("afRoutReq")
        if route_req is not None and not asc.get("dnn"):
            return _problem("DNN shall be present", "ERROR_REQUEST_PARAMETERS", 400)
        session = self._bind(asc)
        if session is None:
            return _problem(
                "Session Binding failed[no SM policy found]", "PDU_SESSION_NOT_AVAILABLE", 500
            )
        app = str(asc.get("afAppId") or "")
        if not app or route_req is None or not _feature_one(str(asc.get("suppFeat") or "")):
            return _problem(
                "Traffic routing not supported", "REQUESTED_SERVICE_NOT_AUTHORIZED", 403
            )
        self._provision(
            session, app, route_req.get("routeToLocs") or [], route_req.get("upPathChgSub")
        )
        self._next_app_session += 1
        app_session_id = str(self._next_app_session)
        self.app_sessions[app_session_id] = AppSession(session, app)
        return PcfAnswer(201, asc, app_session_id)

    def patch_app_session(self, app_session_id: str, update: dict[str, Any]) -> PcfAnswer:
        """``PATCH .../app-sessions/{id}`` with an AppSessionContextUpdateData."""
        app_session = self.app_sessions.get(app_session_id)
        if app_session is None:
            return _problem("can't find app session", "APPLICATION_SESSION_CONTEXT_NOT_FOUND", 404)
        route_req = update.get("afRoutReq")
        if route_req is not None:
            if route_req.get("spVal") is None:
                return _problem("Field afRoutReq.spVal is nil", "ERROR_REQUEST_PARAMETERS", 400)
            self._provision(
                app_session.session,
                app_session.af_app_id,
                route_req.get("routeToLocs") or [],
                route_req.get("upPathChgSub"),
            )
        return PcfAnswer(200, update)

    def delete_app_session(self, app_session_id: str) -> PcfAnswer:
        """``POST .../app-sessions/{id}/delete``: its PCC rule goes, the path goes back."""
        app_session = self.app_sessions.pop(app_session_id, None)
        if app_session is None:
            return _problem("can't find app session", "APPLICATION_SESSION_CONTEXT_NOT_FOUND", 404)
        old = app_session.session.rules.pop(app_session.af_app_id, None)
        if old is not None:
            self._tell_smf(app_session.session, app_session.af_app_id, old, None)
        return PcfAnswer(204)

    def _provision(
        self,
        session: PduSession,
        af_app_id: str,
        routes: list[dict[str, Any]],
        up_path_chg_sub: dict[str, Any] | None,
    ) -> None:
        old = session.rules.get(af_app_id)
        new = TrafficControl(list(routes), up_path_chg_sub)
        session.rules[af_app_id] = new
        self._tell_smf(session, af_app_id, old, new)

    def _tell_smf(
        self,
        session: PduSession,
        af_app_id: str,
        old: TrafficControl | None,
        new: TrafficControl | None,
    ) -> None:
        task = asyncio.get_running_loop().create_task(
            self._smf.change_path(session, af_app_id, old, new)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait until every change handed to the SMF has been carried out."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
