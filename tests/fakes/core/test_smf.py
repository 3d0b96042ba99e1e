"""Tests for the fake SMF: 501 event exposure and UP_PATH_CH as free5GC sends it."""

from __future__ import annotations

import aiohttp
import orjson

from subscriber.fakes.core import FakeCoreServer
from subscriber.fakes.core.smf import up_path_change_body
from subscriber.sbi.smf import parse_smf_notification
from tests.support.h2sink import H2cSink


async def test_event_exposure_answers_501_on_the_underscore_path(
    fake: FakeCoreServer, http: aiohttp.ClientSession
) -> None:
    """/nsmf_event-exposure answers 501 {}; the spec path does not exist in free5GC mode."""
    body = {"notifId": "1", "notifUri": "http://x", "eventSubs": [{"event": "UP_PATH_CH"}]}
    async with http.post(f"{fake.url}/nsmf_event-exposure/v1/subscriptions", json=body) as response:
        assert response.status == 501
        assert await response.json() == {}
    async with http.delete(f"{fake.url}/nsmf_event-exposure/v1/subscriptions/1") as response:
        assert response.status == 501
    async with http.post(f"{fake.url}/nsmf-event-exposure/v1/subscriptions", json=body) as response:
        assert response.status == 404


def test_body_matches_free5gc_serialization() -> None:
    """The body is D3 of the notes: timeStamp null, dnai "" for the default route, no supi."""
    body = up_path_change_body(
        "1", "EARLY", source_dnai="", target_dnai="mec", target_ipv4="10.60.0.103"
    )
    assert body == (
        b'{"notifId":"1","eventNotifs":[{"event":"UP_PATH_CH","timeStamp":null,'
        b'"targetDnai":"mec","dnaiChgType":"EARLY","sourceTraRouting":{"dnai":""},'
        b'"targetTraRouting":{"dnai":"mec","routeInfo":{"ipv4Addr":"10.60.0.103",'
        b'"portNumber":0}}}]}'
    )


async def test_early_late_is_two_h2c_posts_without_token(
    fake: FakeCoreServer, http: aiohttp.ClientSession, h2c_sink: H2cSink
) -> None:
    """EARLY_LATE gives two separate posts over h2c prior knowledge, with no Authorization."""
    request = {
        "notificationUri": h2c_sink.url + "/callbacks/smf/k9",
        "notifId": "k9",
        "targetDnai": "mec",
        "targetIpv4": "10.60.0.1",
    }
    async with http.post(f"{fake.url}/fake/smf/up-path-change", json=request) as response:
        assert (await response.json()) == {"statuses": [204, 204]}
    early, late = h2c_sink.requests
    for posted in (early, late):
        assert posted.headers[":path"] == "/callbacks/smf/k9"
        assert "authorization" not in posted.headers
        assert posted.headers["content-type"] == "application/json"
        assert orjson.loads(posted.body)["eventNotifs"][0]["timeStamp"] is None
    kinds = [parse_smf_notification(p.body).event_notifs[0].dnai_chg_type for p in (early, late)]
    assert kinds == ["EARLY", "LATE"]


async def test_concurrent_posts_both_arrive(fake: FakeCoreServer, h2c_sink: H2cSink) -> None:
    """With concurrent sending (free5GC's goroutines) both posts still arrive, in either order."""
    statuses = await fake.core.smf.send_up_path_change(
        h2c_sink.url + "/n", "2", target_dnai="mec", concurrent=True
    )
    assert statuses == [204, 204]
    kinds = sorted(orjson.loads(r.body)["eventNotifs"][0]["dnaiChgType"] for r in h2c_sink.requests)
    assert kinds == ["EARLY", "LATE"]


async def test_notify_mode_offers_spec_subscriptions(
    notify_fake: FakeCoreServer, http: aiohttp.ClientSession, h2c_sink: H2cSink
) -> None:
    """Notify mode offers spec SMF subscriptions (Location, DELETE 204) that get UP_PATH_CH."""
    body = {
        "notifId": "s1",
        "notifUri": h2c_sink.url + "/callbacks/smf/s1",
        "anyUeInd": True,
        "eventSubs": [{"event": "UP_PATH_CH", "dnaiChgType": "EARLY_LATE"}],
    }
    base = f"{notify_fake.url}/nsmf-event-exposure/v1/subscriptions"
    async with http.post(base, json=body) as response:
        assert response.status == 201
        location = response.headers["Location"]
    async with http.post(
        f"{notify_fake.url}/fake/smf/up-path-change", json={"targetDnai": "mec"}
    ) as response:
        assert (await response.json())["statuses"] == [204, 204]
    assert {orjson.loads(r.body)["notifId"] for r in h2c_sink.requests} == {"s1"}
    async with http.delete(location) as response:
        assert response.status == 204
