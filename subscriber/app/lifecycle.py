"""Running a service: one stop event, signal handlers behind a flag, tracing opened and closed."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol, TypeVar

from subscriber.settings import Settings
from subscriber.tracing import configure_tracing, shutdown_tracing


class Service(Protocol):
    """What a process runs once its adapters are open."""

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, then finish what is in hand and return."""


S = TypeVar("S", bound=Service)


def stop_on_signals(stop: asyncio.Event) -> None:
    """Make SIGTERM and SIGINT set ``stop`` (where the loop supports signal handlers)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)


@contextlib.contextmanager
def traced(settings: Settings, service: str) -> Iterator[None]:
    """The process's tracer provider (``log.traces``) for the duration of the block."""
    provider = configure_tracing(settings.log, service=service)
    try:
        yield
    finally:
        shutdown_tracing(provider)


async def run_until_stopped(
    opened: AbstractAsyncContextManager[Service],
    *,
    stop: asyncio.Event | None = None,
    handle_signals: bool = True,
) -> None:
    """Open a service, run it until ``stop`` is set, then close its adapters in reverse order.

    Args:
        opened: the service's adapters, entered here and left when it returns.
        stop: set it to stop the service; a fresh event when None.
        handle_signals: SIGTERM and SIGINT set ``stop``; off in tests, which set it themselves.
    """
    stop = stop or asyncio.Event()
    if handle_signals:
        stop_on_signals(stop)
    async with opened as service:
        await service.run(stop)


@contextlib.asynccontextmanager
async def running(opened: AbstractAsyncContextManager[S]) -> AsyncIterator[S]:
    """Open a service and run it in the background while the block runs; then stop and close it.

    For the demo, the benchmarks and the tests. A service that failed re-raises on leaving.
    """
    stop = asyncio.Event()
    async with opened as service:
        task = asyncio.create_task(service.run(stop))
        try:
            yield service
        finally:
            stop.set()
            await task
