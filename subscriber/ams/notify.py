"""Delivering AMS notifications to the callbackReference of a subscription, and only where the
operator allows.

A callback URL is chosen by whoever subscribes, so posting to it is a server-side request
forgery waiting to happen: a subscriber could point it at the cloud metadata address, at the
Temporal frontend or PowerDNS API on loopback, or at the AMS itself. Every destination must lie
in ``ams.callback_networks`` (none by default), is never the AMS's own listener, and is checked
on the address actually connected to: an IP literal directly, a name through a resolver that
drops every address outside those networks (so a name that resolved well at subscription time and
badly later, DNS rebinding, reaches nothing). Redirects are not followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import structlog
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from subscriber.ams.models import is_ip_literal
from subscriber.errors import RequestRejected
from subscriber.settings import AmsSettings

log = structlog.get_logger()

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def allowed(address: str, port: int, networks: Sequence[Network], own: tuple[str, int]) -> bool:
    """Whether a callback may go to ``address``:``port``."""
    ip = ipaddress.ip_address(address.strip("[]"))
    own_host, own_port = own
    every_address = own_host in ("", "0.0.0.0", "::")  # noqa: S104 - recognising, not binding
    if port == own_port and (str(ip) == own_host or (every_address and ip.is_loopback)):
        return False
    return any(ip in net for net in networks)


class _GuardedResolver(AbstractResolver):
    """Resolves names, keeping only the addresses a callback may reach."""

    def __init__(self, networks: Sequence[Network], own: tuple[str, int]) -> None:
        self._inner = DefaultResolver()
        self._networks = networks
        self._own = own

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        kept = [r for r in found if allowed(r["host"], port, self._networks, self._own)]
        if not kept:
            raise OSError(f"{host} resolves to no address callbacks may reach")
        return kept

    async def close(self) -> None:
        await self._inner.close()


class Notifier:
    """POSTs notifications to allowed callback URLs; an async context manager.

    Args:
        settings: allowed networks, timeout and attempts.
        own: the AMS's own listening (host, port), never a destination.
    """

    def __init__(self, settings: AmsSettings, own: tuple[str, int]) -> None:
        self._s = settings
        self._networks = [ipaddress.ip_network(n, strict=False) for n in settings.callback_networks]
        self._own = own
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Notifier:
        connector = aiohttp.TCPConnector(resolver=_GuardedResolver(self._networks, self._own))
        self._http = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self._s.notify_timeout_s),
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _literal_ok(self, host: str, port: int) -> bool:
        return allowed(host, port, self._networks, self._own)

    async def vet(self, url: str) -> None:
        """Refuse a callback URL that could never be delivered to (at subscription time).

        Raises:
            RequestRejected: 422, the destination is not allowed or does not resolve.
        """
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
        if is_ip_literal(host):
            if not self._literal_ok(host, port):
                raise _forbidden(url)
            return
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port)
        except OSError as exc:
            raise RequestRejected(
                422, "Callback not reachable", "callbackReference: its host does not resolve"
            ) from exc
        if not any(self._literal_ok(str(info[4][0]), port) for info in infos):
            raise _forbidden(url)

    async def deliver(self, url: str, body: dict[str, Any], *, what: str) -> bool:
        """POST ``body`` to ``url``; True once it answered 2xx. Tries ``notify_attempts`` times."""
        assert self._http is not None, "use Notifier as an async context manager"
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
        if is_ip_literal(host) and not self._literal_ok(host, port):
            log.warning("ams.callback_refused", what=what)
            return False
        delay_s = 0.2
        for attempt in range(1, self._s.notify_attempts + 1):
            try:
                async with self._http.post(url, json=body, allow_redirects=False) as resp:
                    if 200 <= resp.status < 300:
                        return True
                    outcome = f"status {resp.status}"
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                outcome = type(exc).__name__
            log.info("ams.notify_retry", what=what, attempt=attempt, outcome=outcome)
            if attempt < self._s.notify_attempts:
                await asyncio.sleep(delay_s)
                delay_s *= 2
        log.warning("ams.notify_failed", what=what, attempts=self._s.notify_attempts)
        return False


def _forbidden(url: str) -> RequestRejected:
    return RequestRejected(
        422,
        "Callback destination not allowed",
        "callbackReference: notifications may only go to the networks in ams.callback_networks "
        "(and never to the AMS itself)",
    )
