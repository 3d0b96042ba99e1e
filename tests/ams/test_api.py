"""The AMS API under bad input: every refusal is a ProblemDetails with the right status, and
nothing the AMS keeps is touched by a request it refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from subscriber.ams.models import MAX_ID
from subscriber.ams.server import serving_ams
from subscriber.ams.service import Ams
from subscriber.errors import SubscriberError
from subscriber.settings import AmsSettings

PROBLEM = "application/problem+json"


@pytest.fixture
def ams_settings(tmp_path: Path) -> AmsSettings:
    """An AMS on a free port whose callbacks may only reach 127.0.1.0/24."""
    return AmsSettings(
        port=0, db=tmp_path / "ams.sqlite3", callback_networks=["127.0.1.0/24"], notify_attempts=1
    )


@pytest.fixture
async def ams(ams_settings: AmsSettings) -> AsyncIterator[Ams]:
    """The AMS, listening."""
    async with serving_ams(ams_settings) as service:
        yield service


async def call(
    ams: Ams, method: str, path: str, body: Any = None, **kwargs: Any
) -> tuple[int, str, Any]:
    """(status, content type, decoded body) of one request."""
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, f"{ams.base_url}{path}", json=body, **kwargs) as resp,
    ):
        raw = await resp.read()
        data = await resp.json(content_type=None) if raw else None
        return resp.status, resp.content_type, data


def registration(instance: str = "shop.u1.edge1", *devices: str, level: int = 3) -> dict[str, Any]:
    """A registration body for ``instance`` with ``devices`` (IPv4 values)."""
    return {
        "serviceConsumerId": {"appInstanceId": instance},
        "deviceInformation": [
            {"associateId": {"type": 1, "value": d}, "appMobilityServiceLevel": level}
            for d in devices
        ],
    }


def subscription(callback: str, instance: str = "shop.u1.edge1") -> dict[str, Any]:
    """A mobility procedure subscription body."""
    return {
        "subscriptionType": "MobilityProcedureSubscription",
        "callbackReference": callback,
        "filterCriteria": {"appInstanceId": instance},
    }


async def test_register_read_update_and_delete(ams: Ams) -> None:
    """A registration is created with an id and a Location, read back, updated, and deleted."""
    status, _, made = await call(
        ams, "POST", "/app_mobility_services", registration("a.b.c", "10.0.0.1")
    )
    assert status == 201
    rid = made["appMobilityServiceId"]
    assert (await call(ams, "GET", f"/app_mobility_services/{rid}"))[2] == made
    changed = {**registration("a.b.c", "10.0.0.2"), "appMobilityServiceId": rid}
    status, _, body = await call(ams, "PUT", f"/app_mobility_services/{rid}", changed)
    assert status == 200
    assert body["deviceInformation"][0]["associateId"]["value"] == "10.0.0.2"
    assert (await call(ams, "POST", f"/app_mobility_services/{rid}/deregister_task"))[0] == 204
    assert (await call(ams, "GET", f"/app_mobility_services/{rid}"))[0] == 404


BAD_BODIES = [
    ("not json", {"data": b"{not json", "headers": {"Content-Type": "application/json"}}, 400),
    ("not a json type", {"data": b"{}", "headers": {"Content-Type": "text/plain"}}, 415),
    ("an unknown attribute", {"json": {**registration(), "extra": 1}}, 400),
    ("no consumer", {"json": {"deviceInformation": []}}, 400),
    (
        "both consumer ids",
        {"json": {"serviceConsumerId": {"appInstanceId": "a", "mepId": "m"}}},
        400,
    ),
    ("an id in a POST", {"json": {**registration(), "appMobilityServiceId": "x"}}, 400),
    ("a device twice", {"json": registration("a.b.c", "10.0.0.1", "10.0.0.1")}, 400),
    ("a level out of range", {"json": registration("a.b.c", "10.0.0.1", level=4)}, 400),
    ("an id one over the maximum", {"json": registration("x" * (MAX_ID + 1))}, 400),
    ("a space in an id", {"json": registration("a b")}, 400),
    ("a negative expiry", {"json": {**registration(), "expiryTime": -1}}, 400),
    ("a list", {"json": [registration()]}, 400),
    (
        "too large",
        {
            "data": b'{"a": "' + b"x" * 300_000 + b'"}',
            "headers": {"Content-Type": "application/json"},
        },
        413,
    ),
]


@pytest.mark.parametrize(
    ("what", "request_kwargs", "status"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES]
)
async def test_bad_registration_bodies_are_refused_as_problems(
    ams: Ams, what: str, request_kwargs: dict[str, Any], status: int
) -> None:
    """Each malformed registration gets a ProblemDetails with its status; nothing is stored."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{ams.base_url}/app_mobility_services", **request_kwargs) as resp,
    ):
        assert resp.status == status, what
        assert resp.content_type == PROBLEM
        problem = await resp.json(content_type=None)
    assert problem["status"] == status
    assert "Traceback" not in str(problem)
    assert await ams.registrations() == []


async def test_ids_at_the_maximum_length_are_taken(ams: Ams) -> None:
    """An appInstanceId and a device value of exactly MAX_ID characters are accepted and kept."""
    longest = "x" * MAX_ID
    status, _, made = await call(
        ams, "POST", "/app_mobility_services", registration(longest, longest)
    )
    assert status == 201
    assert made["serviceConsumerId"]["appInstanceId"] == longest
    status, _, _ = await call(ams, "GET", "/app_mobility_services/" + "y" * (MAX_ID + 1))
    assert status == 404


async def test_a_body_that_does_not_match_its_path_is_refused(ams: Ams) -> None:
    """A PUT naming another registration, or another owner, changes nothing."""
    _, _, a = await call(ams, "POST", "/app_mobility_services", registration("a.b.c", "10.0.0.1"))
    _, _, b = await call(ams, "POST", "/app_mobility_services", registration("d.e.f", "10.0.0.2"))
    rid = a["appMobilityServiceId"]
    other = {**registration("a.b.c"), "appMobilityServiceId": b["appMobilityServiceId"]}
    assert (await call(ams, "PUT", f"/app_mobility_services/{rid}", other))[0] == 400
    owner = {**registration("d.e.f"), "appMobilityServiceId": rid}
    assert (await call(ams, "PUT", f"/app_mobility_services/{rid}", owner))[0] == 400
    assert (await call(ams, "GET", f"/app_mobility_services/{rid}"))[2] == a


async def test_unknown_resources_and_methods(ams: Ams) -> None:
    """Unknown ids are 404 for every verb; a verb the resource lacks is 405 with Allow."""
    for method in ("GET", "DELETE"):
        status, kind, _ = await call(ams, method, "/subscriptions/nope")
        assert (status, kind) == (404, PROBLEM)
    status, _, _ = await call(
        ams, "PUT", "/subscriptions/nope", subscription("http://127.0.1.9:1/cb")
    )
    assert status == 404
    assert (await call(ams, "PUT", "/app_mobility_services/nope", registration()))[0] == 404
    status, kind, _ = await call(ams, "PATCH", "/subscriptions")
    assert (status, kind) == (405, PROBLEM)
    assert (await call(ams, "GET", "/nothing/here"))[0] == 404


@pytest.mark.parametrize(
    "callback",
    [
        "http://169.254.169.254/latest/meta-data",  # cloud metadata
        "http://127.0.0.1:7233/",  # loopback outside the allowed networks (Temporal)
        "http://10.0.0.1/cb",  # another network
        "http://[::1]:8081/api",  # IPv6 loopback
        "http://localhost:8081/api",  # a name that resolves outside the networks
        "http://no-such-host.invalid/cb",  # a name that does not resolve
        "ftp://127.0.1.5/cb",  # not http(s)
        "http://user:pw@127.0.1.5/cb",  # credentials in the URL
    ],
)
async def test_callbacks_may_only_point_where_the_operator_allows(ams: Ams, callback: str) -> None:
    """A subscription whose callback would make the AMS reach somewhere it must not is refused."""
    status, kind, problem = await call(ams, "POST", "/subscriptions", subscription(callback))
    assert status in (400, 422), problem
    assert kind == PROBLEM
    assert (await call(ams, "GET", "/subscriptions"))[2]["subscription"] == []


async def test_a_callback_to_the_ams_itself_is_refused(tmp_path: Path) -> None:
    """Even inside the allowed networks, the AMS's own listener is no destination."""
    settings = AmsSettings(port=0, db=tmp_path / "a.sqlite3", callback_networks=["127.0.0.0/8"])
    async with serving_ams(settings) as ams:
        own = ams.base_url.split("/amsi")[0]
        status, _, _ = await call(ams, "POST", "/subscriptions", subscription(f"{own}/amsi/v1/x"))
        assert status == 422
        status, _, _ = await call(
            ams, "POST", "/subscriptions", subscription("http://127.0.0.9:9/cb")
        )
        assert status == 201


async def test_subscription_shapes(ams: Ams) -> None:
    """mobilityStatus defaults to TRIGGERED and is said back; a websocket, a filter naming
    nobody, and a type change are refused; the list filters by type."""
    status, _, made = await call(
        ams, "POST", "/subscriptions", subscription("http://127.0.1.5:9/cb")
    )
    assert status == 201
    assert made["filterCriteria"]["mobilityStatus"] == [1]
    href = made["_links"]["self"]["href"]
    sid = href.rsplit("/", 1)[1]
    ws = {
        **subscription("http://127.0.1.5:9/cb"),
        "websockNotifConfig": {"requestWebsocketUri": True},
    }
    assert (await call(ams, "POST", "/subscriptions", ws))[0] == 422
    nobody = {**subscription("http://127.0.1.5:9/cb"), "filterCriteria": {}}
    assert (await call(ams, "POST", "/subscriptions", nobody))[0] == 400
    adjacent = {
        "subscriptionType": "AdjacentAppInfoSubscription",
        "callbackReference": "http://127.0.1.5:9/cb",
        "filterCriteria": {"appInstanceId": "shop.u1.edge1"},
    }
    assert (await call(ams, "PUT", f"/subscriptions/{sid}", adjacent))[0] == 400
    assert (await call(ams, "POST", "/subscriptions", adjacent))[0] == 201
    _, _, only = await call(ams, "GET", "/subscriptions?subscriptionType=mobility_proc")
    assert [s["href"] for s in only["subscription"]] == [href]
    assert (await call(ams, "GET", "/subscriptions?subscriptionType=other"))[0] == 400


async def test_registrations_and_subscriptions_survive_a_restart(ams_settings: AmsSettings) -> None:
    """What was accepted before a restart is served after it, ids unchanged."""
    async with serving_ams(ams_settings) as ams:
        _, _, reg = await call(
            ams, "POST", "/app_mobility_services", registration("a.b.c", "10.0.0.1")
        )
        _, _, sub = await call(ams, "POST", "/subscriptions", subscription("http://127.0.1.5:9/cb"))
    async with serving_ams(ams_settings) as ams:
        assert (await call(ams, "GET", f"/app_mobility_services/{reg['appMobilityServiceId']}"))[
            2
        ] == reg
        sid = sub["_links"]["self"]["href"].rsplit("/", 1)[1]
        assert (await call(ams, "GET", f"/subscriptions/{sid}"))[2]["callbackReference"] == sub[
            "callbackReference"
        ]


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage"])
async def test_a_damaged_store_stops_the_ams_with_one_line(
    ams_settings: AmsSettings, damage: str
) -> None:
    """A store SQLite cannot read is never silently replaced by an empty one."""
    async with serving_ams(ams_settings) as ams:
        for n in range(50):
            await call(ams, "POST", "/app_mobility_services", registration(f"a.b.c{n}", "10.0.0.1"))
    path = ams_settings.db
    for extra in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        extra.unlink(missing_ok=True)
    data = bytearray(path.read_bytes())
    if damage == "flip":
        for offset in range(100, len(data), 512):
            data[offset] ^= 0xFF
    elif damage == "truncate":
        data = data[: len(data) // 3 + 7]
    else:
        data = bytearray(b"not a database" * 100)
    path.write_bytes(bytes(data))
    with pytest.raises(SubscriberError) as caught:
        async with serving_ams(ams_settings):
            pass
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message


async def test_adjacent_instances_need_a_filter(ams: Ams) -> None:
    """The query names its instance with the MEC 009 filter; anything else is a 400."""
    await ams.learn_instance("shop.u1.edge2", "shop", "edge2", "127.0.2.1", 8080)
    status, _, found = await call(
        ams, "GET", "/queries/adjacent_app_instances?filter=(eq,appInstanceId,shop.u1.edge1)"
    )
    assert status == 200
    assert [f["appInstanceId"] for f in found] == ["shop.u1.edge2"]
    assert (await call(ams, "GET", "/queries/adjacent_app_instances"))[0] == 400
    long_id = "x" * (MAX_ID + 1)
    status, _, _ = await call(
        ams, "GET", f"/queries/adjacent_app_instances?filter=(eq,appInstanceId,{long_id})"
    )
    assert status == 400


async def test_too_many_registrations_is_a_503_not_a_crash(tmp_path: Path) -> None:
    """Past ams.max_registrations the AMS says so, and keeps serving."""
    settings = AmsSettings(port=0, db=tmp_path / "a.sqlite3", max_registrations=2)
    async with serving_ams(settings) as ams:
        for n in range(2):
            assert (await call(ams, "POST", "/app_mobility_services", registration(f"a.b.{n}")))[
                0
            ] == 201
        status, kind, _ = await call(ams, "POST", "/app_mobility_services", registration("a.b.x"))
        assert (status, kind) == (503, PROBLEM)
        # The same instance registering again replaces its registration: still room.
        assert (await call(ams, "POST", "/app_mobility_services", registration("a.b.0")))[0] == 201
