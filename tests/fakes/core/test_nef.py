"""Tests for the fake NEF's monitoring-event subscriptions."""

from __future__ import annotations

import aiohttp

from subscriber.fakes.core import FakeCoreServer

BASE = "/3gpp-monitoring-event/v1/af1/subscriptions"
VALID = {
    "notificationDestination": "http://cb/callbacks/nef/k",
    "monitoringType": "LOCATION_REPORTING",
    "monitorExpireTime": "2030-01-01T00:00:00Z",
    "msisdn": "33611223344",
}


async def test_lifecycle_without_token(fake: FakeCoreServer, http: aiohttp.ClientSession) -> None:
    """Create (Location and self link), replace and delete work with no Authorization header."""
    async with http.post(fake.url + BASE, json=VALID) as response:
        assert response.status == 201
        location = response.headers["Location"]
        assert (await response.json())["self"] == location
    async with http.put(location, json={**VALID, "maximumNumberOfReports": 3}) as response:
        assert response.status == 200
    async with http.delete(location) as response:
        assert response.status == 204
    async with http.delete(location) as response:
        assert response.status == 404


async def test_refuses_unbounded_and_ip_only_subscriptions(
    fake: FakeCoreServer, http: aiohttp.ClientSession
) -> None:
    """Neither maximumNumberOfReports nor monitorExpireTime, or an IP-only UE, gets 400."""
    unbounded = {k: v for k, v in VALID.items() if k != "monitorExpireTime"}
    ip_only = {k: v for k, v in VALID.items() if k != "msisdn"} | {"ipv4Addr": "10.60.0.1"}
    for body in (unbounded, ip_only):
        async with http.post(fake.url + BASE, json=body) as response:
            assert response.status == 400
    assert fake.core.nef.subscriptions == {}
