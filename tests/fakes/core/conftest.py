"""Fixtures for the fake core's tests: running fakes, an HTTP client, tokens, an h2c sink."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from subscriber.fakes.core import FakeCoreServer
from tests.support.fakecore import TokenFactory, register_af
from tests.support.h2sink import H2cSink, serving


@pytest.fixture
async def fake() -> AsyncIterator[FakeCoreServer]:
    """A free5GC-mode fake core with OAuth on and three UEs."""
    async with FakeCoreServer(ues=3) as server:
        yield server


@pytest.fixture
async def notify_fake() -> AsyncIterator[FakeCoreServer]:
    """A spec-conformant (notify-mode) fake core with OAuth on and three UEs."""
    async with FakeCoreServer(ues=3, mode="notify") as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP/1.1 client session."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def token(http: aiohttp.ClientSession) -> TokenFactory:
    """Returns ``await token(base, scope, target="AMF")``: a registered AF's access token."""

    async def get(base: str, scope: str, target: str = "AMF") -> str:
        nf_id = await register_af(http, base)
        form = {
            "grant_type": "client_credentials",
            "nfInstanceId": nf_id,
            "nfType": "AF",
            "targetNfType": target,
            "scope": scope,
        }
        async with http.post(f"{base}/oauth2/token", data=form) as response:
            assert response.status == 200
            body = await response.json()
        return str(body["access_token"])

    return get


@pytest.fixture
async def h2c_sink() -> AsyncIterator[H2cSink]:
    """An h2c prior-knowledge server on a free loopback port."""
    async with serving() as sink:
        yield sink
