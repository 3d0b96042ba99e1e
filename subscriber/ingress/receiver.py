"""The callback receiver: an RSGI app that says 204 only once every event is durably accepted.

Routes:

* ``POST /callbacks/{amf|smf|nef|ti}/{key}``: an AMF event notification, SMF event notification,
  NEF monitoring notification or traffic-influence UP_PATH_CHANGE notification; ``key`` is the
  subscription's secret callback key, which the registry binds to the subscription the body must
  name (:class:`~.normalize.Binding`).
* ``GET /healthz`` (liveness), ``GET /readyz`` (callbacks can be accepted: Kafka reachable or
  spool room, and the registry readable), ``GET /metrics`` (Prometheus).

Answers: 204 once every normalized event is acknowledged by Kafka or fsync'ed to the spool;
401/403 without a bearer token the NRF signed (when ``bearer_key_file`` is set); 404 for an
unknown key; 400 naming the invalid parameters, or the field that names another subscription;
413 past ``max_body_bytes`` (answered as soon as the Content-Length or the bytes read so far pass
it); 408 for a body not complete within 10 s; 415 unless ``application/json``; 503 with
``Retry-After`` when the spool (or its disk) cannot take the events; 500 for anything
unexpected. Every error is TS 29.571 ProblemDetails (``application/problem+json``) without a
stack trace, and every rejected body (but a timed-out or unauthorized one) also goes,
size-capped and with the reason, to the dead-letter topic in the background. The app is served
by granian through its native RSGI interface (:mod:`subscriber.app.receiver`): the body comes in
one call and the answer goes out in one, where ASGI takes two awaited messages each way (a
quarter of granian's per-request cost, docs/performance.md). Why granian, the ordering argument,
the threat model and the measurements are in docs/receiver.md.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import orjson
import structlog
from granian._granian import RSGIHTTPProtocol as HTTPProtocol
from granian._granian import RSGIProtocolClosed as ProtocolClosed
from granian.rsgi import Scope
from opentelemetry import trace

from subscriber import tracing
from subscriber.errors import ForeignCallback, InvalidCallback, InvalidParam, SpoolFull
from subscriber.events import EventRecord
from subscriber.ingress.accepted import AcceptedLog
from subscriber.ingress.bearer import BearerRefused, BearerVerifier
from subscriber.ingress.metrics import KINDS, REJECT_REASONS, ReceiverMetrics
from subscriber.ingress.normalize import Binding
from subscriber.ingress.publisher import DeadLetter
from subscriber.logs import debug_enabled
from subscriber.settings import ReceiverSettings

log = structlog.get_logger()

_CALLBACK_PREFIX = "/callbacks/"
_JSON = "application/json"
_FIRST_CHUNK_WAIT_S = 0.2
# free5GC's client gives up on a callback after 10 s (docs/receiver.md), so nobody waits for the
# answer to a body still arriving after that; without a deadline, stalled bodies would hold
# granian's request slots (1024 per worker) until their clients left.
_BODY_TIMEOUT_S = 10.0
_PROBLEM_HEADERS = [("content-type", "application/problem+json")]
_JSON_HEADERS = [("content-type", _JSON)]


class SubscriptionRegistry(Protocol):
    """Which subscriptions we created and so expect callbacks for."""

    def binding(self, kind: str, key: str) -> Binding | None:
        """The live subscription of ours ``/callbacks/{kind}/{key}`` belongs to, or None."""
        ...

    def is_ready(self) -> bool:
        """False while the registry cannot tell which keys are ours (an unreadable state file)."""
        ...


class EventPublisher(Protocol):
    """Where accepted events and rejected bodies go (:class:`.publisher.Publisher`)."""

    async def publish(self, records: Sequence[EventRecord]) -> None:
        """Return once every event is durably accepted; raise ``SpoolFull`` if impossible."""
        ...

    async def publish_dead_letter(self, letter: DeadLetter) -> None:
        """Keep a rejected body; never raises."""
        ...

    def is_ready(self) -> bool:
        """Kafka is reachable or the spool has room."""
        ...

    @property
    def spool_records(self) -> int:
        """Records waiting in the spool."""
        ...

    @property
    def spool_bytes(self) -> int:
        """Bytes the spool holds."""
        ...

    @property
    def spool_damaged_bytes(self) -> int:
        """Bytes found damaged in the spool and set aside."""
        ...

    @property
    def dead_letters_dropped(self) -> int:
        """Dead letters dropped for want of room."""
        ...


class Callback(NamedTuple):
    """What the normalizer of one kind gets: the subscription, the raw body, when it arrived."""

    kind: str
    binding: Binding
    body: bytes
    received_at: datetime


Normalizer = Callable[[Callback], Sequence[EventRecord]]
"""Parses a callback body and returns its events' records; raises ``InvalidCallback`` on bad
input."""


def default_normalizers() -> dict[str, Normalizer]:
    """Parse (:mod:`subscriber.sbi`) and normalize (:mod:`.normalize`) each callback kind."""
    from subscriber.ingress.normalize import BodyKind, normalize_body

    def normalizer(body_kind: BodyKind) -> Normalizer:
        def run(callback: Callback) -> Sequence[EventRecord]:
            return normalize_body(
                body_kind, callback.body, ingest_time=callback.received_at, binding=callback.binding
            ).records

        return run

    from subscriber.influence import normalize_influence_callback

    return {
        "amf": normalizer(BodyKind.AMF_NOTIFICATION),
        "smf": normalizer(BodyKind.SMF_NOTIFICATION),
        "nef": normalizer(BodyKind.NEF_NOTIFICATION),
        "ti": lambda c: normalize_influence_callback(c.body, c.binding, c.received_at),
    }


def utc_now() -> datetime:
    """The wall clock, in UTC: the receiver's default clock."""
    return datetime.now(UTC)


class _ClientGone(Exception):
    """The client disconnected before its body was complete."""


class _Rejected(Exception):
    """An answer other than 204, with what the dead letter and the log need."""

    def __init__(
        self,
        status: int,
        reason: str,
        detail: str,
        *,
        title: str,
        cause: str | None = None,
        invalid_params: Sequence[InvalidParam] = (),
        headers: Sequence[tuple[str, str]] = (),
        dead_letter: bool = True,
        body: bytes | None = None,
        body_bytes: int = 0,
    ) -> None:
        super().__init__(detail)
        self.body = body
        self.body_bytes = body_bytes
        self.status = status
        self.reason = reason
        self.detail = detail
        self.title = title
        self.cause = cause
        self.invalid_params = invalid_params
        self.headers = list(headers)
        self.dead_letter = dead_letter


def problem_body(
    status: int,
    title: str,
    detail: str,
    cause: str | None = None,
    invalid_params: Sequence[InvalidParam] = (),
) -> bytes:
    """A TS 29.571 ProblemDetails document."""
    doc: dict[str, Any] = {"title": title, "status": status, "detail": detail}
    if cause:
        doc["cause"] = cause
    if invalid_params:
        doc["invalidParams"] = [{"param": p.param, "reason": p.reason} for p in invalid_params]
    return orjson.dumps(doc)


class CaptureWriter:
    """Appends every raw callback to a gzip'ed JSON-lines file, for replay.

    Each process writes its own file; each line is flushed (gzip sync flush) so a crash loses
    at most the line being written. Captures hold identities in clear: they are opt-in and
    must be treated as personal data.
    """

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        self.path = directory / f"callbacks-{stamp}-{os.getpid()}.jsonl.gz"
        self._file = gzip.GzipFile(self.path, "ab")

    def write(
        self,
        *,
        method: str,
        path: str,
        http_version: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        received_at: datetime,
    ) -> None:
        """Append one callback as received; the Authorization header is left out."""
        doc: dict[str, Any] = {
            "received_at": received_at.isoformat(),
            "method": method,
            "path": path,
            "http_version": http_version,
            "headers": [[k, v] for k, v in headers if k.lower() != "authorization"],
        }
        try:
            doc["body"] = body.decode()
        except UnicodeDecodeError:
            doc["body_base64"] = base64.b64encode(body).decode()
        self._file.write(orjson.dumps(doc) + b"\n")
        self._file.flush()

    def close(self) -> None:
        """Finish the gzip stream."""
        self._file.close()


class BodyDeadlines:
    """Cancels body reads past their deadline, checked twice a second.

    One sweep for all requests instead of a timer each: ``asyncio.timeout`` costs about 4 µs
    per request, this a dict entry. A read is cancelled between its deadline and half a second
    after it.
    """

    _SWEEP_S = 0.5

    def __init__(self, timeout_s: float) -> None:
        self._timeout_s = timeout_s
        self._reads: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> asyncio.Task[Any] | None:
        """Give the current task's read its deadline; the task is what :meth:`stop` takes."""
        # The loop named, not looked up: asyncio's lookup makes a getpid() system call on
        # every call (CPython 3.11), once per callback here.
        task = asyncio.current_task(self._loop)
        if task is not None:
            self._reads[task] = time.monotonic() + self._timeout_s
        return task

    def stop(self, task: asyncio.Task[Any] | None) -> None:
        """The read is over (done, failed or expired)."""
        if task is not None:
            self._reads.pop(task, None)
            self._expired.discard(task)

    def expired(self, task: asyncio.Task[Any] | None) -> bool:
        """Whether this cancellation is the deadline's (then it is taken back), not a shutdown."""
        if task is None or task not in self._expired:
            return False
        return task.uncancel() == 0

    async def sweep_forever(self) -> None:
        """Cancel every read past its deadline, until cancelled."""
        self._loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._SWEEP_S)
            now = time.monotonic()
            for task, deadline in list(self._reads.items()):
                if deadline <= now and task not in self._expired:
                    self._expired.add(task)
                    task.cancel()


Lifespan = Callable[["Receiver"], contextlib.AbstractAsyncContextManager[None]]


class Receiver:
    """The RSGI application (granian's native interface).

    granian's worker calls ``__rsgi_init__`` before it serves (the publisher opens there) and
    ``__rsgi_del__`` after it stopped; in-process (granian's embedded server, whose loop already
    runs then) the caller brackets the server with :meth:`startup` and :meth:`shutdown`.

    Args:
        settings: body caps and capture directory.
        normalizers: one per kind (``amf``, ``smf``, ``nef``); see :data:`Normalizer`.
        registry: which subscription keys are ours.
        publisher: where events go; may be set later by ``lifespan``.
        metrics: the process's metrics.
        clock: the receive time of each callback.
        lifespan: entered on startup, left on shutdown (opens the publisher).
        bearer: when set, every callback must carry a bearer token it accepts.
    """

    def __init__(
        self,
        *,
        settings: ReceiverSettings,
        normalizers: Mapping[str, Normalizer],
        registry: SubscriptionRegistry,
        publisher: EventPublisher | None = None,
        metrics: ReceiverMetrics | None = None,
        clock: Callable[[], datetime] = utc_now,
        lifespan: Lifespan | None = None,
        bearer: BearerVerifier | None = None,
    ) -> None:
        self.settings = settings
        self.bearer = bearer
        self.normalizers = dict(normalizers)
        self.registry = registry
        self.metrics = metrics or ReceiverMetrics()
        self.clock = clock
        self.capture: CaptureWriter | None = None
        self._publisher: EventPublisher | None = None
        self._lifespan = lifespan
        self._started: contextlib.AsyncExitStack | None = None
        self.serving = asyncio.Event()
        """Set once granian calls the app's init hook: its socket is bound and it serves."""
        self._background: set[asyncio.Task[None]] = set()
        self._deadlines = BodyDeadlines(_BODY_TIMEOUT_S)
        self.accepted = AcceptedLog()
        self._debug_lines = debug_enabled()
        if publisher is not None:
            self.publisher = publisher

    @property
    def publisher(self) -> EventPublisher:
        """The publisher events go to."""
        if self._publisher is None:
            raise RuntimeError("receiver has no publisher yet (lifespan not started)")
        return self._publisher

    @publisher.setter
    def publisher(self, publisher: EventPublisher) -> None:
        self._publisher = publisher
        self.metrics.watch_spool(
            lambda: publisher.spool_records,
            lambda: publisher.spool_bytes,
            lambda: publisher.spool_damaged_bytes,
            lambda: publisher.dead_letters_dropped,
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Open the capture file; on exit, wait for pending dead letters and close it."""
        if self.settings.capture_dir is not None:
            self.capture = CaptureWriter(self.settings.capture_dir)
        sweeper = asyncio.create_task(self._deadlines.sweep_forever(), name="body-deadlines")
        counts = asyncio.create_task(self.accepted.flush_forever(), name="accepted-log")
        try:
            yield
        finally:
            sweeper.cancel()
            counts.cancel()
            self.accepted.flush()
            await self.flush_background()
            if self.capture is not None:
                self.capture.close()
                self.capture = None

    async def flush_background(self) -> None:
        """Wait until every dead letter handed to the publisher has been accepted."""
        while self._background:
            await asyncio.wait(set(self._background))

    # -- lifecycle ------------------------------------------------------------------------

    async def startup(self) -> None:
        """Enter the lifespan (the publisher) and :meth:`running`; undone by :meth:`shutdown`."""
        stack = contextlib.AsyncExitStack()
        try:
            if self._lifespan is not None:
                await stack.enter_async_context(self._lifespan(self))
            await stack.enter_async_context(self.running())
        except BaseException:
            await stack.aclose()
            raise
        self._started = stack

    async def shutdown(self) -> None:
        """Leave what :meth:`startup` entered, in reverse order."""
        stack, self._started = self._started, None
        if stack is not None:
            await stack.aclose()

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        """granian's worker is about to serve: start up (unless the loop runs: embedded)."""
        if not loop.is_running():
            try:
                loop.run_until_complete(self.startup())
            except Exception as exc:
                log.error("receiver_start_failed", error=type(exc).__name__, detail=str(exc))
                # The worker process ends quietly (one line above, no traceback); granian then
                # stops with exit status 1, as it did when an ASGI lifespan failed.
                raise SystemExit(1) from None
        self.serving.set()

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        """granian's worker stopped serving: shut down (unless embedded, see ``__rsgi_init__``)."""
        if not loop.is_running():
            loop.run_until_complete(self.shutdown())

    # -- RSGI ------------------------------------------------------------------------------

    async def __rsgi__(self, scope: Scope, protocol: HTTPProtocol) -> None:
        """The RSGI entry point."""
        if scope.proto != "http":
            return
        path = scope.path
        method = scope.method
        if path.startswith(_CALLBACK_PREFIX):
            # The core's trace (free5GC's otelhttp client sends traceparent), or a new one;
            # the publisher copies it into the events' Kafka headers.
            parent = tracing.context_from_http(scope.headers)
            if parent is None and not tracing.recording():
                await self._callback(scope, protocol)  # no trace to continue or to record
                return
            kind = path[len(_CALLBACK_PREFIX) :].partition("/")[0]
            with tracing.continue_trace(
                f"{method} /callbacks/{kind}",
                parent,
                kind=trace.SpanKind.SERVER,
                attributes={"http.request.method": method, "subscriber.callback.kind": kind},
            ):
                await self._callback(scope, protocol)
        elif path == "/healthz" and method == "GET":
            _respond(protocol, 200, b'{"status":"ok"}', _JSON_HEADERS)
        elif path == "/readyz" and method == "GET":
            ready = (
                self._publisher is not None
                and self._publisher.is_ready()
                and self.registry.is_ready()
            )
            body = b'{"status":"ready"}' if ready else b'{"status":"not ready"}'
            _respond(protocol, 200 if ready else 503, body, _JSON_HEADERS)
        elif path == "/metrics" and method == "GET":
            text, content_type = self.metrics.render()
            _respond(protocol, 200, text, [("content-type", content_type)])
        else:
            _respond(
                protocol,
                404,
                problem_body(
                    404, "Not Found", "no such resource", "RESOURCE_URI_STRUCTURE_NOT_FOUND"
                ),
                _PROBLEM_HEADERS,
            )

    # -- callbacks -------------------------------------------------------------------------

    async def _callback(self, scope: Scope, protocol: HTTPProtocol) -> None:
        started = time.perf_counter()
        received_at = self.clock()
        kind, _, key = scope.path[len(_CALLBACK_PREFIX) :].partition("/")
        body = b""
        body_bytes = 0
        events = 0
        name: str | None = None  # the subscription's name: the key itself is a secret
        try:
            try:
                if kind not in KINDS or not key or "/" in key:
                    raise _Rejected(
                        404,
                        "unknown_subscription",
                        "no such callback resource",
                        title="Not Found",
                        cause="RESOURCE_URI_STRUCTURE_NOT_FOUND",
                        dead_letter=False,
                    )
                if scope.method != "POST":
                    raise _Rejected(
                        405,
                        "method_not_allowed",
                        "callbacks are POSTed",
                        title="Method Not Allowed",
                        headers=[("allow", "POST")],
                        dead_letter=False,
                    )
                self.metrics.received(kind)
                if self.bearer is not None:
                    self._authorize(scope)
                body, body_bytes = await self._read(scope, protocol)
                if self.capture is not None:
                    self.capture.write(
                        method=scope.method,
                        path=scope.path,
                        http_version=scope.http_version,
                        headers=scope.headers.items(),
                        body=body,
                        received_at=received_at,
                    )
                binding = self._binding(kind, key)
                name = binding.name
                events = await self._accept(kind, binding, body, received_at)
            except (_Rejected, _ClientGone):
                raise
            except Exception as exc:
                log.exception("callback_failed", kind=kind, error=type(exc).__name__)
                raise _Rejected(
                    500,
                    "internal_error",
                    "the callback could not be processed",
                    title="Internal Server Error",
                    cause="SYSTEM_FAILURE",
                ) from exc
        except _Rejected as rej:
            self._reject(protocol, rej, kind, name, scope, body, body_bytes, received_at)
            self._log(kind, name, rej.status, rej.reason, events, started)
            return
        except _ClientGone:
            # Nobody to answer; the core retries (or not) on its side. Nothing was accepted.
            self._log(kind, name, 499, "client_gone", events, started)
            return
        try:
            protocol.response_empty(204, [])
        except ProtocolClosed:  # the client went away: the events are accepted all the same
            log.debug("response_not_sent", status=204)
        self._log(kind, name, 204, "accepted", events, started)

    async def _read(self, scope: Scope, protocol: HTTPProtocol) -> tuple[bytes, int]:
        """Check the headers, then read the body, stopping as soon as it is too big.

        A body declared (Content-Length) over the cap is answered 413 after reading at most the
        first chunk already sent (for the dead letter); one without a length is read in chunks
        and refused after the cap plus one chunk. A body within its declared length is read in
        one call: granian's HTTP layer refuses more bytes than the length declares.

        Returns:
            The body and its size.
        """
        cap = self.settings.max_body_bytes
        headers = scope.headers
        content_type: str = headers.get("content-type", "")
        declared: str = headers.get("content-length", "")
        length = int(declared) if declared.isdigit() else None
        if length is not None and length > cap:
            raise _Rejected(
                413,
                "body_too_large",
                f"the body ({length} bytes) is over the {cap}-byte limit",
                title="Payload Too Large",
                body=await _first_chunk(protocol),
                body_bytes=length,
            )
        task = self._deadlines.start()
        try:
            if length is not None:
                body = await protocol()
                size = len(body)
            else:
                body, size = await _read_body(protocol, cap)
        except asyncio.CancelledError:
            if not self._deadlines.expired(task):
                raise
            raise _Rejected(
                408,
                "body_timeout",
                f"the body was not complete within {_BODY_TIMEOUT_S:g} s",
                title="Request Timeout",
                dead_letter=False,
            ) from None
        except ProtocolClosed:
            raise _ClientGone from None
        finally:
            self._deadlines.stop(task)
        if size > cap:
            raise _Rejected(
                413,
                "body_too_large",
                f"the body is over the {cap}-byte limit",
                title="Payload Too Large",
                body=body[: self.settings.dead_letter_max_bytes],
                body_bytes=size,
            )
        if content_type != _JSON and content_type.split(";", 1)[0].strip().lower() != _JSON:
            raise _Rejected(
                415,
                "unsupported_media_type",
                "the body must be application/json",
                title="Unsupported Media Type",
                headers=[("accept-post", _JSON)],
                body=body,
                body_bytes=size,
            )
        return body, size

    def _authorize(self, scope: Scope) -> None:
        """Refuse a callback without a valid bearer token before its body is read."""
        assert self.bearer is not None
        header: str | None = scope.headers.get("authorization")
        try:
            self.bearer.verify(header)
        except BearerRefused as exc:
            status = 403 if exc.insufficient_scope else 401
            error = "insufficient_scope" if exc.insufficient_scope else "invalid_token"
            raise _Rejected(
                status,
                "unauthorized",
                exc.detail,
                title="Forbidden" if status == 403 else "Unauthorized",
                headers=[("www-authenticate", f'Bearer error="{error}"')],
                dead_letter=False,
            ) from exc

    def _binding(self, kind: str, key: str) -> Binding:
        binding = self.registry.binding(kind, key)
        if binding is None:
            raise _Rejected(
                404,
                "unknown_subscription",
                f"no {kind} subscription with this key",
                title="Not Found",
                cause="SUBSCRIPTION_NOT_FOUND",
            )
        return binding

    async def _accept(self, kind: str, binding: Binding, body: bytes, received_at: datetime) -> int:
        try:
            events = self.normalizers[kind](Callback(kind, binding, body, received_at))
        except ForeignCallback as exc:
            raise _Rejected(
                400,
                "foreign_body",
                exc.detail,
                title="Body does not match its callback URI",
                cause="MANDATORY_IE_INCORRECT",
                invalid_params=exc.invalid_params,
            ) from exc
        except InvalidCallback as exc:
            raise _Rejected(
                400,
                "invalid_body",
                exc.detail,
                title="Malformed request syntax",
                cause="MANDATORY_IE_INCORRECT",
                invalid_params=exc.invalid_params,
            ) from exc
        started = time.perf_counter()
        try:
            await self.publisher.publish(events)
        except SpoolFull as exc:
            raise _Rejected(
                503,
                "spool_full",
                "events cannot be stored right now; retry later",
                title="Service Unavailable",
                cause="NF_CONGESTION",
                headers=[("retry-after", str(exc.retry_after_s))],
                dead_letter=False,
            ) from exc
        self.metrics.published(len(events), time.perf_counter() - started)
        return len(events)

    def _reject(
        self,
        protocol: HTTPProtocol,
        rej: _Rejected,
        kind: str,
        name: str | None,
        scope: Scope,
        body: bytes,
        body_bytes: int,
        received_at: datetime,
    ) -> None:
        if rej.reason in REJECT_REASONS:
            self.metrics.rejected(rej.reason)
        body_doc = problem_body(rej.status, rej.title, rej.detail, rej.cause, rej.invalid_params)
        _respond(protocol, rej.status, body_doc, [*_PROBLEM_HEADERS, *rej.headers])
        if rej.dead_letter and self._publisher is not None:
            content_type: str | None = scope.headers.get("content-type")
            letter = DeadLetter(
                reason=rej.reason,
                detail=rej.detail,
                kind=kind,
                path=f"{_CALLBACK_PREFIX}{kind}/{name or '(unknown key)'}",
                content_type=content_type,
                received_at=received_at,
                body=rej.body if rej.body is not None else body,
                body_bytes=max(rej.body_bytes, body_bytes, len(body)),
            )
            task = asyncio.create_task(self._publisher.publish_dead_letter(letter))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def _log(
        self, kind: str, name: str | None, status: int, outcome: str, events: int, started: float
    ) -> None:
        if tracing.recording():
            trace.get_current_span().set_attributes(
                {
                    "http.response.status_code": status,
                    "subscriber.outcome": outcome,
                    "subscriber.events": events,
                }
            )
        duration_s = time.perf_counter() - started
        if status == 204:  # counted, logged per subscription and interval (.accepted)
            self.accepted.add(kind, name, events, duration_s)
            if not self._debug_lines:  # a line each only at debug (1 µs to build one)
                return
        emit = log.debug if status == 204 else log.info
        emit(
            "callback",
            kind=kind,
            subscription=name,
            status=status,
            outcome=outcome,
            events=events,
            duration_ms=round(duration_s * 1000, 2),
        )


async def _read_body(protocol: HTTPProtocol, cap: int) -> tuple[bytes, int]:
    """The body, read in chunks until its end or until it passes ``cap``; and its size so far."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in protocol:
        size += len(chunk)
        chunks.append(chunk)
        if size > cap:
            break
    return b"".join(chunks), size


async def _first_chunk(protocol: HTTPProtocol) -> bytes:
    """What the client already sent of a body we refuse, without waiting for more than a moment."""
    chunks = protocol.__aiter__()
    try:
        async with asyncio.timeout(_FIRST_CHUNK_WAIT_S):
            chunk: bytes = await chunks.__anext__()
    except (TimeoutError, StopAsyncIteration, ProtocolClosed):
        return b""
    return chunk


def _respond(
    protocol: HTTPProtocol, status: int, body: bytes, headers: Sequence[tuple[str, str]]
) -> None:
    try:
        protocol.response_bytes(status, list(headers), body)
    except ProtocolClosed:  # the client went away: the answer has nowhere to go
        log.debug("response_not_sent", status=status)
