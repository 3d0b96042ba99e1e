"""The fake core as one HTTP server: NRF, AMF and SMF routes plus a control API.

Run it in-process (``async with FakeCoreServer(...) as fake: fake.url``) or from the command
line (``subscriber fakecore --port 8000 --ues 1000``). The control API, used by tests, the demo and
the simulator:

* ``POST /fake/ues`` ``{"count": N, "firstImsi": 208930000000001, "tac": "000001", "cells": 16}``
* ``PUT /fake/ues/{supi}`` ``{"tac": "000001", "nrCellId": "000000010"}`` (location optional)
* ``DELETE /fake/ues/{supi}``: the UE deregisters
* ``POST /fake/ues/{supi}/move`` ``{"tac": "000002", "nrCellId": "000000020"}``
* ``POST /fake/amf/restart``, ``POST /fake/nrf/restart``
* ``POST /fake/smf/up-path-change`` ``{"notificationUri": ..., "notifId": "1", "targetDnai":
  "mec", "sourceDnai": "", "targetIpv4": "10.60.0.1", "dnaiChgType": "EARLY_LATE"}``; without
  ``notificationUri`` it notifies every spec subscription (notify mode)
* ``PUT /fake/sessions/{supi}`` ``{"ipv4": "10.60.0.1", "dnn": "internet", "snssai": {"sst": 1,
  "sd": "010203"}}``: the UE's PDU session comes up (the newest one binds first, see
  :mod:`.pcf`); ``DELETE`` releases it
* ``PUT /fake/smf/faults`` ``{"dropLate": 1, "rerouteTo": "mec-x"}``: drop the next LATE
  notifications, send the next path change elsewhere
* ``PUT /fake/nef`` ``{"tokens": true, "callbackTokens": false, "down": false}``: how the NEF
  checks tokens (free5GC >= v4.2.2) and whether it fails every traffic-influence request
* ``GET /fake/user-plane``: where each UE's application traffic goes
* ``GET /fake/status``

The server speaks HTTP/1.1, which free5GC's server accepts too (free5gc/util httpwrapper.go); the
fake's own
notifications go out over h2c prior knowledge like free5GC's client (free5gc/openapi client.go).
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import structlog
from aiohttp import web

from subscriber.fakes.core.amf import AmfMode, FakeAmf
from subscriber.fakes.core.nef import FakeNef
from subscriber.fakes.core.nef_ti import CALLBACK, FakeTrafficInfluence
from subscriber.fakes.core.nrf import FakeNrf
from subscriber.fakes.core.pcf import FakePcf, PduSession
from subscriber.fakes.core.smf import FakeSmf
from subscriber.fakes.core.upf import FakeUserPlane
from subscriber.fakes.core.wire import (
    ClockNs,
    NrfTokenVerifier,
    TokenSigner,
    TokenVerifier,
    json_response,
    problem,
    read_json,
)
from subscriber.options import FakeCoreOptions
from subscriber.settings import Settings

log = structlog.get_logger()

# The headers free5GC's generated clients send (free5gc/openapi client.go): no
# Authorization and no 3gpp-Sbi-Callback.
_NOTIFY_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json, application/problem+json",
    "User-Agent": "OpenAPI-Generator/1.0.0/go",
}


@dataclass(frozen=True)
class ExternalNrf:
    """A real NRF the fake NFs register with (``subscriber.stack.free5gc.RealNrf``)."""

    url: str
    certificate: Path
    """The NRF's ``nrf.pem``: the fake AMF checks tokens with its public key, RS512."""


class FakeCore:
    """The fake core's state: NRF, AMF, SMF, PCF and NEF sharing a token signer.

    Args:
        mode: ``free5gc`` (faithful, never notifies) or ``notify`` (spec-conformant).
        oauth: whether the NRF issues tokens and the AMF and discovery require them.
        clock_ns: wall clock in nanoseconds.
        http: the h2c client notifications go out on; none means no notification is sent.
        http1: the HTTP/1.1 client the NEF forwards notifications to the AF on.
        nrf: a real NRF to use instead of the fake one: the AMF, SMF and NEF register there
            and the AMF accepts only tokens that NRF signed (OAuth on).
    """

    def __init__(
        self,
        *,
        mode: AmfMode = "free5gc",
        oauth: bool = True,
        clock_ns: ClockNs = time.time_ns,
        http: httpx.AsyncClient | None = None,
        http1: httpx.AsyncClient | None = None,
        nrf: ExternalNrf | None = None,
    ) -> None:
        self.url = ""
        self.port = 0
        self._http = http
        self._http1 = http1
        self.external_nrf = nrf
        signer = TokenSigner(secrets.token_bytes(32))
        verifier: TokenVerifier = signer if nrf is None else NrfTokenVerifier(nrf.certificate)
        post = self._post_json if http is not None else None
        self.amf = FakeAmf(
            signer=verifier,
            oauth=oauth or nrf is not None,
            mode=mode,
            clock_ns=clock_ns,
            post_json=post,
        )
        self.user_planes: list[FakeUserPlane] = []
        self.forward_h2c = False
        """The NEF forwards notifications over h2c prior knowledge instead of HTTP/1.1."""
        self.smf = FakeSmf(mode=mode, post_json=post, user_plane=self._route)
        self.pcf = FakePcf(self.smf)
        self.traffic_influence = FakeTrafficInfluence(
            pcf=self.pcf,
            base_url=lambda: self.url,
            signer=signer,
            forward=self._forward_json if http1 is not None else None,
            oauth=oauth,
        )
        self.nef = FakeNef(self.traffic_influence)
        self.nrf = FakeNrf(
            signer=signer, oauth=oauth, clock_ns=clock_ns, core_profiles=self._core_profiles
        )

    def _core_profiles(self) -> list[dict[str, Any]]:
        if not self.url:
            return []
        return [nf.profile(self.url, self.port) for nf in (self.amf, self.smf, self.nef)]

    async def _post_json(self, uri: str, body: bytes) -> int:
        if self.url and uri == self.url + CALLBACK:
            # The SMF notifying its own core's NEF: in process (the fake serves HTTP/1.1 only).
            status, _ = await self.traffic_influence.smf_notification(body, None)
            return status
        assert self._http is not None
        response = await self._http.post(uri, content=body, headers=_NOTIFY_HEADERS)
        return response.status_code

    async def _forward_json(self, uri: str, body: bytes, headers: dict[str, str]) -> int:
        # The NEF's afCallbackHTTPClient is Go's default http.Client: HTTP/1.1 for http://.
        # ``forward_h2c`` stands for a NEF whose client speaks h2c, as the SMF's does.
        client = self._http if self.forward_h2c else self._http1
        assert client is not None
        response = await client.post(uri, content=body, headers=headers)
        return response.status_code

    def _route(self, ue_ipv4: str, af_app_id: str, dnai: str) -> None:
        for plane in self.user_planes:
            plane.route(ue_ipv4, af_app_id, dnai)

    def establish_session(
        self, supi: str, ipv4: str, *, dnn: str = "internet", snssai: dict[str, Any] | None = None
    ) -> None:
        """The UE's PDU session comes up, its traffic on the default route."""
        session = PduSession(supi=supi, ipv4=ipv4, dnn=dnn)
        if snssai is not None:
            session.snssai = snssai
        self.pcf.establish(session)
        self._route(ipv4, "", "")
        for plane in self.user_planes:
            plane.route(ipv4, plane.af_app_id, "")

    async def drain(self) -> None:
        """Wait until every notification and path change in flight is done."""
        await self.pcf.drain()
        await self.amf.drain()

    async def register(self) -> None:
        """Register the AMF, SMF and NEF profiles, at the real NRF when there is one."""
        if self.external_nrf is None:
            self.nrf.register_core()
            return
        # HTTP/1.1: the NRF closes idle h2c connections after 1 ms (util httpwrapper), and
        # free5GC's servers take HTTP/1.1 as well (free5gc/util httpwrapper.go).
        async with httpx.AsyncClient(timeout=10) as http:
            for profile in self._core_profiles():
                nf_id = profile["nfInstanceId"]
                url = f"{self.external_nrf.url}/nnrf-nfm/v1/nf-instances/{nf_id}"
                answer = await http.put(url, json=profile)
                if answer.status_code not in (200, 201):
                    raise RuntimeError(f"the NRF refused a profile: {answer.status_code}")

    async def _deregister_external(self, nf_id: str, nf_type: str) -> None:
        # The real NRF wants an nnrf-nfm token for DELETE: the NF asks for one as itself.
        assert self.external_nrf is not None
        form = {
            "grant_type": "client_credentials",
            "nfInstanceId": nf_id,
            "nfType": nf_type,
            "targetNfType": "NRF",
            "scope": "nnrf-nfm",
        }
        async with httpx.AsyncClient(timeout=10) as http:
            token = await http.post(f"{self.external_nrf.url}/oauth2/token", data=form)
            bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
            await http.delete(
                f"{self.external_nrf.url}/nnrf-nfm/v1/nf-instances/{nf_id}", headers=bearer
            )

    async def restart_amf(self) -> None:
        """Restart the AMF (and SMF): deregister, lose subscriptions, register with a new id.

        On shutdown the AMF deregisters from the NRF (amf pkg/service/init.go
        terminateProcedure) and registers again at start with a fresh instance id.
        """
        if self.external_nrf is not None:
            await self._deregister_external(self.amf.instance_id, "AMF")
            await self._deregister_external(self.smf.instance_id, "SMF")
        self.nrf.profiles.pop(self.amf.instance_id, None)
        self.nrf.profiles.pop(self.smf.instance_id, None)
        self.amf.restart()
        self.smf.restart()
        await self.register()

    def application(self) -> web.Application:
        """The aiohttp application serving every route."""
        app = web.Application(client_max_size=16 * 1_048_576)
        app.add_routes(
            self.nrf.routes() + self.amf.routes() + self.smf.routes() + self.nef.routes()
        )
        app.add_routes(
            [
                web.post("/fake/ues", self._add_ues),
                web.put("/fake/ues/{supi}", self._put_ue),
                web.delete("/fake/ues/{supi}", self._delete_ue),
                web.post("/fake/ues/{supi}/move", self._move),
                web.post("/fake/amf/restart", self._restart_amf),
                web.post("/fake/nrf/restart", self._restart_nrf),
                web.post("/fake/smf/up-path-change", self._up_path_change),
                web.put("/fake/sessions/{supi}", self._put_session),
                web.delete("/fake/sessions/{supi}", self._delete_session),
                web.put("/fake/smf/faults", self._put_faults),
                web.put("/fake/nef", self._put_nef),
                web.get("/fake/user-plane", self._user_plane),
                web.get("/fake/status", self._status),
            ]
        )
        return app

    async def _add_ues(self, request: web.Request) -> web.Response:
        body, error = await read_json(request)
        if error is not None:
            return error
        body = body if isinstance(body, dict) else {}
        try:
            supis = self.amf.add_ues(
                int(body.get("count", 1)),
                first_imsi=int(body.get("firstImsi", 208930000000001)),
                tac=str(body.get("tac", "000001")),
                cells=int(body.get("cells", 16)),
            )
        except ValueError as exc:
            return problem(400, "INVALID_PARAMETER", str(exc))
        return json_response({"added": len(supis), "first": supis[:1], "last": supis[-1:]})

    async def _put_ue(self, request: web.Request) -> web.Response:
        body, error = await read_json(request)
        if error is not None:
            return error
        body = body if isinstance(body, dict) else {}
        try:
            self.amf.add_ue(request.match_info["supi"], body.get("tac"), body.get("nrCellId"))
        except ValueError as exc:
            return problem(400, "INVALID_PARAMETER", str(exc))
        return web.Response(status=204)

    async def _delete_ue(self, request: web.Request) -> web.Response:
        if not self.amf.remove_ue(request.match_info["supi"]):
            return problem(404, "CONTEXT_NOT_FOUND")
        return web.Response(status=204)

    async def _move(self, request: web.Request) -> web.Response:
        body, error = await read_json(request)
        if error is not None:
            return error
        body = body if isinstance(body, dict) else {}
        try:
            self.amf.move(
                request.match_info["supi"], str(body.get("tac")), str(body.get("nrCellId"))
            )
        except KeyError:
            return problem(404, "CONTEXT_NOT_FOUND")
        except ValueError as exc:
            return problem(400, "INVALID_PARAMETER", str(exc))
        await self.amf.drain()
        return web.Response(status=204)

    async def _restart_amf(self, request: web.Request) -> web.Response:
        await self.restart_amf()
        return web.Response(status=204)

    async def _restart_nrf(self, request: web.Request) -> web.Response:
        self.nrf.restart()
        return web.Response(status=204)

    async def _up_path_change(self, request: web.Request) -> web.Response:
        body, error = await read_json(request)
        if error is not None:
            return error
        body = body if isinstance(body, dict) else {}
        uri = body.get("notificationUri")
        targets = [(str(uri), str(body.get("notifId", "1")))] if uri else self.smf.spec_targets()
        change = body.get("dnaiChgType", "EARLY_LATE")
        if change not in ("EARLY", "LATE", "EARLY_LATE"):
            return problem(400, "INVALID_PARAMETER", "dnaiChgType")
        statuses: list[int] = []
        for target_uri, notif_id in targets:
            statuses += await self.smf.send_up_path_change(
                target_uri,
                notif_id,
                source_dnai=str(body.get("sourceDnai", "")),
                target_dnai=str(body.get("targetDnai", "")),
                target_ipv4=str(body.get("targetIpv4", "")),
                change_type=change,
                concurrent=bool(body.get("concurrent", False)),
            )
        return json_response({"statuses": statuses})

    async def _put_session(self, request: web.Request) -> web.Response:
        body, error = await read_json(request)
        if error is not None:
            return error
        body = body if isinstance(body, dict) else {}
        ipv4 = body.get("ipv4")
        if not isinstance(ipv4, str) or not ipv4:
            return problem(400, "INVALID_PARAMETER", "ipv4")
        snssai = body.get("snssai")
        self.establish_session(
            request.match_info["supi"],
            ipv4,
            dnn=str(body.get("dnn", "internet")),
            snssai=snssai if isinstance(snssai, dict) else None,
        )
        return web.Response(status=204)

    async def _delete_session(self, request: web.Request) -> web.Response:
        if not self.pcf.release(request.match_info["supi"]):
            return problem(404, "CONTEXT_NOT_FOUND")
        return web.Response(status=204)

    async def _put_faults(self, request: web.Request) -> web.Response:
        body, error = await read_json(request)
        if error is not None:
            return error
        body = body if isinstance(body, dict) else {}
        faults = self.smf.faults
        faults.drop_late = int(body.get("dropLate", faults.drop_late))
        reroute = body.get("rerouteTo", faults.reroute_to)
        faults.reroute_to = str(reroute) if reroute is not None else None
        return web.Response(status=204)

    async def _put_nef(self, request: web.Request) -> web.Response:
        body, error = await read_json(request)
        if error is not None:
            return error
        body = body if isinstance(body, dict) else {}
        ti = self.traffic_influence
        ti.tokens = bool(body.get("tokens", ti.tokens))
        ti.callback_tokens = bool(body.get("callbackTokens", ti.callback_tokens))
        ti.down = bool(body.get("down", ti.down))
        return web.Response(status=204)

    async def _user_plane(self, request: web.Request) -> web.Response:
        return json_response(
            {
                plane.af_app_id: {
                    "routes": plane.routes,
                    "connections": plane.connections,
                }
                for plane in self.user_planes
            }
        )

    async def _status(self, request: web.Request) -> web.Response:
        return json_response(
            {
                "mode": self.amf.mode,
                "oauth": self.amf.oauth,
                "ues": len(self.amf.ues),
                "amfInstanceId": self.amf.instance_id,
                "amfSubscriptions": len(self.amf.subscriptions),
                "nrfRegistrations": len(self.nrf.profiles),
                "notificationsSent": self.amf.notifications_sent,
                "notificationFailures": self.amf.notification_failures,
            }
        )


class FakeCoreServer:
    """Serves a :class:`FakeCore` on a TCP port for the length of an ``async with`` block.

    Entering returns the server; ``server.url`` is its base URL (the NRF's and the AMF's apiRoot)
    and ``server.core`` the state, for tests that move UEs directly.

    Args:
        host: the address to bind.
        port: the port; 0 picks a free one.
        ues: how many UEs to register at start.
        mode: ``free5gc`` or ``notify``.
        oauth: whether tokens are required.
        clock_ns: wall clock in nanoseconds.
        user_planes: applications whose traffic the fake user plane carries (:mod:`.upf`).
        ssl_context: serve https with it (``scheme: https`` in free5GC's configs; with
            ``verify_mode = CERT_REQUIRED``, clients need a certificate: mutual TLS).
        nrf: a real NRF to register with and take tokens from (:class:`ExternalNrf`).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ues: int = 0,
        mode: AmfMode = "free5gc",
        oauth: bool = True,
        clock_ns: ClockNs = time.time_ns,
        user_planes: Sequence[FakeUserPlane] = (),
        ssl_context: ssl.SSLContext | None = None,
        nrf: ExternalNrf | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._ues = ues
        self._ssl = ssl_context
        # h2c prior knowledge for http:// URIs, like free5GC's innerHTTP2CleartextClient
        # (free5gc/openapi client.go);
        # its 10 s whole-request timeout too.
        self._http = httpx.AsyncClient(http2=True, http1=False, timeout=10.0)
        # Go's default client, which the NEF forwards with: no timeout at all; 10 s here so a
        # test never hangs on a receiver that does not answer.
        self._http1 = httpx.AsyncClient(timeout=10.0)
        self.core = FakeCore(
            mode=mode, oauth=oauth, clock_ns=clock_ns, http=self._http, http1=self._http1, nrf=nrf
        )
        self.core.user_planes.extend(user_planes)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:41234``."""
        return self.core.url

    @property
    def nrf_url(self) -> str:
        """The NRF to give the daemon: the real one when there is one, else the fake's own."""
        external = self.core.external_nrf
        return external.url if external is not None else self.core.url

    async def __aenter__(self) -> Self:
        self._runner = web.AppRunner(self.core.application(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, ssl_context=self._ssl)
        await site.start()
        port = int(self._runner.addresses[0][1])
        self.core.port = port
        self.core.url = f"{'https' if self._ssl else 'http'}://{self._host}:{port}"
        await self.core.register()
        if self._ues:
            self.core.amf.add_ues(self._ues)
        for plane in self.core.user_planes:
            await plane.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.core.drain()
        for plane in self.core.user_planes:
            await plane.__aexit__(None, None, None)
        if self._runner is not None:
            await self._runner.cleanup()
        await self._http.aclose()
        await self._http1.aclose()


async def run(settings: Settings, options: FakeCoreOptions) -> int:
    """``subscriber fakecore``: serve the fake core until interrupted."""
    async with FakeCoreServer(
        host=options.host,
        port=options.port,
        ues=options.ues,
        mode=options.mode,
        oauth=not options.no_oauth,
    ) as server:
        log.info("fakecore_started", url=server.url, ues=options.ues, mode=options.mode)
        print(server.url, flush=True)
        await asyncio.Event().wait()
    return 0
