"""Our h2c replay client against one built on the ``h2`` library (python-hyper): is ours worth it?

Run with ``.venv/bin/python -m bench.h2client``. Two measurements:

* **Protocol CPU per request, sans-IO**: each client sends a batch of POSTs (a 600-byte
  LOCATION_REPORT-sized body each) and reads the same answer bytes (HEADERS ``:status 204`` and a
  ``date``, END_STREAM), all in memory, no socket and no event loop: what the HTTP/2 layer itself
  costs per request. The ``h2`` client is configured as lean as it goes (no header
  validation or normalisation, bytes headers, no data events kept beyond acknowledging them).
* **Replay to a null server** (``--null``, optional): :func:`subscriber.sre.replay.replay_file`
  over h2c to a granian RSGI app that answers 204 at once, once with our client and once with
  :class:`H2Connection` (an ``h2``-based connection with the same callback interface) put in its
  place: callbacks per second and the client's own CPU per callback.

:class:`H2Connection` does what our connection does for the cases that matter for the figures
(send, read statuses, window updates, resets, GOAWAY); it is a benchmark subject, not product code.
This is not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings

from bench.figures import machine, record
from subscriber.sre import client
from subscriber.sre.client import Answer, Headers, Retry

_BODY = b"x" * 600
_PATH = b"/callbacks/amf/sub-1"
_HEADERS: Headers = ((b"content-type", b"application/json"),)
# What a server sends for each answer: :status 204 (static index 9) and a date, no indexing.
_FIELDS = b"\x89" + b"\x0f\x12" + bytes((29,)) + b"Sun, 06 Dec 2026 23:59:59 GMT"


def _answer_frames(first: int, count: int) -> bytes:
    """What a server sends back for ``count`` client streams from ``first`` on.

    The connection's window given back for the bodies read (as a server does), then one
    HEADERS(END_STREAM, END_HEADERS) per stream.
    """
    head = struct.Struct(">BHBBL")
    window = head.pack(0, 4, 8, 0, 0) + struct.pack(">L", len(_BODY) * count)
    return window + b"".join(
        head.pack(0, len(_FIELDS), 1, 0x5, first + 2 * i) + _FIELDS for i in range(count)
    )


_SERVER_PREFACE = struct.pack(">BHBBL", 0, 0, 4, 0, 0) + struct.pack(">BHBBL", 0, 0, 4, 1, 0)
_MAX_WINDOW = (1 << 31) - 1


class H2Connection(asyncio.Protocol):
    """An h2c connection on the ``h2`` state machine with :class:`client.Connection`'s interface."""

    def __init__(self, authority: bytes, on_idle: Callable[[Any], None]) -> None:
        self._authority = authority
        self._on_idle = on_idle
        config = h2.config.H2Configuration(
            client_side=True,
            header_encoding=None,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
            validate_inbound_headers=False,
            normalize_inbound_headers=False,
        )
        self._h2 = h2.connection.H2Connection(config)
        self._h2.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _MAX_WINDOW,
            },
        )
        self._streams: dict[int, list[Any]] = {}  # id -> [answer, retry, sent_at, status, body]
        self._blocked: list[int] = []
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._flush_scheduled = False
        self.closed = False

    @property
    def room(self) -> int:
        """How many more streams the server lets this connection open now."""
        if self.closed:
            return 0
        return min(self._h2.remote_settings.max_concurrent_streams, 1000) - len(self._streams)

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet answered."""
        return len(self._streams)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Send the preface and open the connection's window."""
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._h2.initiate_connection()
        self._h2.increment_flow_control_window(_MAX_WINDOW - 65_535)
        self._flush()

    def attach(self) -> None:
        """Sans-IO use: the preface, with no transport."""
        self._h2.initiate_connection()
        self._h2.data_to_send()

    def request(
        self,
        method: bytes,
        path: bytes,
        headers: Headers,
        body: bytes,
        answer: Answer,
        retry: Retry,
    ) -> None:
        """Send one request; ``answer`` is called with its status later."""
        conn = self._h2
        stream_id = conn.get_next_available_stream_id()
        fields = [
            (b":method", method),
            (b":scheme", b"http"),
            (b":authority", self._authority),
            (b":path", path),
            *headers,
            (b"content-length", b"%d" % len(body)),
        ]
        conn.send_headers(stream_id, fields, end_stream=not body)
        self._streams[stream_id] = [answer, retry, time.monotonic(), "", body]
        if body:
            self._send_body(stream_id)
        if not self._flush_scheduled and self._transport is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _send_body(self, stream_id: int) -> None:
        stream = self._streams[stream_id]
        body = stream[4]
        conn = self._h2
        while body:
            size = min(
                len(body), conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size
            )
            if size <= 0:
                self._blocked.append(stream_id)
                break
            conn.send_data(stream_id, body[:size], end_stream=size == len(body))
            body = body[size:]
        stream[4] = body

    def _flush(self) -> None:
        self._flush_scheduled = False
        data = self._h2.data_to_send()
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def data_received(self, data: bytes) -> None:
        """Feed the state machine; answer the streams its events end."""
        freed = False
        for event in self._h2.receive_data(data):
            freed |= self._event(event)
        if self._transport is not None:
            self._flush()
        if freed:
            self._on_idle(self)

    def _event(self, event: Any) -> bool:
        """Handle one event (compared by exact type: cheaper than isinstance); True when it
        ended a stream."""
        kind = type(event)
        if kind is h2.events.ResponseReceived:
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                stream[3] = dict(event.headers).get(b":status", b"").decode()
        elif kind is h2.events.DataReceived:
            self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif kind is h2.events.StreamEnded:
            stream = self._streams.pop(event.stream_id, None)
            if stream is not None:
                stream[0](stream[3] or "NoStatus")
                return True
        elif kind is h2.events.StreamReset:
            return self._reset(event.stream_id, event.error_code)
        elif kind is h2.events.WindowUpdated:
            blocked, self._blocked = self._blocked, []
            for stream_id in blocked:
                if stream_id in self._streams:
                    self._send_body(stream_id)
        elif kind is h2.events.ConnectionTerminated:
            self.closed = True
            last = event.last_stream_id or 0
            unprocessed = sorted(s for s in self._streams if s > last)
            for stream_id in unprocessed:
                self._streams.pop(stream_id)[1]()
            return bool(unprocessed)
        return False

    def _reset(self, stream_id: int, code: int) -> bool:
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            return False
        if code == 7:  # REFUSED_STREAM: never processed, send again
            stream[1]()
        else:
            stream[0](f"RST_{code}")
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        """Every request still in flight is answered ``ConnectionError``."""
        self._transport = None
        self.closed = True
        streams, self._streams = self._streams, {}
        for stream_id in sorted(streams):
            streams[stream_id][0]("ConnectionError")
        self._on_idle(self)

    def expire(self, older_than: float) -> None:
        """Reset and answer ``Timeout`` for the streams sent before ``older_than``."""
        late = [sid for sid, s in self._streams.items() if s[2] < older_than]
        for stream_id in late:
            self._h2.reset_stream(stream_id, 8)
            self._streams.pop(stream_id)[0]("Timeout")
        if late:
            self._flush()
            self._on_idle(self)

    def close(self) -> None:
        """Say goodbye (GOAWAY) and close."""
        self.closed = True
        if self._transport is not None and not self._transport.is_closing():
            self._h2.close_connection()
            self._flush()
            self._transport.close()


def _sans_io(kind: str, batches: int, batch: int) -> float:
    """Protocol CPU per request, in µs, for ``kind`` (``ours`` or ``h2``)."""

    async def run() -> float:
        answered = [0]

        def answer(status: str) -> None:
            answered[0] += 1

        def retry() -> None:
            raise AssertionError("nothing is refused here")

        conn: Any
        if kind == "ours":
            conn = client.Connection(b"127.0.0.1:8000", lambda _: None)
            send = conn._out.clear  # what the transport would take: dropped
        else:
            conn = H2Connection(b"127.0.0.1:8000", lambda _: None)
            conn.attach()
            send = conn._h2.data_to_send
        conn.data_received(_SERVER_PREFACE)
        send()
        answers = [_answer_frames(1 + 2 * batch * b, batch) for b in range(batches)]
        started = time.process_time()
        for frames in answers:
            for i in range(batch):
                # Bodies of a few lengths, as UEs' reports differ: the field block changes too.
                conn.request(b"POST", _PATH, _HEADERS, _BODY[: 560 + i % 40], answer, retry)
            send()
            conn.data_received(frames)
            send()
        elapsed = time.process_time() - started
        assert answered[0] == batches * batch, answered
        return elapsed / answered[0] * 1e6

    return asyncio.run(run())


async def _replay_null(ues: int, concurrency: int) -> None:
    from bench.replay import TOPOLOGY, _wait_port, timed_replay
    from subscriber.decide.engine import read_bundle
    from subscriber.sre.simulate import Mobility, simulate, to_recording
    from subscriber.stack.procs import free_port

    params = Mobility(ues=ues, duration_s=1800.0)
    moves = simulate(read_bundle(TOPOLOGY).topology, params, 1)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        callbacks = Path(tmp) / "callbacks.jsonl.gz"
        start = datetime(2026, 7, 1, tzinfo=UTC)
        to_recording(
            callbacks, moves, params, start=start, correlation_id="b", callbacks=True, source={}
        )
        argv = ["-m", "bench.replay", "--serve", str(port), "--null"]
        child = await asyncio.create_subprocess_exec(
            sys.executable, *argv, env=dict(os.environ), stdout=asyncio.subprocess.DEVNULL
        )
        ours = client.Connection
        try:
            await _wait_port(port)
            for name, kind in (("ours", ours), ("h2", H2Connection), ("ours", ours)):
                client.Connection = kind  # type: ignore[assignment,misc]
                summary, per_cpu_s = await timed_replay(
                    callbacks, port, http2=True, concurrency=concurrency
                )
                record("h2client", f"replay to a null app, {name}", summary.rate, "callbacks/s")
                print(
                    f"replay to a null app over h2c, {concurrency} in flight, {name}: "
                    f"{summary.line()}; client {per_cpu_s:,.0f} callbacks per CPU-second"
                )
        finally:
            client.Connection = ours  # type: ignore[misc]
            child.terminate()
            await child.wait()


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch", type=int, default=100, help="Requests in flight at once.")
    parser.add_argument("--null", action="store_true", help="Also replay to a null server.")
    parser.add_argument("--ues", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=256)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    figures: dict[str, list[float]] = {}
    for kind in ("ours", "h2", "ours", "h2"):  # twice, interleaved: the machine's load varies
        figures.setdefault(kind, []).append(_sans_io(kind, args.batches, args.batch))
    for kind, runs in figures.items():
        best = min(runs)
        record("h2client", f"protocol CPU per request, {kind}", best, "µs", better="lower")
        print(
            f"protocol CPU per request, sans-IO, {kind}: {best:.1f} µs "
            f"(runs {runs[0]:.1f}, {runs[1]:.1f})"
        )
    print(f"h2 / ours: {min(figures['h2']) / min(figures['ours']):.1f}x")
    if args.null:
        asyncio.run(_replay_null(args.ues, args.concurrency))


if __name__ == "__main__":
    main()
