"""Many streams and stream resets on one h2c connection, and memory under hostile load."""

from __future__ import annotations

import pytest
from h2.errors import ErrorCodes

from tests.support.callbacks import amf_body
from tests.support.h2raw import RawH2
from tests.support.problems import check_answer
from tests.support.processes import Server

pytestmark = [pytest.mark.stack]

AMF = "/callbacks/amf/loc-1"
JSON = [("content-type", "application/json")]


def test_as_many_streams_as_the_server_allows_are_all_answered(server: Server) -> None:
    """One connection opens its full SETTINGS_MAX_CONCURRENT_STREAMS of callbacks at once."""
    raw = RawH2(server.port)
    try:
        raw.read(1.0)  # the server's SETTINGS
        limit = raw.max_concurrent_streams
        assert 0 < limit <= 1000
        streams = [
            raw.start("POST", AMF, body=amf_body(ue, 1), headers=JSON) for ue in range(limit)
        ]
        answers = raw.wait(streams, timeout_s=60)
    finally:
        raw.close()
    print(f"\nhostile figures (h2 streams): {limit} concurrent streams on one connection")
    assert [a.status for a in answers] == [204] * limit
    assert server.healthy()


def test_streams_past_the_limit_are_refused_and_the_rest_still_answered(server: Server) -> None:
    """Past the limit, the HTTP/2 layer refuses the extra streams; the held ones, once their
    bodies arrive, are answered, and the connection stays usable."""
    raw = RawH2(server.port)
    try:
        raw.read(1.0)
        limit = raw.max_concurrent_streams
        body = amf_body(1, 2)
        headers = [*JSON, ("content-length", str(len(body)))]
        held = [raw.start("POST", AMF, headers=headers, end=False) for _ in range(limit)]
        raw.ignore_stream_limit()
        extra = [raw.start("POST", AMF, headers=headers, end=False) for _ in range(50)]
        refused = raw.wait(extra, timeout_s=30)
        for stream in held:
            raw.send_data(stream, body, end=True)
        answered = raw.wait(held, timeout_s=60)
        after = raw.start("GET", "/healthz")
        (health,) = raw.wait([after])
    finally:
        raw.close()
    codes = {a.reset for a in refused}
    print(f"\nhostile figures (h2 past the limit): extra streams reset with {codes}")
    assert {a.reset for a in refused} <= {ErrorCodes.REFUSED_STREAM, ErrorCodes.PROTOCOL_ERROR}
    assert all(a.status is None for a in refused)
    assert [a.status for a in answered] == [204] * limit
    assert health.status == 200
    assert server.healthy()


def test_reset_streams_leave_the_server_healthy(server: Server) -> None:
    """1,000 streams reset by the client mid-body (rapid reset), up to 100 per connection:
    answers that come are well formed, a connection that resets too much gets a GOAWAY
    (ENHANCE_YOUR_CALM), and the server keeps serving new connections."""
    reset = 0
    goaways: list[object] = []
    for _ in range(50):  # connections; the server may end each one early with a GOAWAY
        if reset >= 1000:
            break
        raw = RawH2(server.port)
        try:
            raw.read(0.5)
            for _ in range(100):
                if raw.closed or reset >= 1000:
                    break
                stream = raw.start("POST", AMF, headers=JSON, end=False)
                raw.send_data(stream, b'{"reportList": [')
                raw.reset(stream, ErrorCodes.CANCEL)
                reset += 1
            raw.read(0.2)
            for answer in raw.answers.values():
                if answer.status is not None and answer.ended:
                    check_answer(answer.status, answer.headers, answer.body, {400})
            if not raw.closed:
                (health,) = raw.wait([raw.start("GET", "/healthz")])
                assert health.status == 200 or raw.goaway is not None, health
            goaways.append(raw.goaway)
        finally:
            raw.close()
    print(f"\nhostile figures (h2 resets): {reset} streams reset, GOAWAYs {set(goaways)}")
    assert reset == 1000
    assert set(goaways) <= {None, ErrorCodes.NO_ERROR, ErrorCodes.ENHANCE_YOUR_CALM}
    assert server.healthy()


def test_memory_stays_bounded_under_repeated_hostile_load(server: Server) -> None:
    """Resident memory of the server processes grows by less than 64 MiB over five rounds of
    deep JSON, oversized bodies, held and reset streams, after three warm-up rounds."""
    deep = b"[" * 100_000 + b"]" * 100_000

    def round_of_abuse() -> None:
        raw = RawH2(server.port)
        try:
            raw.read(0.5)
            streams = [raw.start("POST", AMF, body=deep, headers=JSON) for _ in range(20)]
            for _ in range(20):
                big = raw.start("POST", AMF, headers=JSON, end=False)
                raw.send_data(big, b" " * 1_100_000)
                streams.append(big)
            for answer in raw.wait(streams, timeout_s=60):
                assert answer.status in (400, 413), answer
            for _ in range(100):
                if raw.closed:  # a GOAWAY for too many resets is allowed
                    break
                stream = raw.start("POST", AMF, headers=JSON, end=False)
                raw.send_data(stream, b"{")
                raw.reset(stream)
            raw.read(0.2)
        finally:
            raw.close()

    for _ in range(3):  # warm-up: allocator arenas, producer buffers, granian's pools
        round_of_abuse()
    before = server.rss_kib()
    for _ in range(5):
        round_of_abuse()
    after = server.rss_kib()
    print(f"\nhostile figures (memory): RSS {before / 1024:.0f} MiB -> {after / 1024:.0f} MiB")
    assert after - before < 64 * 1024
    assert server.healthy()
