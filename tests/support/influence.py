"""Traffic influence in tests: an AF's notification sink, a UE with a PDU session, requests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from subscriber.fakes.core import FakeCoreServer

UE = "imsi-208930000000001"
UE_IPV4 = "10.60.0.1"
APP = "video-analytics"


@dataclass
class AfSink:
    """An HTTP/1.1 server that records the notifications it receives and answers ``status``."""

    status: int = 204
    url: str = ""
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    received: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def _handle(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        async with self.received:
            self.bodies.append(body)
            self.headers.append(dict(request.headers))
            self.received.notify_all()
        return web.Response(status=self.status)

    async def wait_for(self, count: int, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        """The first ``count`` bodies, once they have arrived."""
        async with asyncio.timeout(timeout_s), self.received:
            await self.received.wait_for(lambda: len(self.bodies) >= count)
        return self.bodies[:count]

    def change_types(self) -> list[str]:
        """The dnaiChgType of each notification received, in arrival order."""
        return [b["eventNotifs"][0]["dnaiChgType"] for b in self.bodies]


@asynccontextmanager
async def af_sink(status: int = 204) -> AsyncIterator[AfSink]:
    """An :class:`AfSink` serving on a free loopback port."""
    sink = AfSink(status=status)
    app = web.Application()
    app.router.add_post("/{tail:.*}", sink._handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    sink.url = f"http://127.0.0.1:{port}/callbacks/ti/key"
    try:
        yield sink
    finally:
        await runner.cleanup()


def ti_request(destination: str, dnai: str, **extra: Any) -> dict[str, Any]:
    """A single-UE traffic-influence request as our client sends it to free5GC."""
    return {
        "afAppId": APP,
        "afTransId": f"ti.{APP}.ue1",
        "dnn": "internet",
        "snssai": {"sst": 1, "sd": "010203"},
        "ipv4Addr": UE_IPV4,
        "subscribedEvents": ["UP_PATH_CHANGE"],
        "dnaiChgType": "EARLY_LATE",
        "notificationDestination": destination,
        "trafficRoutes": [{"dnai": dnai}],
        "suppFeat": "1",
        **extra,
    }


def with_session(fake: FakeCoreServer, supi: str = UE, ipv4: str = UE_IPV4) -> None:
    """Bring up ``supi``'s PDU session at the fake core."""
    fake.core.establish_session(supi, ipv4)
