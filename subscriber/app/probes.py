"""Health endpoints of the long-running processes that have no HTTP server of their own.

``subscriber consume`` and ``subscriber worker`` serve, on their probe port:

* ``GET /healthz``: 200 while the process runs (liveness);
* ``GET /readyz``: 200 when the process does its work, else 503 with a problem body naming why
  (the consumer: its group assigned it partitions, possibly none, and it restored them; the
  worker: Temporal answers its health check);
* ``GET /metrics``: the process's Prometheus metrics (the consumer's; the worker exports its own
  through the Temporal runtime on ``relocation.metrics_port``).

Anything else is a 404 problem. The server is an async context manager entered on the process's
stack, after what it reports on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType

import orjson
import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = structlog.get_logger()

Readiness = Callable[[], Awaitable[str | None]]
"""None when ready, else why not (in words an operator can act on)."""

_PROBLEM = "application/problem+json"


class ProbeServer:
    """``/healthz``, ``/readyz`` and (optionally) ``/metrics`` on ``host:port``.

    Args:
        host: the address to bind.
        port: the port (0: any free one, see :attr:`port` once entered).
        ready: says whether the process is ready.
        metrics: serve the default Prometheus registry on ``/metrics``.
    """

    def __init__(self, *, host: str, port: int, ready: Readiness, metrics: bool = True) -> None:
        self._host = host
        self._port = port
        self._ready = ready
        self._metrics = metrics
        self._runner: web.AppRunner | None = None
        self.port = port

    async def __aenter__(self) -> ProbeServer:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        if self._metrics:
            app.router.add_get("/metrics", self._metrics_page)
        app.middlewares.append(_problems)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        for address in self._runner.addresses:  # the bound port, when 0 asked for any
            self.port = int(address[1])
        log.info("probes.serving", port=self.port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        why = await self._ready()
        if why is None:
            return web.json_response({"status": "ready"})
        return _problem(503, "Service Unavailable", why)

    async def _metrics_page(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def _problem(status: int, title: str, detail: str) -> web.Response:
    body = orjson.dumps({"status": status, "title": title, "detail": detail})
    return web.Response(status=status, body=body, content_type=_PROBLEM)


@web.middleware
async def _problems(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        return _problem(exc.status, exc.reason, f"{request.method} {request.path}: {exc.reason}")
