"""The real PowerDNS serves what its API was told."""

from __future__ import annotations

import aiohttp
import dns.asyncquery
import dns.message
import dns.rdatatype
import pytest

from subscriber.stack import StackInfo

pytestmark = pytest.mark.stack


async def _a_records(name: str, port: int) -> list[str]:
    answer = await dns.asyncquery.udp(
        dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=3
    )
    return sorted(
        rr.to_text() for rrset in answer.answer if rrset.rdtype == dns.rdatatype.A for rr in rrset
    )


async def test_zone_record_replaced_and_answered(stack: StackInfo, unique: str) -> None:
    """A zone created and an A record replaced through the API are answered over DNS."""
    zone = f"z{unique}.test."
    api = f"{stack.pdns_api_url}/api/v1/servers/localhost"
    headers = {"X-API-Key": stack.pdns_api_key}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.post(
            f"{api}/zones",
            json={"name": zone, "kind": "Native", "nameservers": [f"ns1.{zone}"]},
        ) as r:
            assert r.status == 201
        for address in ("192.0.2.10", "192.0.2.20"):
            rrset = {
                "name": f"app.{zone}",
                "type": "A",
                "ttl": 5,
                "changetype": "REPLACE",
                "records": [{"content": address, "disabled": False}],
            }
            async with http.patch(f"{api}/zones/{zone}", json={"rrsets": [rrset]}) as r:
                assert r.status == 204
            assert await _a_records(f"app.{zone}", stack.pdns_dns_port) == [address]
        async with http.delete(f"{api}/zones/{zone}") as r:
            assert r.status == 204
