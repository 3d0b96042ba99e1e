"""PowerDNS adapter: replace an application's A record through the HTTP API, and ask the
authoritative server what it answers.

The API calls follow the PowerDNS Authoritative HTTP API (``PATCH /api/v1/servers/{id}/zones/
{zone}`` with ``changetype`` ``REPLACE`` or ``DELETE``; PowerDNS docs ``http-api/zone.html``). The
API purges the server's caches, so the authoritative answer changes at once; confirming it with a
real DNS query is still what the workflow relies on, not the API's 204.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from types import TracebackType

import aiohttp
import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype

from subscriber.errors import SubscriberError
from subscriber.settings import PowerDnsSettings


class DnsError(SubscriberError):
    """Raised when PowerDNS refuses or fails a change or a query.

    ``permanent`` errors (wrong key, unknown zone, invalid record) are not worth retrying.
    """

    def __init__(self, detail: str, *, permanent: bool) -> None:
        super().__init__(detail)
        self.permanent = permanent


async def server_address(host: str, port: int) -> str:
    """The address to query ``host`` at: dnspython sends to addresses, not names.

    A name (``powerdns`` on a compose network) is resolved through the system resolver on
    every call, so a server that comes back at a new address is found again.
    """
    try:
        ipaddress.ip_address(host)
    except ValueError:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        return str(infos[0][4][0])
    return host


def record_name(app: str, instance: str, zone: str) -> str:
    """The DNS name clients use for one application instance: ``{instance}.{app}.{zone}``."""
    return f"{instance}.{app}.{zone if zone.endswith('.') else zone + '.'}"


class PowerDns:
    """The PowerDNS HTTP API and DNS listener of one authoritative server.

    Args:
        settings: API URL and key, server id, zone, TTL and the DNS listener's address.
    """

    def __init__(self, settings: PowerDnsSettings) -> None:
        self._settings = settings
        self._http: aiohttp.ClientSession | None = None
        self._base = f"{settings.api_url.rstrip('/')}/api/v1/servers/{settings.server_id}"

    async def __aenter__(self) -> PowerDns:
        self._http = aiohttp.ClientSession(
            headers={"X-API-Key": self._settings.api_key},
            timeout=aiohttp.ClientTimeout(total=10),
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

    @property
    def zone(self) -> str:
        """The zone the records live in, fully qualified."""
        zone = self._settings.zone
        return zone if zone.endswith(".") else zone + "."

    async def _call(self, method: str, path: str, body: object) -> int:
        assert self._http is not None, "use PowerDns as an async context manager"
        try:
            async with self._http.request(method, f"{self._base}{path}", json=body) as resp:
                text = await resp.text()
                if resp.status >= 500:
                    raise DnsError(f"PowerDNS {method} {path}: {resp.status}", permanent=False)
                if resp.status >= 400 and resp.status != 409:
                    raise DnsError(
                        f"PowerDNS {method} {path}: {resp.status} {text[:200]}", permanent=True
                    )
                return resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DnsError(f"PowerDNS API unreachable: {exc!r}", permanent=False) from exc

    async def ensure_zone(self) -> None:
        """Create the zone (Native) unless it exists; a 409 means it does."""
        await self._call(
            "POST",
            "/zones",
            {"name": self.zone, "kind": "Native", "nameservers": [f"ns1.{self.zone}"]},
        )

    async def replace_a(self, name: str, addresses: list[str]) -> None:
        """Make ``name`` answer exactly ``addresses`` (delete the record when empty)."""
        rrset: dict[str, object] = {"name": name, "type": "A"}
        if addresses:
            rrset |= {
                "ttl": self._settings.record_ttl_s,
                "changetype": "REPLACE",
                "records": [{"content": a, "disabled": False} for a in addresses],
            }
        else:
            rrset["changetype"] = "DELETE"
        await self._call("PATCH", f"/zones/{self.zone}", {"rrsets": [rrset]})

    async def query_a(self, name: str) -> list[str]:
        """The A addresses the authoritative server answers for ``name`` (empty for NXDOMAIN)."""
        query = dns.message.make_query(name, dns.rdatatype.A)
        try:
            where = await server_address(self._settings.dns_host, self._settings.dns_port)
            answer = await dns.asyncquery.udp(query, where, port=self._settings.dns_port, timeout=2)
        except (dns.exception.DNSException, OSError) as exc:
            raise DnsError(f"DNS query failed: {exc!r}", permanent=False) from exc
        if answer.rcode() == dns.rcode.NXDOMAIN:
            return []
        if answer.rcode() != dns.rcode.NOERROR:
            raise DnsError(f"DNS answered {dns.rcode.to_text(answer.rcode())}", permanent=False)
        return sorted(
            rd.address for rrset in answer.answer if rrset.rdtype == dns.rdatatype.A for rd in rrset
        )
