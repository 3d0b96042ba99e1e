"""The demo edge application: per-user state, and the application side of ETSI GS MEC 021.

Each user (a device, named by the IPv4 address it connects from: MEC 012 AssociateId type 1,
UE_IPv4_ADDRESS) has a counter that ``POST /count`` advances and returns, so a client sees at
once whether its state survived a move. With an AMS URL the instance:

1. registers with the AMS (``POST /app_mobility_services``, its appInstanceId
   ``app.instance.cluster``) and subscribes to mobility procedure notifications for itself;
2. adds each new user to its registration (``appMobilityServiceLevel`` as configured) before
   answering the user's first request;
3. on INTERHOST_MOVEOUT_TRIGGERED hands each listed user's counter to the target instance named
   in ``targetAppInfo`` (MEC 021 application self-controlled transfer), from then on forwards
   that user's requests there (keeping the answers as its own copy), and reports
   USER_CONTEXT_TRANSFER_COMPLETED with a PUT of its registration;
4. on INTERHOST_MOVEOUT_FAILED, or when the target stops answering, serves the user again
   itself, from the copy, so nothing the user saw is lost.

So no request fails and no count is lost across a switch. ``PUT /fake/transfer`` makes it
misbehave for tests (``fail``, ``ignore``, ``decline``), ``POST /fake/retrigger`` acts late on
an ignored notification, ``GET /fake/state`` shows its state.
Run one by hand: ``python -m subscriber.fakes.edge_app --cluster edge1 --host 127.0.1.1``
(the local orchestrator passes ``--fd``: a socket it listens on).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from subscriber.ams.models import app_instance_id

log = structlog.get_logger()

MODES = ("ok", "fail", "ignore", "decline")
_RETRY_FOR_S = 20.0


class EdgeApp:
    """One instance's state and its MEC 021 client.

    Args:
        app, instance, cluster: who and where it is.
        host, port: where it listens (its callbacks point there).
        warmup_s: ``/healthz`` answers 503 until then.
        ams_url: the AMS API root (``.../amsi/v1``); None runs it without the AMS.
        level: the appMobilityServiceLevel its users get (1, 2 or 3).
    """

    def __init__(
        self,
        *,
        app: str,
        instance: str,
        cluster: str,
        host: str,
        port: int,
        warmup_s: float,
        ams_url: str | None,
        level: int = 3,
    ) -> None:
        self.app, self.instance, self.cluster = app, instance, cluster
        self.id = app_instance_id(app, instance, cluster)
        self._base = f"http://{host}:{port}"
        self._warm_at = time.monotonic() + warmup_s
        self._ams = ams_url.rstrip("/") if ams_url else None
        self.level = level
        self.mode = "ok"
        self.counts: dict[str, int] = {}
        self.handed: dict[str, str] = {}
        self._users: dict[str, asyncio.Lock] = {}
        self._registration: str | None = None
        self._subscribed = False
        self._ignored: tuple[list[str], dict[str, Any]] | None = None
        self._reg_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None

    # Lifecycle --------------------------------------------------------------------------------

    async def start(self, _app: web.Application) -> None:
        """Open the client session; register with the AMS in the background."""
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3))
        if self._ams:
            self._spawn(self._join_ams())

    async def stop(self, _app: web.Application) -> None:
        """Cancel what runs in the background; close the session."""
        for task in list(self._tasks):
            task.cancel()
        if self._http is not None:
            await self._http.close()

    def _spawn(self, work: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # The AMS ----------------------------------------------------------------------------------

    async def _call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        assert self._http is not None
        assert self._ams is not None
        async with self._http.request(method, f"{self._ams}{path}", json=body) as resp:
            data = await resp.json(content_type=None) if resp.status != 204 else None
            return resp.status, data

    async def _retrying(self, what: Callable[[], Awaitable[bool]]) -> bool:
        deadline = time.monotonic() + _RETRY_FOR_S
        delay_s = 0.1
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
                if await what():
                    return True
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, 1.0)
        log.warning("edge_app.ams_unreachable", instance=self.id)
        return False

    def _registration_doc(self) -> dict[str, Any]:
        devices = [
            {
                "associateId": {"type": 1, "value": user},
                "appMobilityServiceLevel": self.level,
                "contextTransferState": 0,
            }
            for user in sorted(self.counts)
            if user not in self.handed
        ]
        doc: dict[str, Any] = {
            "serviceConsumerId": {"appInstanceId": self.id},
            "deviceInformation": devices,
        }
        return doc

    async def _join_ams(self) -> None:
        async def join() -> bool:
            await self._register()
            if not self._subscribed:
                status, _ = await self._call("POST", "/subscriptions", self._subscription())
                self._subscribed = status == 201
            return self._registration is not None and self._subscribed

        while not await self._retrying(join):
            pass

    def _subscription(self) -> dict[str, Any]:
        return {
            "subscriptionType": "MobilityProcedureSubscription",
            "callbackReference": f"{self._base}/mec/notifications",
            "filterCriteria": {"appInstanceId": self.id, "mobilityStatus": [1, 2, 3]},
        }

    async def _register(self) -> None:
        async with self._reg_lock:
            if self._registration is None:
                status, data = await self._call(
                    "POST", "/app_mobility_services", self._registration_doc()
                )
                if status == 201:
                    self._registration = data["appMobilityServiceId"]

    async def put_registration(
        self, change: Callable[[dict[str, Any]], None] | None = None
    ) -> bool:
        """PUT the registration as the state says, after ``change``; re-register on 404."""

        async def put() -> bool:
            await self._register()
            if self._registration is None:
                return False
            doc = {"appMobilityServiceId": self._registration, **self._registration_doc()}
            if change is not None:
                change(doc)
            status, _ = await self._call("PUT", f"/app_mobility_services/{self._registration}", doc)
            if status == 404:
                self._registration = None
            return status == 200

        return bool(self._ams) and await self._retrying(put)

    # Users ------------------------------------------------------------------------------------

    def _lock(self, user: str) -> asyncio.Lock:
        return self._users.setdefault(user, asyncio.Lock())

    async def count(self, request: web.Request) -> web.Response:
        """Advance and return the user's counter (forwarded while the user is handed over)."""
        user = request.headers.get("X-UE") or request.remote or "unknown"
        async with self._lock(user):
            target = self.handed.get(user)
            if target is not None:
                answer = await self._forward(target, user)
                if answer is not None:
                    self.counts[user] = int(answer["count"])
                    return web.json_response(answer)
                self.handed.pop(user, None)
            new = user not in self.counts
            self.counts[user] = self.counts.get(user, 0) + 1
            if new and self._ams:
                # In the background: the user is never kept waiting on the AMS.
                self._spawn(self._quietly(self.put_registration()))
            return web.json_response(
                {"cluster": self.cluster, "instance": self.id, "count": self.counts[user]}
            )

    async def _forward(self, target: str, user: str) -> dict[str, Any] | None:
        assert self._http is not None
        try:
            async with self._http.post(f"{target}/count", headers={"X-UE": user}) as resp:
                if resp.status == 200:
                    answer: dict[str, Any] = await resp.json()
                    return answer
        except (aiohttp.ClientError, TimeoutError, OSError):
            pass
        return None

    async def accept_context(self, request: web.Request) -> web.Response:
        """The target side of a hand-over: take the user's counter, register the user."""
        body = await request.json()
        user, value = str(body["user"]), int(body["count"])
        async with self._lock(user):
            self.counts[user] = max(value, self.counts.get(user, 0))
        if self._ams:
            self._spawn(self._quietly(self.put_registration()))
        return web.Response(status=204)

    async def _quietly(self, work: Awaitable[bool]) -> None:
        await work

    # Notifications ----------------------------------------------------------------------------

    async def notified(self, request: web.Request) -> web.Response:
        """A MobilityProcedureNotification: acknowledged at once, acted on in the background."""
        note = await request.json()
        users = [str(a["value"]) for a in note.get("associateId", []) if a.get("type") == 1]
        status = note.get("mobilityStatus")
        if status == 1:
            self._spawn(self._moveout(users, note.get("targetAppInfo") or {}))
        elif status == 3:
            for user in users:
                self.handed.pop(user, None)
            self._spawn(self._quietly(self.put_registration()))
        return web.Response(status=204)

    async def _moveout(self, users: list[str], target: dict[str, Any]) -> None:
        mine = [u for u in users if u in self.counts]
        if self.mode == "ignore":
            self._ignored = (users, target)
            return
        if not mine:
            return
        if self.mode == "decline":
            await self.put_registration(lambda doc: _set(doc, mine, appMobilityServiceLevel=1))
            return
        if self.mode == "fail":
            await self.put_registration(
                lambda doc: _set(doc, mine, contextTransferFailure="told to fail")
            )
            return
        addresses = (target.get("commInterface") or {}).get("ipAddresses") or []
        if not addresses:
            return
        url = f"http://{addresses[0]['host']}:{addresses[0]['port']}"
        for user in mine:
            await self._hand_over(user, url)
        done = [u for u in mine if u in self.handed]
        await self.put_registration(
            lambda doc: _append(doc, done, self.level, contextTransferState=1)
        )

    async def _hand_over(self, user: str, url: str) -> None:
        assert self._http is not None
        async with self._lock(user):
            if user in self.handed:
                return
            try:
                body = {"user": user, "count": self.counts[user]}
                async with self._http.post(f"{url}/mec/context", json=body) as resp:
                    if resp.status == 204:
                        self.handed[user] = url
            except (aiohttp.ClientError, TimeoutError, OSError):
                log.warning("edge_app.handover_failed", instance=self.id)

    # Control, health, index -------------------------------------------------------------------

    async def control(self, request: web.Request) -> web.Response:
        """Tests set the behaviour: ``{"mode": ..., "level": ...}``."""
        body = await request.json()
        if body.get("mode", self.mode) not in MODES or body.get("level", 3) not in (1, 2, 3):
            return web.json_response({"error": f"mode in {MODES}, level 1-3"}, status=400)
        self.mode = body.get("mode", self.mode)
        self.level = int(body.get("level", self.level))
        if self._ams and self.counts:
            await self.put_registration()
        return web.Response(status=204)

    async def retrigger(self, _request: web.Request) -> web.Response:
        """Act now on the notification ignored earlier (a slow application, for tests)."""
        if self._ignored is not None:
            users, target = self._ignored
            self._ignored = None
            self._spawn(self._moveout(users, target))
        return web.Response(status=204)

    async def state(self, _request: web.Request) -> web.Response:
        """What the instance holds."""
        return web.json_response(
            {
                "instance": self.id,
                "counts": self.counts,
                "handed": sorted(self.handed),
                "ignored": self._ignored is not None,
                "registered": self._registration is not None,
                "subscribed": self._subscribed,
            }
        )

    async def index(self, _request: web.Request) -> web.Response:
        """The cluster's name."""
        return web.Response(
            text=f"{self.cluster}\n", headers={"X-App": self.app, "X-Instance": self.instance}
        )

    async def healthz(self, _request: web.Request) -> web.Response:
        """200 once warmed up."""
        ready = time.monotonic() >= self._warm_at
        return web.json_response(
            {"ready": ready, "cluster": self.cluster},
            status=200 if ready else 503,
            headers={"X-App": self.app, "X-Instance": self.instance},
        )


def _set(doc: dict[str, Any], users: list[str], **fields: Any) -> None:
    for dev in doc["deviceInformation"]:
        if dev["associateId"]["value"] in users:
            dev.update(fields)


def _append(doc: dict[str, Any], users: list[str], level: int, **fields: Any) -> None:
    """Users already handed over are no longer in the state's list: list them, with ``fields``."""
    listed = {d["associateId"]["value"] for d in doc["deviceInformation"]}
    for user in users:
        if user not in listed:
            doc["deviceInformation"].append(
                {"associateId": {"type": 1, "value": user}, "appMobilityServiceLevel": level}
            )
    _set(doc, users, **fields)


def edge_app(instance: EdgeApp) -> web.Application:
    """The aiohttp application of one instance."""
    app = web.Application()
    app.on_startup.append(instance.start)
    app.on_cleanup.append(instance.stop)
    r = app.router
    r.add_get("/", instance.index)
    r.add_get("/healthz", instance.healthz)
    r.add_post("/count", instance.count)
    r.add_post("/mec/context", instance.accept_context)
    r.add_post("/mec/notifications", instance.notified)
    r.add_put("/fake/transfer", instance.control)
    r.add_post("/fake/retrigger", instance.retrigger)
    r.add_get("/fake/state", instance.state)
    return app


def main(argv: list[str] | None = None) -> None:
    """Run one instance until SIGTERM."""
    parser = argparse.ArgumentParser(description="One demo edge application instance.")
    parser.add_argument("--app", default="demo")
    parser.add_argument("--instance", default="default")
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--fd", type=int, default=None, help="serve on this inherited socket")
    parser.add_argument("--warmup-s", type=float, default=0.5)
    parser.add_argument("--ams-url", default=None)
    args = parser.parse_args(argv)
    state = EdgeApp(
        app=args.app,
        instance=args.instance,
        cluster=args.cluster,
        host=args.host,
        port=args.port,
        warmup_s=args.warmup_s,
        ams_url=args.ams_url,
    )
    where: dict[str, Any] = {"host": args.host, "port": args.port}
    if args.fd is not None:
        where = {"sock": socket.socket(fileno=args.fd)}
    web.run_app(edge_app(state), **where, print=None, shutdown_timeout=2)


if __name__ == "__main__":
    main()
