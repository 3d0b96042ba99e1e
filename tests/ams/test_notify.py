"""Where notifications may go: checked on the address connected to, names included."""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from subscriber.ams.notify import Notifier, allowed
from subscriber.settings import AmsSettings

NETS = [ipaddress.ip_network("127.0.1.0/24")]


@pytest.mark.parametrize(
    ("address", "port", "ok"),
    [
        ("127.0.1.9", 80, True),
        ("127.0.2.9", 80, False),
        ("169.254.169.254", 80, False),
        ("127.0.1.9", 8810, True),  # the AMS's port on another address of the allowed network
        ("127.0.0.1", 8810, False),  # the AMS itself
    ],
)
def test_allowed(address: str, port: int, ok: bool) -> None:
    """Only the allowed networks, never the AMS's own listener."""
    assert allowed(address, port, NETS, ("127.0.0.1", 8810)) is ok


@contextlib.asynccontextmanager
async def listening(app: web.Application, host: str) -> AsyncIterator[int]:
    """``app`` served on ``host`` at a free port, while the block runs."""
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, host, 0).start()
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


async def test_a_name_that_resolves_outside_the_networks_is_not_reached(tmp_path: Path) -> None:
    """At delivery time a name is resolved through the guard: localhost reaches nothing when only
    127.0.1.0/24 is allowed, though a service listens there (DNS rebinding gets nowhere)."""
    hits: list[str] = []

    async def sink(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/cb", sink)
    async with listening(app, "127.0.0.1") as port:
        settings = AmsSettings(
            callback_networks=["127.0.1.0/24"], notify_attempts=1, db=tmp_path / "x"
        )
        async with Notifier(settings, ("127.0.0.1", 1)) as notifier:
            assert not await notifier.deliver(f"http://localhost:{port}/cb", {}, what="test")
            assert not await notifier.deliver(f"http://127.0.0.1:{port}/cb", {}, what="test")
        opened = AmsSettings(
            callback_networks=["127.0.0.0/24"], notify_attempts=1, db=tmp_path / "x"
        )
        async with Notifier(opened, ("127.0.0.1", 1)) as notifier:
            assert await notifier.deliver(f"http://localhost:{port}/cb", {}, what="test")
    assert hits == ["/cb"]


async def test_redirects_are_not_followed(tmp_path: Path) -> None:
    """A callback answering 307 to somewhere else is a failed delivery, not a second request."""
    hits: list[str] = []

    async def redirect(_request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect("http://127.0.0.1:1/metadata")

    async def target(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/cb", redirect)
    app.router.add_post("/metadata", target)
    async with listening(app, "127.0.1.1") as port:
        settings = AmsSettings(
            callback_networks=["127.0.1.0/24"], notify_attempts=1, db=tmp_path / "x"
        )
        async with Notifier(settings, ("127.0.0.1", 1)) as notifier:
            assert not await notifier.deliver(f"http://127.0.1.1:{port}/cb", {}, what="test")
    assert hits == []


def test_a_bad_network_setting_is_refused() -> None:
    """ams.callback_networks holds CIDRs or the settings do not load."""
    with pytest.raises(ValueError, match="not a CIDR"):
        AmsSettings(callback_networks=["edge-clusters"])
