"""PowerDNS Authoritative (Debian's pdns-server) with the sqlite3 backend and its HTTP API.

Runs in the foreground with its own --config-dir, so the system /etc/powerdns is never read
(PowerDNS Authoritative 4.7 docs: ``backends/generic-sqlite3.html``, ``http-api/``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiohttp
import dns.asyncquery
import dns.message
import dns.rcode

from subscriber.stack.prereq import PDNS_SCHEMA, PDNS_SERVER

CONFIG = """\
launch=gsqlite3
gsqlite3-database={data}/pdns.sqlite3
local-address=127.0.0.1
local-port={dns}
socket-dir={data}
guardian=no
daemon=no
disable-syslog=yes
security-poll-suffix=
api=yes
api-key={api_key}
webserver=yes
webserver-address=127.0.0.1
webserver-port={api}
webserver-allow-from=127.0.0.0/8
loglevel=4
"""


def prepare(data: Path, ports: dict[str, int], api_key: str) -> list[str]:
    """Write the config and the schema (once), and return the server's argv."""
    data.mkdir(parents=True, exist_ok=True)
    db = data / "pdns.sqlite3"
    if not db.exists():
        with sqlite3.connect(db) as conn:
            conn.executescript(PDNS_SCHEMA.read_text())
    (data / "pdns.conf").write_text(
        CONFIG.format(data=data, dns=ports["dns"], api=ports["api"], api_key=api_key)
    )
    return [str(PDNS_SERVER), f"--config-dir={data}"]


async def healthy(api_url: str, api_key: str, dns_port: int) -> bool:
    """The API answers, and the DNS listener answers a query (REFUSED for a zone we don't host)."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http,
            http.get(f"{api_url}/api/v1/servers/localhost", headers={"X-API-Key": api_key}) as r,
        ):
            if r.status != 200:
                return False
        query = dns.message.make_query("health.invalid.", "SOA")
        answer = await dns.asyncquery.udp(query, "127.0.0.1", port=dns_port, timeout=2)
        return answer.rcode() in (dns.rcode.NOERROR, dns.rcode.REFUSED, dns.rcode.NXDOMAIN)
    except Exception:
        return False
