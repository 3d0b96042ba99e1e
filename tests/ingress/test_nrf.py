"""Tests for the NRF client against the fake free5GC core with OAuth on."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from subscriber.errors import CoreUnavailable
from subscriber.fakes.core import FakeCoreServer
from subscriber.ingress.nrf import NrfClient, load_instance_id
from subscriber.sbi.nrf import NfProfile
from subscriber.settings import CoreSettings


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def fake() -> AsyncIterator[FakeCoreServer]:
    """A free5GC-mode fake core with OAuth on."""
    async with FakeCoreServer(ues=2) as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """The HTTP/1.1 session the client calls through."""
    async with aiohttp.ClientSession() as http:
        yield http


def _settings(tmp_path: Path, **values: object) -> CoreSettings:
    return CoreSettings.model_validate({"state_dir": tmp_path, "retry_attempts": 2, **values})


def test_instance_id_is_a_uuid4_kept_in_state_dir(tmp_path: Path) -> None:
    """The generated id is UUID v4 and the same on the next start; a configured id wins."""
    first = load_instance_id(_settings(tmp_path))
    assert uuid.UUID(first).version == 4
    assert load_instance_id(_settings(tmp_path)) == first
    assert load_instance_id(_settings(tmp_path, nf_instance_id="x")) == "x"


async def test_registers_then_caches_and_refreshes_tokens(
    fake: FakeCoreServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """The first token registers the AF; tokens are reused until 80% of expires_in."""
    clock = Clock()
    nrf = NrfClient(settings=_settings(tmp_path, nrf_url=fake.url), session=session, clock=clock)
    first = await nrf.bearer("AMF", "namf-evts")
    assert nrf.instance_id in fake.core.nrf.profiles
    assert await nrf.bearer("AMF", "namf-evts") == first
    assert fake.core.nrf.tokens_issued == 1
    clock.now += 799
    await nrf.bearer("AMF", "namf-evts")
    assert fake.core.nrf.tokens_issued == 1
    clock.now += 2
    await nrf.bearer("AMF", "namf-evts")
    assert fake.core.nrf.tokens_issued == 2


async def test_registers_again_after_nrf_restart(
    fake: FakeCoreServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """When the NRF answers invalid_client the client registers again and gets its token."""
    clock = Clock()
    nrf = NrfClient(settings=_settings(tmp_path, nrf_url=fake.url), session=session, clock=clock)
    await nrf.bearer("AMF", "namf-evts")
    fake.core.nrf.restart()
    clock.now += 1000
    assert await nrf.bearer("AMF", "namf-evts")
    assert nrf.registrations == 2
    assert nrf.instance_id in fake.core.nrf.profiles


async def test_discovers_the_amf_or_uses_the_static_url(
    fake: FakeCoreServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Discovery yields the AMF's apiPrefix and instance id; a static amf_url wins."""
    nrf = NrfClient(settings=_settings(tmp_path, nrf_url=fake.url), session=session)
    (amf,) = await nrf.discover("AMF")
    assert (amf.nf_instance_id, amf.api_root) == (fake.core.amf.instance_id, fake.url)
    assert await nrf.discover("UDM") == []
    static = NrfClient(
        settings=_settings(tmp_path, nrf_url=fake.url, amf_url="http://amf.example/"),
        session=session,
    )
    (pinned,) = await static.discover("AMF")
    assert pinned.api_root == "http://amf.example"


async def test_call_retries_once_with_a_new_token_after_401(
    fake: FakeCoreServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A token the AMF refuses is dropped and the call is repeated with a fresh one."""
    nrf = NrfClient(settings=_settings(tmp_path, nrf_url=fake.url), session=session)
    await nrf.bearer("AMF", "namf-evts")
    nrf._tokens[("AMF", "namf-evts")].value = "forged.token.value"
    response = await nrf.call(
        "AMF",
        "namf-evts",
        "POST",
        f"{fake.url}/namf-evts/v1/subscriptions",
        b'{"subscription":{"eventList":[{"type":"LOCATION_REPORT"}],"anyUE":true}}',
    )
    assert response.status == 201


async def test_without_oauth_no_token_is_sent(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """With OAuth off the client neither registers for tokens nor sends Authorization."""
    async with FakeCoreServer(ues=1, oauth=False) as fake:
        nrf = NrfClient(
            settings=_settings(tmp_path, nrf_url=fake.url, oauth=False), session=session
        )
        assert await nrf.auth_headers("AMF", "namf-evts") == {}
        (amf,) = await nrf.discover("AMF")
        response = await nrf.call(
            "AMF",
            "namf-loc",
            "POST",
            f"{amf.api_root}/namf-loc/v1/imsi-208930000000001/provide-loc-info",
            b"{}",
        )
        assert response.status == 200


async def test_unreachable_nrf_raises_core_unavailable_after_retries(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Connection failures are retried, then surface as CoreUnavailable."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    nrf = NrfClient(
        settings=_settings(tmp_path, nrf_url=f"http://127.0.0.1:{port}"), session=session
    )
    with pytest.raises(CoreUnavailable):
        await nrf.bearer("AMF", "namf-evts")


async def test_leaving_deregisters(
    fake: FakeCoreServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A clean exit removes our profile from the NRF."""
    async with NrfClient(settings=_settings(tmp_path, nrf_url=fake.url), session=session) as nrf:
        await nrf.bearer("AMF", "namf-evts")
        assert nrf.instance_id in fake.core.nrf.profiles
    assert nrf.instance_id not in fake.core.nrf.profiles


def test_api_root_prefers_api_prefix_then_endpoints_then_addresses() -> None:
    """apiPrefix wins; else the first IP endpoint; else an FQDN or profile address."""
    base = {"nfInstanceId": "x", "nfType": "AMF"}
    service = {"serviceInstanceId": "0", "serviceName": "namf-evts", "scheme": "http"}
    with_prefix = NfProfile.model_validate(
        {**base, "nfServices": [{**service, "apiPrefix": "http://amf:8000/"}]}
    )
    with_end_point = NfProfile.model_validate(
        {
            **base,
            "nfServices": [
                {**service, "ipEndPoints": [{"ipv4Address": "10.0.0.1", "port": 29518}]}
            ],
        }
    )
    with_address = NfProfile.model_validate(
        {**base, "ipv4Addresses": ["10.0.0.2"], "nfServices": [service]}
    )
    suspended = NfProfile.model_validate(
        {**base, "nfServices": [{**service, "nfServiceStatus": "SUSPENDED", "apiPrefix": "x"}]}
    )
    assert with_prefix.api_root("namf-evts") == "http://amf:8000"
    assert with_end_point.api_root("namf-evts") == "http://10.0.0.1:29518"
    assert with_address.api_root("namf-evts") == "http://10.0.0.2"
    assert suspended.api_root("namf-evts") is None
    assert with_prefix.api_root("namf-loc") is None
