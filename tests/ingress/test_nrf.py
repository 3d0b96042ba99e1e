"""Tests for the NRF client against the real free5GC NRF v1.4.3 (OAuth2 on, FerretDB).

The AMF is the fake one (free5GC's AMF cannot be built here, and without SCTP it would see no
UE): it registers its namf-evts profile in the real NRF and checks our tokens the way free5GC's
AMF does, RS512 with the NRF's certificate and the scope. The fake NRF is used only for an NRF
with OAuth2 off (the real one is configured as free5GC ships it, with OAuth2 on).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import jwt
import orjson
import pytest

from subscriber.errors import CoreUnavailable
from subscriber.fakes.core import ExternalNrf, FakeCoreServer
from subscriber.ingress.nrf import NrfClient, load_instance_id
from subscriber.sbi.nrf import NfProfile, parse_token_error
from subscriber.settings import CoreSettings
from subscriber.stack.free5gc import RealNrf
from tests.support.certs import make_ca

POLL = b'{"subscription":{"eventList":[{"type":"LOCATION_REPORT"}],"anyUE":true}}'


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TokenRequests:
    """Counts the client's POSTs to /oauth2/token (an aiohttp trace)."""

    def __init__(self) -> None:
        self.count = 0
        self.trace = aiohttp.TraceConfig()
        self.trace.on_request_start.append(self._started)

    async def _started(self, _session: object, _ctx: object, params: Any) -> None:
        if params.url.path == "/oauth2/token":
            self.count += 1


@pytest.fixture
def tokens() -> TokenRequests:
    """A counter of token requests."""
    return TokenRequests()


@pytest.fixture
async def session(tokens: TokenRequests) -> AsyncIterator[aiohttp.ClientSession]:
    """The HTTP/1.1 session the client calls through (the NRF also speaks h2c)."""
    async with aiohttp.ClientSession(trace_configs=[tokens.trace]) as http:
        yield http


@pytest.fixture
async def amf(real_nrf: RealNrf) -> AsyncIterator[FakeCoreServer]:
    """The fake AMF (with SMF and NEF), registered in the real NRF, checking its tokens."""
    async with FakeCoreServer(ues=2, nrf=ExternalNrf(real_nrf.url, real_nrf.certificate)) as fake:
        yield fake


def _settings(tmp_path: Path, **values: object) -> CoreSettings:
    return CoreSettings.model_validate({"state_dir": tmp_path, "retry_attempts": 2, **values})


async def _raw(session: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> Any:
    async with session.request(method, url, **kw) as answer:
        return SimpleNamespace(status=answer.status, body=orjson.loads(await answer.read()))


def test_instance_id_is_a_uuid4_kept_in_state_dir(tmp_path: Path) -> None:
    """The generated id is UUID v4 and the same on the next start; a configured id wins."""
    first = load_instance_id(_settings(tmp_path))
    assert uuid.UUID(first).version == 4
    assert load_instance_id(_settings(tmp_path)) == first
    assert load_instance_id(_settings(tmp_path, nf_instance_id="x")) == "x"


async def test_registers_then_caches_and_refreshes_tokens(
    real_nrf: RealNrf,
    amf: FakeCoreServer,
    session: aiohttp.ClientSession,
    tokens: TokenRequests,
    tmp_path: Path,
) -> None:
    """The first token registers the AF; the NRF's RS512 token (1000 s) is reused until 80 %
    of its lifetime, then a new one is asked for."""
    clock = Clock()
    nrf = NrfClient(
        settings=_settings(tmp_path, nrf_url=real_nrf.url), session=session, clock=clock
    )
    first = await nrf.bearer("AMF", "namf-evts")
    assert nrf.registrations == 1
    assert first is not None
    assert jwt.get_unverified_header(first)["alg"] == "RS512"
    claims = jwt.decode(first, options={"verify_signature": False})
    assert (claims["sub"], claims["scope"], claims["exp"] - claims["iat"]) == (
        nrf.instance_id,
        "namf-evts",
        1000,
    )
    assert await nrf.bearer("AMF", "namf-evts") == first
    clock.now += 799
    await nrf.bearer("AMF", "namf-evts")
    assert tokens.count == 1
    clock.now += 2
    await nrf.bearer("AMF", "namf-evts")
    assert tokens.count == 2


async def test_token_errors_are_free5gcs_and_the_client_reports_them(
    real_nrf: RealNrf, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """The NRF's exact OAuth2 error bodies, and what the client makes of them."""
    nrf = NrfClient(settings=_settings(tmp_path, nrf_url=real_nrf.url), session=session)
    url = f"{real_nrf.url}/oauth2/token"
    form = {
        "grant_type": "client_credentials",
        "nfInstanceId": nrf.instance_id,
        "nfType": "AF",
        "targetNfType": "AMF",
        "scope": "namf-evts",
    }
    unregistered = await _raw(session, "POST", url, data=form)
    assert (unregistered.status, unregistered.body) == (400, {"error": "invalid_client"})
    # No AMF is registered yet: even registered, the client gets invalid_client (no producer).
    with pytest.raises(CoreUnavailable, match="400 invalid_client"):
        await nrf.bearer("AMF", "namf-evts")
    assert nrf.registrations == 2
    password = await _raw(session, "POST", url, data={**form, "grant_type": "password"})
    assert (password.status, password.body) == (400, {"error": "unsupported_grant_type"})
    extra = await _raw(session, "POST", url, data={**form, "foo": "bar"})
    assert (extra.status, extra.body["detail"]) == (400, "unsupported form key: foo")
    for answer in (unregistered, password):
        assert parse_token_error(orjson.dumps(answer.body)) == answer.body["error"]
    listing = await _raw(session, "GET", f"{real_nrf.url}/nnrf-nfm/v1/nf-instances")
    assert (listing.status, listing.body) == (
        401,
        {"error": "verify OAuth Authorization header invalid"},
    )


async def test_a_scope_the_amf_lacks_is_invalid_scope(
    real_nrf: RealNrf, amf: FakeCoreServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A scope that is no service of the registered AMF: 400 invalid_scope, surfaced as such."""
    nrf = NrfClient(settings=_settings(tmp_path, nrf_url=real_nrf.url), session=session)
    with pytest.raises(CoreUnavailable, match="400 invalid_scope"):
        await nrf.bearer("AMF", "namf-nonexistent")


async def test_discovers_the_amf_by_type(
    real_nrf: RealNrf, amf: FakeCoreServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Discovery by target-nf-type yields the AMF's apiPrefix and instance id (service-names
    would fail: FerretDB refuses the NRF's filter); a static amf_url wins."""
    nrf = NrfClient(settings=_settings(tmp_path, nrf_url=real_nrf.url), session=session)
    (found,) = await nrf.discover("AMF")
    assert (found.nf_instance_id, found.api_root) == (amf.core.amf.instance_id, amf.url)
    assert await nrf.discover("UDM") == []
    token = await nrf.bearer("NRF", "nnrf-disc")
    by_service = await _raw(
        session,
        "GET",
        f"{real_nrf.url}/nnrf-disc/v1/nf-instances?target-nf-type=AMF&requester-nf-type=AF"
        "&service-names=namf-evts",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert by_service.status == 500
    static = NrfClient(
        settings=_settings(tmp_path, nrf_url=real_nrf.url, amf_url="http://amf.example/"),
        session=session,
    )
    (pinned,) = await static.discover("AMF")
    assert pinned.api_root == "http://amf.example"


async def test_registers_again_after_an_nrf_restart(
    real_nrf: RealNrf,
    amf: FakeCoreServer,
    session: aiohttp.ClientSession,
    tokens: TokenRequests,
    tmp_path: Path,
) -> None:
    """The NRF forgets every profile when it restarts: at the next token the client gets
    invalid_client, registers again and carries on; the AMF accepts the new token."""
    clock = Clock()
    nrf = NrfClient(
        settings=_settings(tmp_path, nrf_url=real_nrf.url), session=session, clock=clock
    )
    await nrf.bearer("AMF", "namf-evts")
    await real_nrf.restart()
    await amf.core.register()  # the AMF registers again at its next heartbeat
    clock.now += 1000
    response = await nrf.call(
        "AMF", "namf-evts", "POST", f"{amf.url}/namf-evts/v1/subscriptions", POLL
    )
    assert response.status == 201
    assert nrf.registrations == 2
    assert tokens.count == 3  # the first, the refused one, the one after registering again


async def test_the_fake_amf_checks_tokens_like_free5gc(
    real_nrf: RealNrf, amf: FakeCoreServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """RS512 with the NRF's key and the route's scope: a token of another scope, or signed by
    another key, gets free5GC's 401; the client drops a refused token and retries once."""
    nrf = NrfClient(settings=_settings(tmp_path, nrf_url=real_nrf.url), session=session)
    subscriptions = f"{amf.url}/namf-evts/v1/subscriptions"
    other_scope = await nrf.bearer("NRF", "nnrf-disc")
    rogue = make_ca(tmp_path / "rogue", "rogue")
    forged = jwt.encode(
        {"sub": nrf.instance_id, "scope": "namf-evts", "exp": 2_000_000_000},
        rogue.private_key,
        algorithm="RS512",
    )
    for token in (other_scope, forged):
        refused = await _raw(
            session, "POST", subscriptions, data=POLL, headers={"Authorization": f"Bearer {token}"}
        )
        assert refused.status == 401
        assert set(refused.body) == {"error"}
    await nrf.bearer("AMF", "namf-evts")
    nrf._tokens[("AMF", "namf-evts")].value = forged
    response = await nrf.call("AMF", "namf-evts", "POST", subscriptions, POLL)
    assert response.status == 201


async def test_leaving_deregisters(
    real_nrf: RealNrf, amf: FakeCoreServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A clean exit removes our profile from the NRF: another client no longer finds it."""
    settings = _settings(tmp_path / "a", nrf_url=real_nrf.url)
    async with NrfClient(settings=settings, session=session) as nrf:
        await nrf.bearer("AMF", "namf-evts")
        ours = nrf.instance_id
    other = NrfClient(settings=_settings(tmp_path / "b", nrf_url=real_nrf.url), session=session)
    token = await other.bearer("NRF", "nnrf-disc")
    listing = await _raw(
        session,
        "GET",
        f"{real_nrf.url}/nnrf-disc/v1/nf-instances?target-nf-type=AF&requester-nf-type=AF",
        headers={"Authorization": f"Bearer {token}"},
    )
    found = [p["nfInstanceId"] for p in listing.body.get("nfInstances") or []]
    assert ours not in found
    assert other.instance_id in found


async def test_without_oauth_no_token_is_sent(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """With OAuth off (the fake NRF: the real one runs with OAuth on, as free5GC ships it) the
    client neither registers for tokens nor sends Authorization."""
    async with FakeCoreServer(ues=1, oauth=False) as fake:
        nrf = NrfClient(
            settings=_settings(tmp_path, nrf_url=fake.url, oauth=False), session=session
        )
        assert await nrf.auth_headers("AMF", "namf-evts") == {}
        (found,) = await nrf.discover("AMF")
        response = await nrf.call(
            "AMF",
            "namf-loc",
            "POST",
            f"{found.api_root}/namf-loc/v1/imsi-208930000000001/provide-loc-info",
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
