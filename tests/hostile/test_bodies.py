"""Hostile bodies, paths and methods against the real receiver process (granian, h2c + HTTP/1.1)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.callbacks import VECTORS, amf_body
from tests.support.h2raw import RawH2
from tests.support.problems import check_answer
from tests.support.processes import Server

pytestmark = [pytest.mark.stack]

AMF, SMF, NEF = "/callbacks/amf/loc-1", "/callbacks/smf/1", "/callbacks/nef/sub-7"
CALLBACKS = [AMF, SMF, NEF]
JSON = {"content-type": "application/json"}
# Everything a callback may answer to a body: accepted, invalid, too large, wrong media type, and
# (spool full) unavailable. Never 500.
CALLBACK_ANSWERS = {204, 400, 413, 415, 503}
VALID = {
    AMF: orjson.loads(amf_body(1, 1)),
    SMF: orjson.loads((VECTORS / "d3-smf-up-path-ch-early.json").read_bytes()),
    NEF: {
        "subscription": "http://nef.example/3gpp-monitoring-event/v1/af/subscriptions/sub-7",
        "monitoringEventReports": [
            {
                "monitoringType": "LOCATION_REPORTING",
                "externalId": "ue1@example.com",
                "eventTime": "2026-07-01T08:15:30.123456789Z",
                "locationInfo": {"plmnId": "208-93", "trackingAreaId": "00000A", "cellId": "1F"},
            }
        ],
    },
}
HYPOTHESIS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=25,
)


@pytest.fixture(scope="module")
def h2(server: Server) -> Iterator[httpx.Client]:
    """An h2c prior-knowledge client (what free5GC sends), kept for the module."""
    with httpx.Client(http2=True, http1=False, base_url=server.base, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def h1(server: Server) -> Iterator[httpx.Client]:
    """An HTTP/1.1 client."""
    with httpx.Client(base_url=server.base, timeout=30) as client:
        yield client


def post(client: httpx.Client, path: str, body: bytes, **headers: str) -> httpx.Response:
    """POST ``body`` as JSON unless another content type is given."""
    return client.post(path, content=body, headers={**JSON, **headers})


def checked(answer: httpx.Response, allowed: set[int] = CALLBACK_ANSWERS) -> httpx.Response:
    """``answer`` after :func:`check_answer`."""
    check_answer(answer.status_code, dict(answer.headers), answer.content, allowed)
    return answer


def dumps(document: Any) -> bytes:
    """JSON text of ``document``; integers past 64 bits too (which orjson cannot write)."""
    return json.dumps(document).encode()


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            found.extend(_paths(value, (*prefix, key)))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            found.extend(_paths(value, (*prefix, index)))
    return found


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = json.loads(json.dumps(doc))
    node = copy
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return copy


@HYPOTHESIS
@given(path=st.sampled_from(CALLBACKS), document=json_values)
def test_arbitrary_json_gets_204_or_a_problem(h2: httpx.Client, path: str, document: Any) -> None:
    """Any JSON document, to any callback, is accepted or answered with a 400 problem."""
    checked(post(h2, path, dumps(document)), {204, 400})


@HYPOTHESIS
@given(path=st.sampled_from(CALLBACKS), data=st.data())
def test_wrong_types_anywhere_in_a_valid_body(h2: httpx.Client, path: str, data: Any) -> None:
    """A valid notification with any one value replaced by any JSON value: 204 or 400."""
    doc = VALID[path]
    where = data.draw(st.sampled_from(_paths(doc)))
    body = dumps(_replace(doc, where, data.draw(json_values)))
    checked(post(h2, path, body), {204, 400})


@HYPOTHESIS
@given(
    path=st.sampled_from(CALLBACKS),
    body=st.binary(max_size=2048)
    | st.sampled_from([b'{"a":"\xff\xfe"}', b"\xc3\x28", b'{"supi":"\xed\xa0\x80"}', b"\x00"]),
    content_type=st.sampled_from(
        ["application/json", "application/json; charset=utf-8", "text/plain", "", "application/xml"]
    ),
)
def test_arbitrary_bytes_and_media_types(
    h1: httpx.Client, path: str, body: bytes, content_type: str
) -> None:
    """Random bytes (invalid UTF-8 among them) under any media type: 400 or 415, never 500."""
    checked(post(h1, path, body, **{"content-type": content_type}), {204, 400, 415})


@HYPOTHESIS
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
    path=st.sampled_from(
        [
            *CALLBACKS,
            "/callbacks/amf/unknown",
            "/callbacks/xyz/1",
            "/callbacks/amf/",
            "/callbacks/amf/a/b",
            "/healthz",
            "/readyz",
            "/metrics",
            "/",
            "/callbacks",
        ]
    )
    | st.from_regex(r"/[A-Za-z0-9._~%/-]{0,60}", fullmatch=True),
)
def test_every_method_on_every_path(h2: httpx.Client, method: str, path: str) -> None:
    """Probes and unknown paths answer as documented; errors are problems; nothing is a 500."""
    answer = h2.request(method, path, content=b"{}", headers=JSON)
    allowed = {400, 404, 405}
    if method == "GET" and path in ("/healthz", "/metrics"):
        allowed = {200}
    elif method == "GET" and path == "/readyz":
        allowed = {200, 503}
    elif method == "POST" and path in CALLBACKS:
        allowed = {204, 400}
    checked(answer, allowed)


def test_deeply_nested_json_is_a_400(h2: httpx.Client) -> None:
    """100k nested arrays, 100k nested objects, and a deep value inside a valid body: 400."""
    arrays = b"[" * 100_000 + b"]" * 100_000
    objects = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    inside = orjson.dumps(VALID[AMF]).replace(b'"reportList":', b'"reportList":' + b"[" * 50_000)
    inside += b"]" * 50_000
    for path in CALLBACKS:
        for body in (arrays, objects, inside):
            checked(post(h2, path, body), {400})


def test_huge_arrays(h2: httpx.Client) -> None:
    """300k wrong-typed items are a 400; 1,000 valid reports in one body are accepted."""
    wrong = orjson.dumps({**VALID[AMF], "reportList": [1] * 300_000})
    checked(post(h2, AMF, wrong), {400})
    many = orjson.dumps({**VALID[AMF], "reportList": VALID[AMF]["reportList"] * 1000})
    assert len(many) < 1_048_576
    checked(post(h2, AMF, many), {204})


def test_bodies_far_over_the_cap(server: Server, h1: httpx.Client) -> None:
    """50 MB declared, 3 MB sent whole, 2 MB chunked or streamed without a length: 413 each."""
    checked(post(h1, AMF, b" " * 3_000_000), {413})
    raw = RawH2(server.port)
    try:
        declared = raw.start(
            "POST",
            AMF,
            headers=[("content-type", "application/json"), ("content-length", "52428800")],
            end=False,
        )
        raw.send_data(declared, b" " * 65_536)
        unbounded = raw.start(
            "POST", SMF, headers=[("content-type", "application/json")], end=False
        )
        raw.send_data(unbounded, b" " * 2_000_000)
        for answer in raw.wait([declared, unbounded]):
            assert answer.status == 413, answer
            check_answer(answer.status, answer.headers, answer.body, {413})
    finally:
        raw.close()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            f"POST {NEF} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            "transfer-encoding: chunked\r\n\r\n".encode()
        )
        chunk = b"%x\r\n%s\r\n" % (65_536, b" " * 65_536)
        with_answer = b""
        for _ in range(32):  # 2 MiB, or less if the server answers first
            try:
                sock.sendall(chunk)
            except OSError:
                break
            sock.settimeout(0.01)
            try:
                with_answer += sock.recv(65_536)
            except TimeoutError:
                continue
            if b"\r\n\r\n" in with_answer:
                break
        sock.settimeout(10)
        while b"\r\n\r\n" not in with_answer:
            more = sock.recv(65_536)
            if not more:
                break
            with_answer += more
    assert with_answer.startswith(b"HTTP/1.1 413"), with_answer[:200]
    assert server.healthy()


async def _slow_post(port: int, body: bytes, bytes_per_step: int, step_s: float) -> bytes:
    """POST ``body`` a few bytes at a time; return the status line (empty if none came)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"POST {AMF} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n".encode()
        )
        for start in range(0, len(body), bytes_per_step):
            writer.write(body[start : start + bytes_per_step])
            await writer.drain()
            await asyncio.sleep(step_s)
        return await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()


async def _stalled(port: int, hold_s: float) -> None:
    """Declare a body, send a few bytes of it, then go silent and leave."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"POST {AMF} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        "content-length: 1000\r\n\r\n{".encode()
    )
    await writer.drain()
    await asyncio.sleep(hold_s)
    writer.close()


async def test_slow_bodies_do_not_starve_other_clients(server: Server) -> None:
    """50 stalled bodies plus one valid body at ~250 B/s: others are served meanwhile, the
    slow valid body is accepted, and the stalled ones cost nothing once their clients leave."""
    body = amf_body(7, 7)
    stalled = [asyncio.create_task(_stalled(server.port, 4.0)) for _ in range(50)]
    slow = asyncio.create_task(_slow_post(server.port, body, 50, 0.2))
    await asyncio.sleep(0.5)
    async with httpx.AsyncClient(http2=True, http1=False, timeout=10) as http:
        started = time.monotonic()
        normal = await http.post(f"{server.base}{AMF}", content=amf_body(8, 8), headers=JSON)
        health = await http.get(f"{server.base}/healthz")
        served_in = time.monotonic() - started
    status_line = await slow
    await asyncio.gather(*stalled)
    assert normal.status_code == 204
    assert health.status_code == 200
    assert status_line.startswith(b"HTTP/1.1 204"), status_line
    print(f"\nhostile figures (slow bodies): others served in {served_in * 1000:.0f} ms")
    assert server.healthy()
