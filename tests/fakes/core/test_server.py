"""Tests for the fake core's control API and its capacity."""

from __future__ import annotations

import aiohttp

from subscriber.cli import build_parser
from subscriber.fakes.core import FakeCoreServer


async def test_control_api_adds_moves_and_removes_ues(
    fake: FakeCoreServer, http: aiohttp.ClientSession
) -> None:
    """Bulk add, single add, move (validated hex) and delete change the AMF's UE contexts."""
    async with http.post(
        f"{fake.url}/fake/ues", json={"count": 5, "firstImsi": 208930000001000}
    ) as response:
        assert (await response.json())["added"] == 5
    supi = "imsi-208930000001004"
    async with http.post(
        f"{fake.url}/fake/ues/{supi}/move", json={"tac": "0000FF", "nrCellId": "00000ABCD"}
    ) as response:
        assert response.status == 204
    assert b'"tac":"0000ff"' in fake.core.amf.ues[supi].location_json
    async with http.post(
        f"{fake.url}/fake/ues/{supi}/move", json={"tac": "1", "nrCellId": "2"}
    ) as response:
        assert response.status == 400
    async with http.post(
        f"{fake.url}/fake/ues/imsi-0/move", json={"tac": "000001", "nrCellId": "000000001"}
    ) as response:
        assert response.status == 404
    async with http.put(f"{fake.url}/fake/ues/imsi-208930000009999", json={}) as response:
        assert response.status == 204
    async with http.delete(f"{fake.url}/fake/ues/{supi}") as response:
        assert response.status == 204
    async with http.get(f"{fake.url}/fake/status") as response:
        status = await response.json()
    assert status["ues"] == 3 + 5 + 1 - 1
    assert status["mode"] == "free5gc"


async def test_holds_100k_ues() -> None:
    """The fake AMF registers 100,000 UEs, each with its own context."""
    async with FakeCoreServer(ues=100_000) as fake:
        assert len(fake.core.amf.ues) == 100_000
        assert fake.core.amf.ues["imsi-208930000100000"].location_json.startswith(b'{"nrLocation"')


def test_cli_has_the_fakecore_subcommand() -> None:
    """``subscriber fakecore --port N --ues N`` parses to the fake core's runner."""
    args = build_parser().parse_args(["fakecore", "--port", "0", "--ues", "7", "--mode", "notify"])
    assert args.target == "subscriber.fakes.core.server:run"
    assert (args.port, args.ues, args.mode, args.no_oauth) == (0, 7, "notify", False)
