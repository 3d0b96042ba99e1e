"""The traffic-influence client against the fake free5GC NEF: its dialect, tokens and failures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from subscriber.act.nef import TrafficInfluenceClient
from subscriber.errors import CoreUnavailable, InfluenceRefused
from subscriber.fakes.core import FakeCoreServer
from subscriber.fakes.core.wire import TokenSigner
from subscriber.ingress.nrf import NrfClient
from subscriber.sbi.traffic_influence import TrafficInfluSub
from subscriber.settings import CoreSettings, TrafficInfluenceSettings
from tests.support.influence import APP, UE_IPV4, af_sink, with_session
from tests.support.ports import free_port


@pytest.fixture
async def fake() -> AsyncIterator[FakeCoreServer]:
    """A free5GC-mode fake core with OAuth on (its NEF checks tokens) and one PDU session."""
    async with FakeCoreServer() as server:
        with_session(server)
        yield server


def _client(
    nrf: NrfClient, http: aiohttp.ClientSession, **settings: object
) -> TrafficInfluenceClient:
    return TrafficInfluenceClient(
        nrf=nrf,
        session=http,
        settings=TrafficInfluenceSettings.model_validate(settings),
        af_id="subscriber",
    )


@pytest.fixture
async def nrf(fake: FakeCoreServer, tmp_path: Path) -> AsyncIterator[NrfClient]:
    """An NRF client registered at the fake core, with OAuth."""
    settings = CoreSettings(nrf_url=fake.url, state_dir=tmp_path, retry_attempts=1)
    async with (
        aiohttp.ClientSession() as http,
        NrfClient(settings=settings, session=http) as client,
    ):
        yield client


def _request(client: TrafficInfluenceClient, destination: str, dnai: str) -> TrafficInfluSub:
    return client.subscription(
        af_app_id=APP,
        af_trans_id="ti.video-analytics.ue1",
        ue=UE_IPV4,
        dnai=dnai,
        notification_destination=destination,
    )


async def test_the_request_is_free5gc_s_dialect(nrf: NrfClient) -> None:
    """afAppId, dnn, snssai, the UE's address, UP_PATH_CHANGE, EARLY_LATE, feature 1, one route."""
    async with aiohttp.ClientSession() as http:
        body = _request(_client(nrf, http), "http://af/cb/k", "mec-tower-2").model_dump(
            mode="json", exclude_none=True, by_alias=True
        )
    assert body == {
        "afAppId": APP,
        "afTransId": "ti.video-analytics.ue1",
        "dnn": "internet",
        "snssai": {"sst": 1, "sd": "010203"},
        "subscribedEvents": ["UP_PATH_CHANGE"],
        "ipv4Addr": UE_IPV4,
        "dnaiChgType": "EARLY_LATE",
        "notificationDestination": "http://af/cb/k",
        "trafficRoutes": [{"dnai": "mec-tower-2"}],
        "suppFeat": "1",
    }


async def test_a_gpsi_goes_in_gpsi_and_af_ack_is_asked_when_set(nrf: NrfClient) -> None:
    """A UE named by GPSI is sent as gpsi; with af_ack the request sets afAckInd."""
    async with aiohttp.ClientSession() as http:
        client = _client(nrf, http, af_ack=True)
        request = client.subscription(
            af_app_id=APP,
            af_trans_id="t",
            ue="msisdn-33611223344",
            dnai="d",
            notification_destination="http://af/cb",
        )
    assert (request.gpsi, request.ipv4_addr, request.af_ack_ind) == (
        "msisdn-33611223344",
        None,
        True,
    )


async def test_create_read_reroute_delete_with_a_token(
    fake: FakeCoreServer, nrf: NrfClient
) -> None:
    """The whole lifecycle against a NEF that wants a 3gpp-traffic-influence token."""
    async with aiohttp.ClientSession() as http, af_sink() as sink:
        client = _client(nrf, http)
        root = await client.nef_root()
        uri, answer = await client.create(root, _request(client, sink.url, "mec-tower-1"))
        assert uri == answer.self_
        await sink.wait_for(2)
        held = await client.read(uri)
        assert held is not None
        assert held.traffic_routes is not None
        assert held.traffic_routes[0].dnai == "mec-tower-1"
        await client.reroute(uri, _request(client, sink.url, "mec-tower-2"))
        await sink.wait_for(4)
        await client.delete(uri)
        assert await client.read(uri) is None
        await client.delete(uri)  # already gone: fine
    assert fake.core.smf.path_changes[:2] == [
        (UE_IPV4, APP, "mec-tower-1"),
        (UE_IPV4, APP, "mec-tower-2"),
    ]


async def test_a_nef_without_the_service_is_asked_without_a_token(
    fake: FakeCoreServer, tmp_path: Path
) -> None:
    """When the NRF will not grant the scope (a NEF before v4.2.2), requests go out tokenless."""
    fake.core.traffic_influence.tokens = False
    profile = fake.core.nef.profile
    fake.core.nef.profile = lambda api_prefix, port: {  # type: ignore[method-assign]
        **profile(api_prefix, port),
        "nfServices": [
            s
            for s in profile(api_prefix, port)["nfServices"]
            if s["serviceName"] != "3gpp-traffic-influence"
        ],
    }
    settings = CoreSettings(nrf_url=fake.url, state_dir=tmp_path, retry_attempts=1)
    async with (
        aiohttp.ClientSession() as http,
        NrfClient(settings=settings, session=http) as nrf,
    ):
        client = _client(nrf, http)
        uri, _ = await client.create(
            await client.nef_root(), _request(client, "http://127.0.0.1:9/cb", "mec-tower-1")
        )
        assert uri


async def test_patch_is_refused_by_free5gc(fake: FakeCoreServer, nrf: NrfClient) -> None:
    """modify_with=patch sends a merge patch, which free5GC's PCF refuses: a permanent refusal."""
    async with aiohttp.ClientSession() as http:
        client = _client(nrf, http, modify_with="patch")
        uri, _ = await client.create(
            await client.nef_root(), _request(client, "http://127.0.0.1:9/cb", "mec-tower-1")
        )
        with pytest.raises(InfluenceRefused) as caught:
            await client.reroute(uri, _request(client, "http://127.0.0.1:9/cb", "mec-tower-2"))
    assert (caught.value.status, caught.value.cause) == (400, "ERROR_REQUEST_PARAMETERS")


async def test_no_pdu_session_is_a_permanent_refusal(fake: FakeCoreServer, nrf: NrfClient) -> None:
    """The PCF's 500 PDU_SESSION_NOT_AVAILABLE is a refusal, not something to retry."""
    fake.core.pcf.release("imsi-208930000000001")
    async with aiohttp.ClientSession() as http:
        client = _client(nrf, http)
        with pytest.raises(InfluenceRefused) as caught:
            await client.create(
                await client.nef_root(), _request(client, "http://127.0.0.1:9/cb", "m")
            )
    assert (caught.value.status, caught.value.cause) == (500, "PDU_SESSION_NOT_AVAILABLE")


async def test_a_nef_that_fails_is_unavailable_not_refused(
    fake: FakeCoreServer, nrf: NrfClient
) -> None:
    """A 500 without a refusing cause (its PCF cannot be reached) may pass: CoreUnavailable."""
    fake.core.traffic_influence.down = True
    async with aiohttp.ClientSession() as http:
        client = _client(nrf, http)
        with pytest.raises(CoreUnavailable) as caught:
            await client.create(await client.nef_root(), _request(client, "http://af/cb", "m"))
    assert caught.value.status == 500
    assert not isinstance(caught.value, InfluenceRefused)


async def test_a_nef_that_is_down_is_unavailable(nrf: NrfClient) -> None:
    """No answer at all (connection refused) is CoreUnavailable with no status."""
    async with aiohttp.ClientSession() as http:
        client = _client(nrf, http, request_timeout_s=2)
        dead = f"http://127.0.0.1:{free_port()}"
        with pytest.raises(CoreUnavailable) as caught:
            await client.create(dead, _request(client, "http://af/cb", "m"))
    assert caught.value.status is None


async def test_a_token_the_nef_keeps_refusing_is_a_refusal(
    fake: FakeCoreServer, nrf: NrfClient
) -> None:
    """A 401 drops the cached token and tries once with a new one; a second 401 is final."""
    async with aiohttp.ClientSession() as http:
        client = _client(nrf, http)
        root = await client.nef_root()
        await client.create(root, _request(client, "http://127.0.0.1:9/cb", "mec-tower-1"))
        # The NEF no longer trusts the NRF's signature: every token is refused.
        fake.core.traffic_influence.signer = TokenSigner(b"k" * 32)
        with pytest.raises(InfluenceRefused) as caught:
            await client.create(root, _request(client, "http://127.0.0.1:9/cb", "mec-tower-1"))
    assert caught.value.status == 401
