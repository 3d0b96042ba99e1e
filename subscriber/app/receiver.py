"""``subscriber serve``: the callback receiver under granian, h2c prior knowledge + HTTP/1.1.

granian (Rust HTTP core, its native RSGI interface, ``http=auto``) serves HTTP/2 with prior
knowledge and HTTP/1.1 on one port, and with TLS offers ALPN h2 and http/1.1.
``receiver.workers`` processes share the listening socket; each builds its own app, publisher
(Kafka producer + spool slot) and metrics in :func:`load_app`. Why granian and not hypercorn or
aiohttp: docs/receiver.md.

:func:`serving_receiver` runs the same app in this process under granian's embedded server, for
the benchmarks and the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import importlib
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from urllib.parse import urlsplit

import structlog
from granian.constants import HTTPModes, Interfaces
from granian.log import LogLevels
from granian.server import Server as Granian
from granian.server.embed import Server as EmbeddedGranian

from subscriber.errors import SubscriberError
from subscriber.health import base_url
from subscriber.ingress.bearer import BearerVerifier, load_public_key
from subscriber.ingress.publisher import Publisher
from subscriber.ingress.receiver import (
    Normalizer,
    Receiver,
    SubscriptionRegistry,
    default_normalizers,
)
from subscriber.logs import configure_logging, flush_logs, require_pseudonym_key
from subscriber.options import ServeOptions
from subscriber.settings import ReceiverSettings, Settings, to_env
from subscriber.stack.procs import port_free_on
from subscriber.tracing import configure_tracing

log = structlog.get_logger()

DEFAULT_REGISTRY = "subscriber.ingress.subscriptions:registry_for"


def _resolve(target: str) -> Callable[..., object]:
    module, _, name = target.partition(":")
    func: Callable[..., object] = getattr(importlib.import_module(module), name)
    return func


def build_receiver(
    settings: Settings,
    *,
    registry: SubscriptionRegistry,
    normalizers: Mapping[str, Normalizer] | None = None,
) -> Receiver:
    """The RSGI app, with a lifespan that opens this process's own publisher.

    Args:
        settings: the whole settings.
        registry: which subscription keys are ours.
        normalizers: one per callback kind; the default ones when None.
    """

    @contextlib.asynccontextmanager
    async def lifespan(receiver: Receiver) -> AsyncIterator[None]:
        async with Publisher(kafka=settings.kafka, receiver=settings.receiver) as publisher:
            receiver.publisher = publisher
            try:
                yield
            finally:
                flush_logs()

    rs = settings.receiver
    bearer = None
    if rs.bearer_key_file is not None:
        bearer = BearerVerifier(load_public_key(rs.bearer_key_file), scope=rs.bearer_scope)
    return Receiver(
        settings=rs,
        normalizers=normalizers if normalizers is not None else default_normalizers(),
        registry=registry,
        lifespan=lifespan,
        bearer=bearer,
    )


def check_serve_settings(settings: Settings) -> None:
    """What would make the receiver fail later (or never take a callback), refused up front.

    Raises:
        SubscriberError: a TLS or bearer file setting is incomplete or unreadable, or another
            process already listens on the receiver's port.
    """
    rs = settings.receiver
    if (rs.tls_cert is None) != (rs.tls_key is None):
        raise SubscriberError("receiver.tls_cert and receiver.tls_key go together")
    if rs.tls_ca is not None and rs.tls_cert is None:
        raise SubscriberError("receiver.tls_ca (mutual TLS) needs receiver.tls_cert and tls_key")
    for name in ("tls_cert", "tls_key", "tls_ca"):
        path = getattr(rs, name)
        if path is not None and not path.is_file():
            raise SubscriberError(f"receiver.{name} {path} is not a readable file")
    if rs.bearer_key_file is not None:
        load_public_key(rs.bearer_key_file)
    if rs.port and port_in_use(rs.host, rs.port):
        raise SubscriberError(
            f"receiver.port {rs.port} on {rs.host} is already in use by another process: "
            "two receivers on one port would split the core's callbacks between them"
        )


def port_in_use(host: str, port: int) -> bool:
    """Whether something listens on ``host:port``: a bind without SO_REUSEPORT fails then.

    granian binds with SO_REUSEPORT, so a second ``serve`` on the same port would otherwise
    start without error and take half of the callbacks.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise SubscriberError(f"cannot bind {host}:{port}: {exc.strerror}") from exc
    return False


@dataclass(frozen=True)
class ServedReceiver:
    """A receiver serving in this process.

    Attributes:
        url: its base URL (loopback for a wildcard bind).
        app: the RSGI app; ``app.publisher`` is its publisher once serving.
        settings: the settings it runs with, ``receiver.port`` the port it listens on.
    """

    url: str
    app: Receiver
    settings: Settings


@contextlib.asynccontextmanager
async def serving_receiver(
    settings: Settings,
    *,
    registry: SubscriptionRegistry,
    normalizers: Mapping[str, Normalizer] | None = None,
) -> AsyncIterator[ServedReceiver]:
    """The receiver in this process under granian's embedded server, until the block ends.

    The same app as ``subscriber serve`` (:func:`build_receiver`), on ``receiver.host`` and
    ``receiver.port`` (0: a free port), h2c prior knowledge and HTTP/1.1 (TLS with
    ``receiver.tls_cert``); it yields once it accepts connections. For the benchmarks and the
    tests; ``subscriber serve`` runs granian's multi-process server instead (:func:`run_server`).

    Raises:
        SubscriberError: the server stopped before it listened (its port was taken).
    """
    rs = settings.receiver
    if rs.port == 0:
        rs = rs.model_copy(update={"port": port_free_on(rs.host)})
        settings = settings.model_copy(update={"receiver": rs})
    app = build_receiver(settings, registry=registry, normalizers=normalizers)
    # The embedded server calls the app's init hook inside the running loop, where it cannot
    # start the app itself: the publisher opens here, around the server.
    await app.startup()
    try:
        async with _embedded(app, rs):
            yield ServedReceiver(base_url(rs), app, settings)
    finally:
        await app.shutdown()


@contextlib.asynccontextmanager
async def _embedded(app: Receiver, rs: ReceiverSettings) -> AsyncIterator[None]:
    """granian's embedded server for ``app``, from its first accepted connection to its stop."""
    server = EmbeddedGranian(
        app,
        address=rs.host,
        port=rs.port,
        interface=Interfaces.RSGI,
        http=HTTPModes.auto,
        websockets=False,
        ssl_cert=rs.tls_cert,
        ssl_key=rs.tls_key,
        ssl_ca=rs.tls_ca,
        ssl_client_verify=rs.tls_ca is not None,
    )
    task = asyncio.create_task(server.serve())
    try:
        await _listening(base_url(rs), app.serving, task)
        yield
    finally:
        server.stop()  # type: ignore[no-untyped-call]
        await task


async def _listening(url: str, started: asyncio.Event, serving: asyncio.Task[None]) -> None:
    """Return once granian serves our app and its port accepts connections; raise if it stopped.

    granian calls the app's init hook (``started``) after it bound the port, so a port someone
    else listens on fails the serving task rather than passing for ours.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 0
    waiting = asyncio.create_task(started.wait())
    await asyncio.wait([waiting, serving], return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    while True:
        if serving.done():
            serving.result()
            raise SubscriberError(f"the receiver stopped before it listened on {url}")
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return


def load_app(settings_json: str, registry_target: str) -> Receiver:
    """Build the app inside a granian worker process (picklable: a function and two strings)."""
    settings = Settings.model_validate_json(settings_json)
    # The per-callback line is written in batches, off the request path (docs/performance.md).
    configure_logging(settings.log, batched=True)
    configure_tracing(settings.log, service="subscriber-receiver")  # in each worker process
    registry = _resolve(registry_target)(settings)
    app = build_receiver(settings, registry=registry)  # type: ignore[arg-type]
    _tune_gc()
    return app


def _tune_gc() -> None:
    """Keep the cyclic garbage collector off the request path.

    What is loaded by now (modules, pydantic schemas, settings) lives as long as the process, so
    it is frozen out of every later collection; and the youngest generation is collected every
    20,000 allocations instead of 700, so most of a callback's objects are freed by reference
    counting before a collection ever looks at them (docs/performance.md has the measurement).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def run_server(settings: Settings, registry_target: str = DEFAULT_REGISTRY) -> None:
    """Serve the receiver with granian until SIGINT/SIGTERM.

    Args:
        settings: the whole settings; ``receiver`` says where and how to listen.
        registry_target: ``module:function`` returning the registry, called in each worker.
    """
    rs = settings.receiver
    server = Granian(
        "subscriber.app.receiver:load_app",
        address=rs.host,
        port=rs.port,
        interface=Interfaces.RSGI,
        http=HTTPModes.auto,
        workers=rs.workers,
        ssl_cert=rs.tls_cert,
        ssl_key=rs.tls_key,
        ssl_ca=rs.tls_ca,
        ssl_client_verify=rs.tls_ca is not None,
        log_level=LogLevels.warning,
        log_access=False,
        websockets=False,
    )
    loader = partial(load_app, settings.model_dump_json(), registry_target)
    # granian types its loader for ASGI callables; an RSGI app is an object with __rsgi__.
    server.serve(target_loader=loader, wrap_loader=False)  # type: ignore[arg-type]


@dataclass
class _Tracker:
    proc: subprocess.Popen[bytes]
    stopping: threading.Event
    died: threading.Event


def _start_tracker(settings: Settings) -> _Tracker | None:
    """``subscriber track`` beside the receiver when a core is configured; None otherwise.

    granian owns this process's main loop, so the poller and the subscription manager run as a
    child. If the child dies on its own, this process is told to stop too, and exits non-zero,
    so that a supervisor restarts the pair rather than leaving a receiver whose core nobody
    polls.
    """
    if settings.core.nrf_url is None and settings.core.amf_url is None:
        return None
    child = subprocess.Popen(
        [sys.executable, "-m", "subscriber", "track"],
        env={**os.environ, **to_env(settings)},
    )
    stopping, died = threading.Event(), threading.Event()

    def watch() -> None:
        child.wait()
        if not stopping.is_set():
            died.set()
            log.error("serve.tracker_exited", code=child.returncode)
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="tracker-watch", daemon=True).start()
    return _Tracker(child, stopping, died)


def _stop_tracker(tracker: _Tracker) -> None:
    tracker.stopping.set()
    child = tracker.proc
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def main(settings: Settings, options: ServeOptions) -> int:
    """The ``serve`` subcommand: the receiver, and the tracker when a core is configured.

    Returns:
        0 after SIGTERM/SIGINT; 1 when the tracker died and took the receiver down with it.
    """
    require_pseudonym_key(settings.log)
    check_serve_settings(settings)
    tracker = _start_tracker(settings)
    try:
        run_server(settings, options.registry or DEFAULT_REGISTRY)
    finally:
        if tracker is not None:
            _stop_tracker(tracker)
    if tracker is not None and tracker.died.is_set():
        return 1
    return 0
