"""A bare HTTP/2 (h2c prior knowledge) client over a blocking socket, built on the ``h2`` library.

httpx hides streams; the hostile tests need them: opening more than the server allows, leaving
bodies unfinished, and resetting streams (RST_STREAM) on one connection.
"""

from __future__ import annotations

import collections
import socket
import time
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.settings
from h2.errors import ErrorCodes


@dataclass
class Answer:
    """What the server did with one stream."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    ended: bool = False
    reset: ErrorCodes | int | None = None

    @property
    def done(self) -> bool:
        """Answered completely, or reset by the server."""
        return self.ended or self.reset is not None


class RawH2:
    """One h2c connection to 127.0.0.1:``port``."""

    def __init__(self, port: int, *, timeout_s: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
        self.conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.conn.initiate_connection()
        self.answers: dict[int, Answer] = {}
        self.goaway: ErrorCodes | int | None = None
        self.closed = False
        self.flush()

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def flush(self) -> None:
        """Send what h2 has queued."""
        data = self.conn.data_to_send()
        if data and not self.closed:
            try:
                self.sock.sendall(data)
            except OSError:  # the server closed the connection (after a GOAWAY, say)
                self.closed = True

    @property
    def max_concurrent_streams(self) -> int:
        """The server's SETTINGS_MAX_CONCURRENT_STREAMS."""
        return int(self.conn.remote_settings.max_concurrent_streams)

    def ignore_stream_limit(self) -> None:
        """Let h2 open streams past the server's limit (h2 refuses to, locally, by default)."""
        code = h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS
        self.conn.remote_settings._settings[code] = collections.deque([2**31 - 1])

    def start(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: list[tuple[str, str]] | None = None,
        end: bool = True,
    ) -> int:
        """Open a stream; send the body (if any) and END_STREAM unless ``end`` is False."""
        stream_id: int = self.conn.get_next_available_stream_id()
        all_headers = [
            (":method", method),
            (":path", path),
            (":scheme", "http"),
            (":authority", "127.0.0.1"),
            *(headers or []),
        ]
        self.conn.send_headers(stream_id, all_headers, end_stream=end and not body)
        self.answers[stream_id] = Answer()
        if body:
            self.send_data(stream_id, body, end=end)
        self.flush()
        return stream_id

    def send_data(self, stream_id: int, data: bytes, *, end: bool = False) -> None:
        """Send body bytes in frames the flow-control windows allow (reading while blocked)."""
        view = memoryview(data)
        while view:
            window = min(
                self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size
            )
            if window <= 0:
                self.flush()
                self.read(0.5)
                if stream_id in self.answers and self.answers[stream_id].done:
                    return  # the server answered (413) or reset the stream: stop sending
                continue
            self.conn.send_data(stream_id, bytes(view[:window]))
            view = view[window:]
        if end:
            self.conn.end_stream(stream_id)
        self.flush()

    def reset(self, stream_id: int, code: ErrorCodes = ErrorCodes.CANCEL) -> None:
        """RST_STREAM one of our streams."""
        self.conn.reset_stream(stream_id, code)
        self.flush()

    def read(self, timeout_s: float) -> None:
        """Read and handle frames for at most ``timeout_s`` (or until the peer closes)."""
        self.sock.settimeout(max(timeout_s, 0.001))
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return
        except OSError:
            self.closed = True
            return
        if not data:
            self.closed = True
            return
        for event in self.conn.receive_data(data):
            self._handle(event)
        self.flush()

    def _handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            answer = self.answers.setdefault(event.stream_id, Answer())
            headers = {str(k): str(v) for k, v in event.headers}
            answer.status = int(headers.pop(":status"))
            answer.headers = headers
        elif isinstance(event, h2.events.DataReceived):
            self.answers.setdefault(event.stream_id, Answer()).body += event.data
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            self.answers.setdefault(event.stream_id, Answer()).ended = True
        elif isinstance(event, h2.events.StreamReset):
            self.answers.setdefault(event.stream_id, Answer()).reset = event.error_code
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event.error_code
            self.closed = True

    def wait(self, stream_ids: list[int], timeout_s: float = 30.0) -> list[Answer]:
        """Read until every stream in ``stream_ids`` is done, the connection ends, or time is up."""
        deadline = time.monotonic() + timeout_s
        while not self.closed and time.monotonic() < deadline:
            if all(self.answers[s].done for s in stream_ids):
                break
            self.read(min(0.5, deadline - time.monotonic()))
        return [self.answers[s] for s in stream_ids]
