"""Opening the AMS: its store, its notifier and its HTTP listener, closed in reverse."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import structlog
from aiohttp import web

from subscriber.ams.api import ams_app
from subscriber.ams.notify import Notifier
from subscriber.ams.service import Ams
from subscriber.ams.store import Store
from subscriber.errors import SubscriberError
from subscriber.settings import AmsSettings

log = structlog.get_logger()


@asynccontextmanager
async def serving_ams(settings: AmsSettings) -> AsyncIterator[Ams]:
    """The AMS, listening on ``settings.host``:``settings.port`` while the block runs.

    With port 0 a free port is taken and ``settings.url`` of the yielded service names it.

    Raises:
        SubscriberError: the store cannot be used or the port cannot be bound.
    """
    async with AsyncExitStack() as stack:
        store = await stack.enter_async_context(Store(settings.db))
        # Bound first: with port 0 the notifier and the public URL must know the real port
        # before anything is served.
        sock = _bind(settings.host, settings.port)
        port = int(sock.getsockname()[1])
        bound = settings.model_copy(update={"port": port})
        notifier = await stack.enter_async_context(Notifier(bound, (settings.host, port)))
        ams = Ams(store=store, notifier=notifier, settings=bound)
        runner = web.AppRunner(
            ams_app(ams, max_body_bytes=settings.max_body_bytes), access_log=None
        )
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        await web.SockSite(runner, sock).start()
        log.info("ams.listening", port=port)
        yield ams


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SubscriberError(
            f"the AMS cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from exc
    sock.listen(128)
    sock.setblocking(False)
    return sock
