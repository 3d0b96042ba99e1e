"""The fake NEF's traffic influence, PCF and SMF path change: free5GC's, quirks included."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest

from subscriber.fakes.core import FakeCoreServer
from subscriber.fakes.core.upf import FakeUserPlane
from subscriber.sbi.smf import parse_smf_notification
from tests.support.fakecore import TokenFactory
from tests.support.influence import APP, UE_IPV4, af_sink, ti_request, with_session
from tests.support.waiting import until

BASE = "/3gpp-traffic-influence/v1/af1/subscriptions"


async def _post(
    http: aiohttp.ClientSession, url: str, body: Any, **headers: str
) -> tuple[int, Any, dict[str, str]]:
    async with http.post(url, json=body, headers=headers) as response:
        return response.status, await response.json(content_type=None), dict(response.headers)


@pytest.fixture
async def nef(fake: FakeCoreServer) -> FakeCoreServer:
    """The fake core with its API's token check off (free5GC before v4.2.2) and a session."""
    fake.core.traffic_influence.tokens = False
    with_session(fake)
    return fake


async def test_create_moves_the_path_and_forwards_early_then_late(
    nef: FakeCoreServer, http: aiohttp.ClientSession
) -> None:
    """A create answers 201 with Location and self; EARLY and LATE reach the AF, free5GC-shaped."""
    async with af_sink() as sink:
        status, body, headers = await _post(
            http, nef.url + BASE, ti_request(sink.url, "mec-tower-2")
        )
        assert status == 201
        assert headers["Location"] == body["self"] == nef.url + BASE + "/1"
        first, second = await sink.wait_for(2)
    assert sorted(sink.change_types()) == ["EARLY", "LATE"]
    for doc in (first, second):
        assert doc["notifId"] == "1"  # the NEF's correlation id, not anything we sent
        (event,) = doc["eventNotifs"]
        assert event["timeStamp"] is None
        assert event["sourceTraRouting"] == {"dnai": ""}  # first placement: the default route
        assert event["targetTraRouting"] == {"dnai": "mec-tower-2"}
        assert event["targetDnai"] == "mec-tower-2"
        assert "sourceDnai" not in event
        parse_smf_notification(orjson.dumps(doc))
    assert nef.core.smf.path_changes == [(UE_IPV4, APP, "mec-tower-2")]


async def test_replace_moves_between_dnais_with_the_same_notif_id(
    nef: FakeCoreServer, http: aiohttp.ClientSession
) -> None:
    """A PUT re-routes: the path goes from the old DNAI to the new under one notifId."""
    async with af_sink() as sink:
        _, _, headers = await _post(http, nef.url + BASE, ti_request(sink.url, "mec-tower-1"))
        await sink.wait_for(2)
        async with http.put(
            headers["Location"], json=ti_request(sink.url, "mec-tower-2")
        ) as response:
            assert response.status == 200
            assert "self" not in await response.json()  # PUT stores the new request as sent
        moved = [b for b in await sink.wait_for(4) if b["eventNotifs"][0].get("sourceDnai")]
    assert len(moved) == 2
    event = moved[0]["eventNotifs"][0]
    assert (event["sourceDnai"], event["targetDnai"]) == ("mec-tower-1", "mec-tower-2")
    assert {b["notifId"] for b in sink.bodies} == {"1"}


async def test_patch_is_refused_by_the_pcf_for_want_of_spval(
    nef: FakeCoreServer, http: aiohttp.ClientSession
) -> None:
    """A merge patch of the routes reaches the PCF without spVal: 400 ERROR_REQUEST_PARAMETERS."""
    async with af_sink() as sink:
        _, _, headers = await _post(http, nef.url + BASE, ti_request(sink.url, "mec-tower-1"))
        async with http.patch(
            headers["Location"],
            json={"trafficRoutes": [{"dnai": "mec-tower-2"}]},
            headers={"Content-Type": "application/merge-patch+json"},
        ) as response:
            assert response.status == 400
            assert (await response.json())["cause"] == "ERROR_REQUEST_PARAMETERS"


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"notificationDestination": ""}, "Missing notificationDestination"),
        ({"notificationDestination": "callbacks/ti/k"}, "Invalid notificationDestination"),
        ({"afAppId": ""}, "Missing one of afAppId, trafficFilters or ethTrafficFilters"),
        ({"ipv4Addr": ""}, "Missing one of Gpsi, Ipv4Addr, Ipv6Addr, ExternalGroupId, AnyUeInd"),
        ({"trafficRoutes": []}, "Missing trafficRoutes"),
    ],
)
async def test_malformed_requests_get_400(
    nef: FakeCoreServer, http: aiohttp.ClientSession, change: dict[str, Any], detail: str
) -> None:
    """What the NEF validates itself is refused 400 "Malformed request syntax", without a cause."""
    status, body, _ = await _post(http, nef.url + BASE, ti_request("http://af/cb", "m") | change)
    assert status == 400
    assert body == {"title": "Malformed request syntax", "status": 400, "detail": detail}


@pytest.mark.parametrize(
    ("change", "status", "cause"),
    [
        ({"ipv4Addr": "10.60.0.9"}, 500, "PDU_SESSION_NOT_AVAILABLE"),
        ({"ipv4Addr": None, "gpsi": "msisdn-33611223344"}, 400, "ERROR_REQUEST_PARAMETERS"),
        ({"dnn": ""}, 400, "ERROR_REQUEST_PARAMETERS"),
        ({"suppFeat": ""}, 403, "REQUESTED_SERVICE_NOT_AUTHORIZED"),
        ({"suppFeat": "2"}, 403, "REQUESTED_SERVICE_NOT_AUTHORIZED"),
        ({"snssai": {"sst": 1, "sd": "ffffff"}}, 500, "PDU_SESSION_NOT_AVAILABLE"),
    ],
)
async def test_the_pcf_refusals_come_back_unchanged(
    nef: FakeCoreServer,
    http: aiohttp.ClientSession,
    change: dict[str, Any],
    status: int,
    cause: str,
) -> None:
    """No session, a GPSI only, no DNN, no feature 1, another slice: the PCF's status and cause."""
    request = {k: v for k, v in (ti_request("http://af/cb", "m") | change).items() if v is not None}
    got, body, _ = await _post(http, nef.url + BASE, request)
    assert (got, body["cause"]) == (status, cause)
    assert nef.core.smf.path_changes == []


async def test_only_the_newest_session_binds(
    nef: FakeCoreServer, http: aiohttp.ClientSession
) -> None:
    """SessionBinding keeps the last UE it visits: an older session is not found (500)."""
    with_session(nef, "imsi-208930000000002", "10.60.0.2")
    status, body, _ = await _post(http, nef.url + BASE, ti_request("http://af/cb", "m"))
    assert (status, body["cause"]) == (500, "PDU_SESSION_NOT_AVAILABLE")
    request = ti_request("http://af/cb", "m", ipv4Addr="10.60.0.2")
    assert (await _post(http, nef.url + BASE, request))[0] == 201


async def test_wrong_content_type_is_a_500(
    nef: FakeCoreServer, http: aiohttp.ClientSession
) -> None:
    """A body not typed JSON is answered 500 with a 400 ProblemDetails inside."""
    async with http.post(nef.url + BASE, data=b"{}", headers={"Content-Type": "text/plain"}) as r:
        assert r.status == 500
        assert (await r.json())["status"] == 400


async def test_reads_and_deletes(nef: FakeCoreServer, http: aiohttp.ClientSession) -> None:
    """GET answers the stored request; DELETE 204; then 404, and the AF's list is null."""
    _, body, headers = await _post(http, nef.url + BASE, ti_request("http://af/cb", "m"))
    async with http.get(headers["Location"]) as response:
        assert (await response.json())["self"] == body["self"]
    async with http.delete(headers["Location"]) as response:
        assert response.status == 204
    async with http.get(headers["Location"]) as response:
        assert response.status == 404
    async with http.get(nef.url + BASE) as response:
        assert await response.json() is None
    async with http.get(nef.url + "/3gpp-traffic-influence/v1/nobody/subscriptions") as response:
        assert (await response.json())["detail"] == "AF is not found"


async def test_the_api_wants_a_token_from_v4_2_2(
    fake: FakeCoreServer, http: aiohttp.ClientSession, token: TokenFactory
) -> None:
    """With OAuth the API refuses a request without a 3gpp-traffic-influence token (gin 401)."""
    with_session(fake)
    status, body, _ = await _post(http, fake.url + BASE, ti_request("http://af/cb", "m"))
    assert status == 401
    assert "error" in body
    bearer = await token(fake.url, "3gpp-traffic-influence", target="NEF")
    request = ti_request("http://af/cb", "m")
    status, _, _ = await _post(http, fake.url + BASE, request, Authorization=f"Bearer {bearer}")
    assert status == 201


async def test_a_callback_that_checks_tokens_never_hears_the_smf(
    nef: FakeCoreServer, http: aiohttp.ClientSession
) -> None:
    """v4.2.2's callback check refuses the SMF's tokenless notifications: the AF hears nothing."""
    nef.core.traffic_influence.callback_tokens = True
    async with af_sink() as sink:
        await _post(http, nef.url + BASE, ti_request(sink.url, "mec-tower-2"))
        await nef.core.drain()
    assert sink.bodies == []
    assert sorted(status for _, status in nef.core.smf.sent) == [401, 401]
    assert nef.core.smf.path_changes == [(UE_IPV4, APP, "mec-tower-2")]


async def test_an_af_that_fails_makes_the_nef_answer_502(
    nef: FakeCoreServer, http: aiohttp.ClientSession
) -> None:
    """The NEF tells the SMF 502 when the AF does not take the notification; nobody retries."""
    async with af_sink(status=500) as sink:
        await _post(http, nef.url + BASE, ti_request(sink.url, "mec-tower-2"))
        await nef.core.drain()
    assert sorted(status for _, status in nef.core.smf.sent) == [502, 502]
    assert len(sink.bodies) == 2


async def test_forwarded_notifications_carry_an_nnef_callback_token(
    fake: FakeCoreServer, http: aiohttp.ClientSession, token: TokenFactory
) -> None:
    """With OAuth, the NEF forwards with a bearer token of scope nnef-callback, over HTTP/1.1."""
    with_session(fake)
    bearer = await token(fake.url, "3gpp-traffic-influence", target="NEF")
    async with af_sink() as sink:
        await _post(
            http,
            fake.url + BASE,
            ti_request(sink.url, "mec-tower-2"),
            Authorization=f"Bearer {bearer}",
        )
        await sink.wait_for(2)
    assert all(h["Authorization"].startswith("Bearer ") for h in sink.headers)


async def test_an_unknown_notif_id_is_404(nef: FakeCoreServer, http: aiohttp.ClientSession) -> None:
    """The callback finds subscriptions by notifId only."""
    body = {"notifId": "77", "eventNotifs": [{"event": "UP_PATH_CH", "dnaiChgType": "LATE"}]}
    status, answer, _ = await _post(http, nef.url + "/nnef-callback/v1/notification/smf", body)
    assert (status, answer["detail"]) == (404, "Subscription is not found")


async def test_faults_drop_late_and_reroute(
    nef: FakeCoreServer, http: aiohttp.ClientSession
) -> None:
    """The SMF's faults: a LATE that never comes, a path that goes elsewhere than asked."""
    async with http.put(nef.url + "/fake/smf/faults", json={"dropLate": 1}) as response:
        assert response.status == 204
    async with af_sink() as sink:
        _, _, headers = await _post(http, nef.url + BASE, ti_request(sink.url, "mec-tower-1"))
        await nef.core.drain()
        assert sink.change_types() == ["EARLY"]
        nef.core.smf.faults.reroute_to = "mec-metro"
        async with http.put(headers["Location"], json=ti_request(sink.url, "mec-tower-2")):
            pass
        late = [b for b in await sink.wait_for(3) if b["eventNotifs"][0]["dnaiChgType"] == "LATE"]
    assert late[0]["eventNotifs"][0]["targetDnai"] == "mec-metro"
    assert nef.core.smf.path_changes[-1] == (UE_IPV4, APP, "mec-metro")


async def test_the_user_plane_follows_the_path() -> None:
    """A UE's connections to the app go, from the UE's address, to the DNAI its path is on."""
    edges = {"mec-tower-1": "127.0.31.1", "mec-tower-2": "127.0.31.2"}
    seen: list[tuple[str, str]] = []

    async def instance(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append((writer.get_extra_info("sockname")[0], writer.get_extra_info("peername")[0]))
        writer.write(await reader.read(100))
        await writer.drain()
        writer.close()

    servers = [await asyncio.start_server(instance, a, 0) for a in edges.values()]
    port = servers[0].sockets[0].getsockname()[1]
    servers[1].close()
    servers[1] = await asyncio.start_server(instance, edges["mec-tower-2"], port)
    plane = FakeUserPlane(af_app_id=APP, host="127.0.31.100", port=port, dnais=edges)
    ue = "127.0.31.50"
    async with FakeCoreServer(user_planes=[plane]) as fake, aiohttp.ClientSession() as http:
        fake.core.traffic_influence.tokens = False
        with_session(fake, ipv4=ue)

        async def talk() -> bytes | None:
            try:
                reader, writer = await asyncio.open_connection(
                    "127.0.31.100", port, local_addr=(ue, 0)
                )
            except OSError:
                return None
            try:
                writer.write(b"ping")
                await writer.drain()
                return await reader.read(100)
            except ConnectionError:
                return None
            finally:
                writer.close()

        assert not await talk()  # the default route goes nowhere: refused
        request = ti_request("http://127.0.0.1:9/cb", "mec-tower-1", ipv4Addr=ue)
        await _post(http, fake.url + BASE, request)
        await until(lambda: plane.where(ue) == "127.0.31.1")
        assert await talk() == b"ping"
    for server in servers:
        server.close()
    assert seen == [("127.0.31.1", ue)]
