"""Tests for the replay client: HPACK without state, and h2c against servers that misbehave."""

from __future__ import annotations

import asyncio
import contextlib

import hpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from subscriber.errors import SubscriberError
from subscriber.sre.client import CompressionError, encode_fields, status_of
from subscriber.sre.recording import Item, RawCallback
from subscriber.sre.replay import Selection, Summary, schedule, to_receiver
from tests.support.h2peer import Got, Peer, fields, frame, raw_peer, serving

_NAMES = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=20).map(str.encode)
_VALUES = st.binary(max_size=300).map(lambda b: bytes(c % 94 + 32 for c in b))


@given(
    status=st.integers(100, 599),
    extra=st.lists(st.tuples(_NAMES, _VALUES), max_size=5),
    huffman=st.booleans(),
)
def test_status_is_read_from_any_block_an_hpack_encoder_writes(
    status: int, extra: list[tuple[bytes, bytes]], huffman: bool
) -> None:
    """Whatever a conforming encoder does with a table of size 0 (size update, Huffman,
    static or literal status), the first field's status is read."""
    encoder = hpack.Encoder()
    encoder.header_table_size = 0
    block = encoder.encode([(b":status", str(status).encode()), *extra], huffman=huffman)
    assert status_of(block) == str(status)


@given(st.binary(max_size=64))
def test_a_garbled_block_is_a_compression_error_never_a_crash(block: bytes) -> None:
    """Random bytes give a status or CompressionError, nothing else."""
    with contextlib.suppress(CompressionError):
        status_of(block)


@given(st.lists(st.tuples(_NAMES, _VALUES), max_size=8))
def test_request_fields_decode_to_themselves_and_leave_no_table_state(
    pairs: list[tuple[bytes, bytes]],
) -> None:
    """Our field blocks decode to exactly the fields given, and add nothing to the server's
    dynamic table, so each block stands alone."""
    headers = [(b":method", b"POST"), (b":path", b"/callbacks/amf/x"), *pairs]
    decoder = hpack.Decoder()
    assert decoder.decode(encode_fields(headers), raw=True) == headers
    assert len(decoder.header_table.dynamic_entries) == 0


def _plan(n: int, ues: int = 1, body: bytes = b"{}") -> list[tuple[float, Item]]:
    """``n`` callbacks of ``ues`` UEs, round robin; the path names the UE and the number."""
    return [
        (0.0, Item(float(i), f"ue{i % ues}", callback=RawCallback(f"/cb/amf/u{i % ues}/{i}", body)))
        for i in range(n)
    ]


def _per_ue(got: list[Got]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for g in got:
        _, _, _, ue, n = g.path.split("/")
        out.setdefault(ue, []).append(int(n))
    return out


async def test_small_windows_one_stream_at_a_time_and_large_bodies_arrive_whole() -> None:
    """With a 100-byte window and one stream per connection, 200 KB bodies arrive intact, the
    stream limit holds, and each UE's callbacks arrive in order."""
    peer = Peer(max_streams=1, window=100)
    body = bytes(range(256)) * 800
    async with serving(peer) as url:
        summary = await to_receiver(url, _plan(12, ues=3, body=body), speed=0, connections=2)
    assert (summary.sent, summary.accepted, summary.statuses) == (12, 12, {"204": 12})
    assert all(g.body == body for g in peer.got)
    assert peer.most_open == 1
    assert _per_ue(peer.got) == {f"u{u}": list(range(u, 12, 3)) for u in range(3)}


async def test_free5gc_headers_go_out_as_recorded() -> None:
    """Each request carries free5GC's headers and the recorded content type and path."""
    peer = Peer()
    plan = [(0.0, Item(0.0, "a", callback=RawCallback("/cb/x?y=1", b"{}", "application/merge")))]
    async with serving(peer) as url:
        await to_receiver(url + "/base", plan, speed=0)
    (got,) = peer.got
    assert got.path == "/base/cb/x?y=1"
    assert got.headers["content-type"] == "application/merge"
    assert got.headers["user-agent"] == "OpenAPI-Generator/1.0.0/go"
    assert got.headers["accept"] == "application/json, application/problem+json"
    assert got.headers[":authority"] == f"127.0.0.1:{peer.port}"


async def test_goaway_midway_sends_the_unprocessed_requests_again_exactly_once() -> None:
    """A GOAWAY whose last stream id leaves requests unprocessed: they go again on a new
    connection; every callback is processed once and answered once."""
    fired: set[int] = set()

    def script(got: Got, n: int) -> str:
        if n in (5, 40) and n not in fired:
            fired.add(n)
            return "goaway"
        return "answer"

    peer = Peer(script=script)  # type: ignore[arg-type]
    async with serving(peer) as url:
        summary = await to_receiver(url, _plan(80, ues=20), speed=0, connections=1)
    assert (summary.sent, summary.accepted, summary.rejected) == (80, 80, 0), summary.statuses
    assert sorted(int(g.path.rsplit("/", 1)[1]) for g in peer.got) == list(range(80))
    assert peer.connections >= 3
    assert _per_ue(peer.got) == {f"u{u}": list(range(u, 80, 20)) for u in range(20)}


async def test_refused_streams_go_again_and_other_resets_are_answers() -> None:
    """REFUSED_STREAM means unprocessed (sent again); INTERNAL_ERROR is the request's answer."""
    refused: set[str] = set()

    def script(got: Got, n: int) -> str:
        if got.path.endswith(("/3", "/7")) and got.path not in refused:
            refused.add(got.path)
            return "refuse"
        return "reset" if got.path.endswith("/5") else "answer"

    peer = Peer(script=script)  # type: ignore[arg-type]
    async with serving(peer) as url:
        summary = await to_receiver(url, _plan(10, ues=2), speed=0)
    assert summary.statuses == {"204": 9, "RST_INTERNAL_ERROR": 1}
    assert sorted(int(g.path.rsplit("/", 1)[1]) for g in peer.got) == list(range(10))


async def test_a_silent_server_times_out_and_a_dropped_connection_is_an_answer() -> None:
    """No answer within the timeout answers Timeout; a connection dropped with requests in
    flight answers ConnectionError for them, and later ones go over a new connection."""
    peer = Peer(script=lambda got, n: "silent" if n == 0 else ("drop" if n == 3 else "answer"))
    async with serving(peer) as url:
        summary = await to_receiver(url, _plan(8), speed=0, timeout_s=0.5, connections=1)
    assert summary.statuses == {"Timeout": 1, "ConnectionError": 1, "204": 6}
    assert peer.connections == 2


async def test_nothing_listening_is_one_clear_error() -> None:
    """A URL where nothing listens fails at once with the URL in the message."""
    async with serving(Peer()) as url:
        pass
    with pytest.raises(SubscriberError, match="cannot connect"):
        await to_receiver(url, _plan(1), speed=0)
    with pytest.raises(SubscriberError, match="http://host:port"):
        await to_receiver("https://127.0.0.1:1", _plan(1), speed=0)


def _answer_with(stream_id: int) -> bytes:
    """Padding, priority, CONTINUATION, an informational answer, a PING, DATA and trailers."""
    informational = frame(1, 0x4, stream_id, fields((":status", "100")))
    block = fields((":status", "202"), ("x-long", "v" * 20_000), huffman=False)
    padded = bytes((7,)) + b"\x00\x00\x00\x00\x10" + block[:9000] + b"\x00" * 7
    head = frame(1, 0x8 | 0x20, stream_id, padded)  # PADDED | PRIORITY, no END_HEADERS
    more = frame(9, 0, stream_id, block[9000:15000]) + frame(9, 0x4, stream_id, block[15000:])
    ping = frame(6, 0, 0, b"12345678")
    data = frame(0, 0x8, stream_id, bytes((3,)) + b"body" + b"\x00" * 3)
    trailers = frame(1, 0x4 | 0x1, stream_id, fields(("x-trailer", "t")))
    return informational + head + more + ping + data + trailers


async def test_the_frames_a_server_may_use_are_all_understood() -> None:
    """A 202 spread over padded, prioritized HEADERS and CONTINUATION, after a 100, with a
    PING, padded DATA and trailers, is a 202; the PING is acknowledged."""
    seen: list[bytes] = []
    async with raw_peer(_answer_with, seen) as url:
        summary = await to_receiver(url, _plan(3), speed=0)
    assert summary.statuses == {"202": 3}
    assert frame(6, 0x1, 0, b"12345678") in seen


@pytest.mark.parametrize(
    "bad",
    [
        frame(5, 0x4, 1, b"\x00\x00\x00\x02" + fields((":status", "200"))),  # PUSH_PROMISE
        frame(9, 0x4, 1, fields((":status", "200"))),  # CONTINUATION out of the blue
        frame(1, 0x5, 1, b"\xbf\xff\xff"),  # a dynamic table entry we never allowed
        frame(1, 0x5, 1, fields(("x", "y"))),  # no :status
        b"\x00\x40\x01" + b"\x00" * 6 + b"x" * 16_385,  # a frame above our maximum size
        frame(6, 0, 0, b"1234"),  # a PING of the wrong size
        frame(8, 0, 0, b"\x7f\xff\xff\xff"),  # a connection window above 2^31 - 1
        frame(4, 0, 0, b"\x00\x03\x00"),  # SETTINGS not a multiple of 6 bytes
        frame(1, 0x8 | 0x5, 1, b"\x09abc"),  # more padding than payload
        frame(4, 0, 0, b"\x00\x05\x00\x00\x00\x00"),  # SETTINGS_MAX_FRAME_SIZE 0
        frame(4, 0, 0, b"\x00\x05\x01\x00\x00\x00"),  # SETTINGS_MAX_FRAME_SIZE 2^24
    ],
)
async def test_a_broken_server_fails_its_requests_without_raising(bad: bytes) -> None:
    """A protocol or compression error closes the connection; its requests are answered with
    the error, and replay ends normally."""
    async with raw_peer(lambda stream_id: bad, []) as url:
        summary = await to_receiver(url, _plan(2, ues=2), speed=0, timeout_s=2)
    assert summary.sent == 2
    assert summary.accepted == 0
    errors = {"PROTOCOL_ERROR", "COMPRESSION_ERROR", "FRAME_SIZE_ERROR", "FLOW_CONTROL_ERROR"}
    assert set(summary.statuses) <= errors | {"ConnectionError", "ConnectError"}


@settings(deadline=None, max_examples=25)
@given(
    times=st.lists(st.floats(0, 0.6), min_size=1, max_size=25),
    start=st.floats(0, 0.6),
    end=st.floats(0, 0.6),
    ues=st.sets(st.sampled_from("abc")),
)
async def test_pacing_seek_and_ue_filters_are_exact(
    times: list[float], start: float, end: float, ues: set[str]
) -> None:
    """Exactly the items in the window of the chosen UEs arrive, per UE in file order, and
    none before its time (at speed 2)."""
    items = [
        Item(t, "abc"[i % 3], callback=RawCallback(f"/cb/amf/{'abc'[i % 3]}/{i}", b"{}"))
        for i, t in enumerate(sorted(times))
    ]
    selection = Selection(start_s=start, end_s=end, ues=frozenset(ues))
    kept = [i for i in items if selection.keeps(i)]
    peer = Peer()
    async with serving(peer) as url:
        import time

        began = time.monotonic()
        summary = await to_receiver(url, schedule(lambda: items, selection), speed=2)
    assert summary.sent == len(kept)
    assert sorted(g.path for g in peer.got) == sorted(i.callback.path for i in kept if i.callback)
    assert _per_ue(peer.got) == _per_ue(
        [Got(0, 0, i.callback.path, b"", 0, {}) for i in kept if i.callback]
    )
    if kept:
        arrival = {g.path: g.at - began for g in peer.got}
        for item in kept:
            assert item.callback is not None
            assert arrival[item.callback.path] >= (item.t - kept[0].t) / 2


def test_summary_counts_only_2xx_as_accepted() -> None:
    """The summary line names each status."""
    summary = Summary("x", sent=2, accepted=1, rejected=1)
    summary.statuses.update({"204": 1, "Timeout": 1})
    assert "rejected 1 (204: 1, Timeout: 1)" in summary.line()


async def test_http11_keeps_order_and_reopens_connections_the_server_closes() -> None:
    """Over HTTP/1.1 each UE's callbacks arrive in order, a server that closes connections
    after some answers gets new ones, and an answer slower than the timeout is a Timeout."""
    from aiohttp import web

    got: list[Got] = []

    async def handler(request: web.Request) -> web.Response:
        got.append(Got(0, 0, request.path, await request.read(), 0, dict(request.headers)))
        if request.path.endswith("/7"):
            await asyncio.sleep(2)
        closing = {"Connection": "close"} if len(got) % 3 == 0 else {}
        return web.Response(status=204, headers=closing)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        summary = await to_receiver(
            f"http://127.0.0.1:{port}", _plan(30, ues=4), speed=0, http2=False, timeout_s=1
        )
    finally:
        await runner.cleanup()
    assert summary.statuses == {"204": 29, "Timeout": 1}
    assert _per_ue(got) == {f"u{u}": list(range(u, 30, 4)) for u in range(4)}
