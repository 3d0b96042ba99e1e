"""Tests for the fake AMF: each free5GC quirk, then the spec-conformant notify mode."""

from __future__ import annotations

import asyncio
from datetime import datetime

import aiohttp
import orjson

from subscriber.fakes.core import FakeCoreServer
from subscriber.sbi.amf import parse_amf_created_subscription, parse_amf_notification
from tests.support.fakecore import TokenFactory
from tests.support.h2sink import H2cSink

SUBS = "/namf-evts/v1/subscriptions"
ONE_SHOT = {
    "subscription": {
        "eventList": [{"type": "LOCATION_REPORT", "immediateFlag": True}],
        "anyUE": True,
        "options": {"trigger": "ONE_TIME"},
    }
}
PERSISTENT = {
    "subscription": {
        "eventList": [{"type": "LOCATION_REPORT", "immediateFlag": True}],
        "anyUE": True,
    }
}


async def _auth(
    fake: FakeCoreServer, token: TokenFactory, scope: str = "namf-evts"
) -> dict[str, str]:
    return {"Authorization": f"Bearer {await token(fake.url, scope)}"}


async def test_create_has_no_location_header_and_counter_ids(
    fake: FakeCoreServer, http: aiohttp.ClientSession, token: TokenFactory
) -> None:
    """free5GC sets no Location header; ids are "1", "2", ... from a counter."""
    headers = await _auth(fake, token)
    ids = []
    for _ in range(2):
        async with http.post(fake.url + SUBS, json=ONE_SHOT, headers=headers) as response:
            assert response.status == 201
            assert "Location" not in response.headers
            ids.append((await response.json())["subscriptionId"])
    assert ids == ["1", "2"]


async def test_one_time_immediate_reports_every_ue_and_deletes_itself(
    fake: FakeCoreServer, http: aiohttp.ClientSession, token: TokenFactory
) -> None:
    """An anyUE ONE_TIME immediate subscribe returns one inactive report per UE and is gone."""
    headers = await _auth(fake, token)
    async with http.post(fake.url + SUBS, json=ONE_SHOT, headers=headers) as response:
        raw = await response.read()
    created = parse_amf_created_subscription(raw)
    assert created.report_list is not None
    assert len(created.report_list) == 3
    assert all(r.state is not None and r.state.active is False for r in created.report_list)
    assert all(r.any_ue for r in created.report_list)
    assert fake.core.amf.subscriptions == {}
    async with http.delete(
        f"{fake.url}{SUBS}/{created.subscription_id}", headers=headers
    ) as response:
        assert response.status == 404
        assert (await response.json())["cause"] == "SUBSCRIPTION_NOT_FOUND"


async def test_echo_fills_missing_mandatory_strings_with_empty(
    fake: FakeCoreServer, http: aiohttp.ClientSession, token: TokenFactory
) -> None:
    """eventNotifyUri, notifyCorrelationId and nfId have no omitempty: echoed as ""."""
    headers = await _auth(fake, token)
    async with http.post(fake.url + SUBS, json=ONE_SHOT, headers=headers) as response:
        echo = (await response.json())["subscription"]
    assert echo["eventNotifyUri"] == echo["notifyCorrelationId"] == echo["nfId"] == ""


async def test_report_timestamp_is_subscription_time_not_location_time(
    fake: FakeCoreServer, http: aiohttp.ClientSession, token: TokenFactory
) -> None:
    """timeStamp is when the subscription was made; ueLocationTimestamp when the UE was seen."""
    supi = "imsi-208930000000002"
    fake.core.amf.move(supi, "00000A", "0000000AB")
    await asyncio.sleep(0.01)
    headers = await _auth(fake, token)
    async with http.post(fake.url + SUBS, json=ONE_SHOT, headers=headers) as response:
        raw = await response.read()
    report = next(r for r in orjson.loads(raw)["reportList"] if r["supi"] == supi)
    located = report["location"]["nrLocation"]
    assert located["tai"]["tac"] == "00000a"  # lowercase hex, as hex.EncodeToString writes it
    assert located["ncgi"]["nrCellId"] == "0000000ab"
    assert datetime.fromisoformat(report["timeStamp"]) > datetime.fromisoformat(
        located["ueLocationTimestamp"]
    )


async def test_any_ue_with_zero_ues_leaves_the_subscription(
    http: aiohttp.ClientSession, token: TokenFactory
) -> None:
    """With no UE there is no report, so a ONE_TIME subscription stays until DELETE (200 null)."""
    async with FakeCoreServer(ues=0) as fake:
        headers = await _auth(fake, token)
        async with http.post(fake.url + SUBS, json=ONE_SHOT, headers=headers) as response:
            created = await response.json()
        assert "reportList" not in created
        assert list(fake.core.amf.subscriptions) == [created["subscriptionId"]]
        async with http.delete(
            f"{fake.url}{SUBS}/{created['subscriptionId']}", headers=headers
        ) as response:
            assert response.status == 200
            assert await response.read() == b"null"


async def test_any_ue_covers_only_ues_present_at_subscription_time(
    fake: FakeCoreServer, http: aiohttp.ClientSession, token: TokenFactory
) -> None:
    """A UE that registers after an anyUE subscription is not attached to it."""
    headers = await _auth(fake, token)
    async with http.post(fake.url + SUBS, json=PERSISTENT, headers=headers) as response:
        sub_id = (await response.json())["subscriptionId"]
    fake.core.amf.add_ue("imsi-208930000000099", "000001", "000000001")
    covered = fake.core.amf.subscriptions[sub_id].supis
    assert covered is not None
    assert "imsi-208930000000099" not in covered
    assert len(covered) == 3


async def test_patch_takes_free5gc_dialect_and_refuses_json_patch(
    fake: FakeCoreServer, http: aiohttp.ClientSession, token: TokenFactory
) -> None:
    """{"optionItem":[...]} sets the expiry whatever the path; a JSON-Patch array gets 400."""
    headers = await _auth(fake, token)
    async with http.post(fake.url + SUBS, json=PERSISTENT, headers=headers) as response:
        sub_id = (await response.json())["subscriptionId"]
    url = f"{fake.url}{SUBS}/{sub_id}"
    item = {"op": "replace", "path": "/anything", "value": "2030-01-01T00:00:00Z"}
    async with http.patch(url, json={"optionItem": [item]}, headers=headers) as response:
        assert response.status == 200
        assert (await response.json())["subscription"]["options"]["expiry"] == item["value"]
    async with http.patch(
        url,
        data=orjson.dumps([item]),
        headers={**headers, "Content-Type": "application/json-patch+json"},
    ) as response:
        assert response.status == 400
        assert (await response.json())["title"] == "Malformed request syntax"
    add = {"op": "add", "path": "/eventList/-", "value": {"type": "TIMEZONE_REPORT"}}
    async with http.patch(url, json={"SubscriptionItem": [add]}, headers=headers) as response:
        events = (await response.json())["subscription"]["eventList"]
    assert [e["type"] for e in events] == ["LOCATION_REPORT", "TIMEZONE_REPORT"]


async def test_expiry_is_never_enforced_in_free5gc_mode(
    fake: FakeCoreServer, http: aiohttp.ClientSession, token: TokenFactory
) -> None:
    """A subscription past its expiry still exists (free5GC stores expiry but has no timer)."""
    headers = await _auth(fake, token)
    body = {
        "subscription": {
            **PERSISTENT["subscription"],
            "options": {"expiry": "2001-01-01T00:00:00Z"},
        }
    }
    async with http.post(fake.url + SUBS, json=body, headers=headers) as response:
        sub_id = (await response.json())["subscriptionId"]
    async with http.delete(f"{fake.url}{SUBS}/{sub_id}", headers=headers) as response:
        assert response.status == 200


async def test_unknown_supi_is_403_and_empty_body_is_subscription_empty(
    fake: FakeCoreServer, http: aiohttp.ClientSession, token: TokenFactory
) -> None:
    """A SUPI not in the AMF gives 403 UE_NOT_SERVED_BY_AMF; no eventList gives 400."""
    headers = await _auth(fake, token)
    body = {"subscription": {"eventList": [{"type": "LOCATION_REPORT"}], "supi": "imsi-1"}}
    async with http.post(fake.url + SUBS, json=body, headers=headers) as response:
        assert response.status == 403
        assert await response.json() == {"status": 403, "cause": "UE_NOT_SERVED_BY_AMF"}
    async with http.post(fake.url + SUBS, json={"subscription": {}}, headers=headers) as response:
        assert response.status == 400
        assert (await response.json())["cause"] == "SUBSCRIPTION_EMPTY"
    async with http.post(fake.url + SUBS, data=b"{", headers=headers) as response:
        assert response.status == 400
        assert (await response.json())["title"] == "Malformed request syntax"


async def test_oauth_failures_are_gin_401_not_problem_details(
    fake: FakeCoreServer, http: aiohttp.ClientSession, token: TokenFactory
) -> None:
    """Missing, forged or wrong-scope tokens get 401 {"error": ...}."""
    forged = "Bearer a.b.c"
    wrong = f"Bearer {await token(fake.url, 'namf-loc')}"
    for headers in ({}, {"Authorization": forged}, {"Authorization": wrong}):
        async with http.post(fake.url + SUBS, json=ONE_SHOT, headers=headers) as response:
            assert response.status == 401
            assert set(await response.json()) == {"error"}


async def test_restart_loses_subscriptions_and_restarts_ids_at_one(
    fake: FakeCoreServer, http: aiohttp.ClientSession, token: TokenFactory
) -> None:
    """After an AMF restart ids start again at 1, old ones are 404, and the NF id is new."""
    headers = await _auth(fake, token)
    for _ in range(3):
        async with http.post(fake.url + SUBS, json=PERSISTENT, headers=headers) as response:
            last = (await response.json())["subscriptionId"]
    old_id = fake.core.amf.instance_id
    async with http.post(f"{fake.url}/fake/amf/restart") as response:
        assert response.status == 204
    assert fake.core.amf.instance_id != old_id
    assert old_id not in fake.core.nrf.profiles
    async with http.patch(
        f"{fake.url}{SUBS}/{last}", json={"optionItem": []}, headers=headers
    ) as response:
        assert response.status == 404
    async with http.post(fake.url + SUBS, json=PERSISTENT, headers=headers) as response:
        assert (await response.json())["subscriptionId"] == "1"


async def test_location_is_empty_object_before_first_uli(
    fake: FakeCoreServer, http: aiohttp.ClientSession, token: TokenFactory
) -> None:
    """A UE without a ULI yet reports "location":{}."""
    fake.core.amf.add_ue("imsi-208930000000050")
    headers = await _auth(fake, token)
    body = {
        "subscription": {**ONE_SHOT["subscription"], "anyUE": False, "supi": "imsi-208930000000050"}
    }
    async with http.post(fake.url + SUBS, json=body, headers=headers) as response:
        (report,) = (await response.json())["reportList"]
    assert report["location"] == {}
    assert "anyUe" not in report


async def test_free5gc_mode_never_notifies(
    fake: FakeCoreServer, http: aiohttp.ClientSession, token: TokenFactory, h2c_sink: H2cSink
) -> None:
    """A CONTINUOUS LOCATION_REPORT subscription gets nothing when a UE moves."""
    headers = await _auth(fake, token)
    body = {
        "subscription": {
            "eventList": [{"type": "LOCATION_REPORT"}],
            "eventNotifyUri": h2c_sink.url + "/cb",
            "anyUE": True,
            "options": {"trigger": "CONTINUOUS"},
        }
    }
    async with http.post(fake.url + SUBS, json=body, headers=headers) as response:
        assert response.status == 201
    async with http.post(
        f"{fake.url}/fake/ues/imsi-208930000000001/move",
        json={"tac": "000002", "nrCellId": "000000099"},
    ) as response:
        assert response.status == 204
    assert h2c_sink.requests == []
    assert fake.core.amf.notifications_sent == 0


async def test_provide_loc_info_returns_cached_location_as_current(
    fake: FakeCoreServer, http: aiohttp.ClientSession, token: TokenFactory
) -> None:
    """provide-loc-info answers currentLoc true with the cached location; unknown UE is 404."""
    headers = await _auth(fake, token, "namf-loc")
    url = f"{fake.url}/namf-loc/v1/imsi-208930000000001/provide-loc-info"
    async with http.post(
        url, json={"req5gsLoc": True, "reqCurrentLoc": True}, headers=headers
    ) as response:
        info = await response.json()
    assert info["currentLoc"] is True
    assert info["location"]["nrLocation"]["tai"]["tac"] == "000001"
    async with http.post(url.replace("0001/", "0404/"), json={}, headers=headers) as response:
        assert response.status == 404
        assert (await response.json())["cause"] == "CONTEXT_NOT_FOUND"
    evts_only = await _auth(fake, token)
    async with http.post(url, json={}, headers=evts_only) as response:
        assert response.status == 401


async def test_notify_mode_is_spec_conformant(
    notify_fake: FakeCoreServer, http: aiohttp.ClientSession, token: TokenFactory
) -> None:
    """Notify mode sends a Location header, takes JSON Patch, and answers DELETE with 204."""
    fake = notify_fake
    headers = await _auth(fake, token)
    async with http.post(fake.url + SUBS, json=PERSISTENT, headers=headers) as response:
        location = response.headers["Location"]
    item = {"op": "replace", "path": "/options/expiry", "value": "2030-01-01T00:00:00Z"}
    async with http.patch(location, json={"optionItem": [item]}, headers=headers) as response:
        assert response.status == 400
    async with http.patch(
        location,
        data=orjson.dumps([item]),
        headers={**headers, "Content-Type": "application/json-patch+json"},
    ) as response:
        assert response.status == 200
    async with http.delete(location, headers=headers) as response:
        assert response.status == 204


async def test_notify_mode_posts_location_reports_over_h2c(
    notify_fake: FakeCoreServer, http: aiohttp.ClientSession, token: TokenFactory, h2c_sink: H2cSink
) -> None:
    """A move triggers an AmfEventNotification over HTTP/2 prior knowledge, with no token."""
    fake = notify_fake
    headers = await _auth(fake, token)
    body = {
        "subscription": {
            "eventList": [{"type": "LOCATION_REPORT"}],
            "eventNotifyUri": h2c_sink.url + "/callbacks/amf/k1",
            "notifyCorrelationId": "k1",
            "anyUE": True,
            "options": {"trigger": "CONTINUOUS", "expiry": "2099-01-01T00:00:00Z"},
        }
    }
    async with http.post(fake.url + SUBS, json=body, headers=headers) as response:
        assert response.status == 201
    fake.core.amf.add_ue("imsi-208930000000077", "000001", "000000001")  # later UEs count too
    fake.core.amf.move("imsi-208930000000077", "000002", "000000002")
    await fake.core.amf.drain()
    (request,) = h2c_sink.requests
    assert request.headers[":path"] == "/callbacks/amf/k1"
    assert "authorization" not in request.headers
    notification = parse_amf_notification(request.body)
    assert notification.notify_correlation_id == "k1"
    assert notification.report_list is not None
    assert notification.report_list[0].supi == "imsi-208930000000077"


async def test_notify_mode_honours_expiry(
    notify_fake: FakeCoreServer, http: aiohttp.ClientSession, token: TokenFactory, h2c_sink: H2cSink
) -> None:
    """An expired subscription gets no notification and is 404 on renew."""
    fake = notify_fake
    headers = await _auth(fake, token)
    body = {
        "subscription": {
            "eventList": [{"type": "LOCATION_REPORT"}],
            "eventNotifyUri": h2c_sink.url + "/cb",
            "anyUE": True,
            "options": {"trigger": "CONTINUOUS", "expiry": "2001-01-01T00:00:00Z"},
        }
    }
    async with http.post(fake.url + SUBS, json=body, headers=headers) as response:
        location = response.headers["Location"]
    fake.core.amf.move("imsi-208930000000001", "000002", "000000002")
    await fake.core.amf.drain()
    assert h2c_sink.requests == []
    item = {"op": "replace", "path": "/options/expiry", "value": "2030-01-01T00:00:00Z"}
    async with http.patch(location, data=orjson.dumps([item]), headers=headers) as response:
        assert response.status == 404
