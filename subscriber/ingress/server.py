"""``subscriber serve``: the callback receiver under granian, h2c prior knowledge + HTTP/1.1.

granian (Rust HTTP core, ASGI interface, ``http=auto``) serves HTTP/2 with prior knowledge and
HTTP/1.1 on one port, and with TLS offers ALPN h2 and http/1.1. ``receiver.workers`` processes
share the listening socket; each builds its own app, publisher (Kafka producer + spool slot) and
metrics in :func:`load_app`. Why granian and not hypercorn or aiohttp: docs/receiver.md.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from functools import partial

import structlog
from granian.constants import HTTPModes, Interfaces
from granian.log import LogLevels
from granian.server import Server as Granian

from subscriber.ingress.publisher import Publisher
from subscriber.ingress.receiver import (
    Normalizer,
    Receiver,
    SubscriptionRegistry,
    default_normalizers,
)
from subscriber.logs import configure_logging, require_pseudonym_key
from subscriber.settings import Settings, to_env
from subscriber.tracing import configure_tracing

log = structlog.get_logger()

RegistryFactory = Callable[[Settings], SubscriptionRegistry]
DEFAULT_REGISTRY = "subscriber.ingress.subscriptions:registry_for"


class StaticRegistry:
    """A registry of fixed keys (tests, benchmarks, cores configured by hand).

    Args:
        keys: ``(kind, key)`` pairs that are known.
        accept_any: every key is known; only for benchmarks and local experiments.
    """

    def __init__(self, keys: Iterable[tuple[str, str]] = (), *, accept_any: bool = False):
        self._keys = set(keys)
        self._accept_any = accept_any

    def add(self, kind: str, key: str) -> None:
        """Make ``/callbacks/{kind}/{key}`` known."""
        self._keys.add((kind, key))

    def is_known(self, kind: str, key: str) -> bool:
        """True for a known pair (or always, with ``accept_any``)."""
        return self._accept_any or (kind, key) in self._keys


def accept_any_registry(_settings: Settings) -> SubscriptionRegistry:
    """A registry that knows every key: for benchmarks only."""
    return StaticRegistry(accept_any=True)


def _resolve(target: str) -> Callable[..., object]:
    module, _, name = target.partition(":")
    func: Callable[..., object] = getattr(importlib.import_module(module), name)
    return func


def build_receiver(
    settings: Settings,
    *,
    registry: SubscriptionRegistry,
    normalizers: dict[str, Normalizer] | None = None,
) -> Receiver:
    """The ASGI app, with a lifespan that opens this process's own publisher."""

    @contextlib.asynccontextmanager
    async def lifespan(receiver: Receiver) -> AsyncIterator[None]:
        async with Publisher(kafka=settings.kafka, receiver=settings.receiver) as publisher:
            receiver.publisher = publisher
            yield

    return Receiver(
        settings=settings.receiver,
        normalizers=normalizers if normalizers is not None else default_normalizers(),
        registry=registry,
        lifespan=lifespan,
    )


def load_app(settings_json: str, registry_target: str) -> Receiver:
    """Build the app inside a granian worker process (picklable: a function and two strings)."""
    settings = Settings.model_validate_json(settings_json)
    configure_logging(settings.log)
    configure_tracing(settings.log, service="subscriber-receiver")  # in each worker process
    registry = _resolve(registry_target)(settings)
    return build_receiver(settings, registry=registry)  # type: ignore[arg-type]


def run_server(settings: Settings, registry_target: str = DEFAULT_REGISTRY) -> None:
    """Serve the receiver with granian until SIGINT/SIGTERM.

    Args:
        settings: the whole settings; ``receiver`` says where and how to listen.
        registry_target: ``module:function`` returning the registry, called in each worker.
    """
    rs = settings.receiver
    server = Granian(
        "subscriber.ingress.server:load_app",
        address=rs.host,
        port=rs.port,
        interface=Interfaces.ASGI,
        http=HTTPModes.auto,
        workers=rs.workers,
        ssl_cert=rs.tls_cert,
        ssl_key=rs.tls_key,
        log_level=LogLevels.warning,
        log_access=False,
        websockets=False,
    )
    loader = partial(load_app, settings.model_dump_json(), registry_target)
    server.serve(target_loader=loader, wrap_loader=False)


@dataclass
class _Tracker:
    proc: subprocess.Popen[bytes]
    stopping: threading.Event


def _start_tracker(settings: Settings) -> _Tracker | None:
    """``subscriber track`` beside the receiver when a core is configured; None otherwise.

    granian owns this process's main loop, so the poller and the subscription manager run as a
    child. If the child dies on its own, this process is told to stop too, so that a
    supervisor restarts the pair rather than leaving a receiver whose core nobody polls.
    """
    if settings.core.nrf_url is None and settings.core.amf_url is None:
        return None
    child = subprocess.Popen(
        [sys.executable, "-m", "subscriber", "track"],
        env={**os.environ, **to_env(settings)},
    )
    stopping = threading.Event()

    def watch() -> None:
        child.wait()
        if not stopping.is_set():
            log.error("serve.tracker_exited", code=child.returncode)
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="tracker-watch", daemon=True).start()
    return _Tracker(child, stopping)


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


def serve(settings: Settings, args: argparse.Namespace) -> int:
    """The ``serve`` subcommand: the receiver, and the tracker when a core is configured."""
    require_pseudonym_key(settings.log)
    tracker = _start_tracker(settings)
    try:
        run_server(settings, getattr(args, "registry", None) or DEFAULT_REGISTRY)
    finally:
        if tracker is not None:
            _stop_tracker(tracker)
    return 0
