"""Tests for the fake NRF: registration, tokens, discovery and restart, as free5GC does them."""

from __future__ import annotations

import uuid

import aiohttp

from subscriber.fakes.core import FakeCoreServer
from tests.support.fakecore import TokenFactory, register_af


async def test_register_needs_no_token_and_answers_201_then_200(
    fake: FakeCoreServer, http: aiohttp.ClientSession
) -> None:
    """NFRegister sits outside the OAuth middleware; a second PUT of the same id is an update."""
    nf_id = str(uuid.uuid4())
    url = f"{fake.url}/nnrf-nfm/v1/nf-instances/{nf_id}"
    profile = {"nfInstanceId": nf_id, "nfType": "AF", "nfStatus": "REGISTERED"}
    async with http.put(url, json=profile) as first:
        assert first.status == 201
        assert first.headers["Location"].endswith(nf_id)
        assert (await first.json())["customInfo"] == {"oauth2": True}
    async with http.put(url, json=profile) as second:
        assert second.status == 200


async def test_register_rejects_non_uuid4_ids_and_unknown_nf_types(
    fake: FakeCoreServer, http: aiohttp.ClientSession
) -> None:
    """nfInstanceId must be a UUID v4 and nfType one of the NRF's types."""
    v1 = str(uuid.uuid1())
    async with http.put(
        f"{fake.url}/nnrf-nfm/v1/nf-instances/{v1}", json={"nfInstanceId": v1, "nfType": "AF"}
    ) as response:
        assert response.status == 400
    v4 = str(uuid.uuid4())
    async with http.put(
        f"{fake.url}/nnrf-nfm/v1/nf-instances/{v4}", json={"nfInstanceId": v4, "nfType": "XYZ"}
    ) as response:
        assert response.status == 400


async def test_token_errors_follow_the_oauth2_codes(
    fake: FakeCoreServer, http: aiohttp.ClientSession
) -> None:
    """Unknown keys, unregistered clients and foreign scopes get their OAuth2 error codes."""
    nf_id = await register_af(http, fake.url)
    base = {"grant_type": "client_credentials", "nfInstanceId": nf_id, "nfType": "AF"}
    cases = [
        (
            {**base, "targetNfType": "AMF", "scope": "namf-evts", "client_id": "x"},
            "invalid_request",
        ),
        (
            {**base, "targetNfType": "AMF", "scope": "namf-evts", "grant_type": "password"},
            "unsupported_grant_type",
        ),
        (
            {
                **base,
                "nfInstanceId": str(uuid.uuid4()),
                "targetNfType": "AMF",
                "scope": "namf-evts",
            },
            "invalid_client",
        ),
        ({**base, "nfType": "NEF", "targetNfType": "AMF", "scope": "namf-evts"}, "invalid_client"),
        ({**base, "targetNfType": "AMF", "scope": "nsmf-pdusession"}, "invalid_scope"),
    ]
    for form, error in cases:
        async with http.post(f"{fake.url}/oauth2/token", data=form) as response:
            assert response.status == 400, error
            assert (await response.json())["error"] == error
    form = {**base, "targetNfType": "AMF", "scope": "namf-evts namf-loc"}
    async with http.post(f"{fake.url}/oauth2/token", data=form) as response:
        granted = await response.json()
    assert granted["token_type"] == "Bearer"
    assert granted["expires_in"] == 1000
    assert granted["scope"] == "namf-evts namf-loc"


async def test_discovery_needs_an_nnrf_disc_token(
    fake: FakeCoreServer, http: aiohttp.ClientSession, token: TokenFactory
) -> None:
    """Without a token, or with an AMF-scoped one, discovery answers gin's 401 {"error": ...}."""
    url = f"{fake.url}/nnrf-disc/v1/nf-instances?target-nf-type=AMF&requester-nf-type=AF"
    async with http.get(url) as response:
        assert response.status == 401
        assert set(await response.json()) == {"error"}
    wrong = await token(fake.url, "namf-evts")
    async with http.get(url, headers={"Authorization": f"Bearer {wrong}"}) as response:
        assert response.status == 401


async def test_discovery_returns_the_amf_with_api_prefix_or_null(
    fake: FakeCoreServer, http: aiohttp.ClientSession, token: TokenFactory
) -> None:
    """The AMF profile carries apiPrefix; no match gives nfInstances null; params are mandatory."""
    headers = {"Authorization": f"Bearer {await token(fake.url, 'nnrf-disc', 'NRF')}"}
    base = f"{fake.url}/nnrf-disc/v1/nf-instances"
    query = "?target-nf-type=AMF&requester-nf-type=AF&service-names=namf-evts"
    async with http.get(base + query, headers=headers) as response:
        result = await response.json()
    assert result["validityPeriod"] == 100
    (amf,) = result["nfInstances"]
    assert amf["nfInstanceId"] == fake.core.amf.instance_id
    evts = next(s for s in amf["nfServices"] if s["serviceName"] == "namf-evts")
    assert evts["apiPrefix"] == fake.url
    async with http.get(
        base + "?target-nf-type=UDM&requester-nf-type=AF", headers=headers
    ) as response:
        assert (await response.json())["nfInstances"] is None
    async with http.get(base + "?target-nf-type=AMF", headers=headers) as response:
        assert response.status == 400
        assert (await response.json())["detail"] == "Loss mandatory parameter"


async def test_restart_forgets_registrations_so_tokens_fail_invalid_client(
    fake: FakeCoreServer, http: aiohttp.ClientSession
) -> None:
    """After an NRF restart a registered AF gets invalid_client until it registers again."""
    nf_id = await register_af(http, fake.url)
    form = {
        "grant_type": "client_credentials",
        "nfInstanceId": nf_id,
        "nfType": "AF",
        "targetNfType": "AMF",
        "scope": "namf-evts",
    }
    async with http.post(f"{fake.url}/fake/nrf/restart") as response:
        assert response.status == 204
    async with http.post(f"{fake.url}/oauth2/token", data=form) as response:
        assert (await response.json())["error"] == "invalid_client"
    assert fake.core.amf.instance_id in fake.core.nrf.profiles
