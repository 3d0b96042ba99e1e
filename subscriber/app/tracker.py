"""``subscriber track``: the active half of ingress, composed.

One process registers with the NRF, keeps the event-exposure subscriptions alive (AMF notify
mode, SMF UP_PATH_CH, NEF monitoring) and polls the AMFs that never notify (free5GC), publishing
what it finds through the same durable publisher as the receiver. Adapters are entered in
dependency order and closed in reverse: on SIGTERM the poller saves its state, the subscription
manager deletes what it created, and the publisher flushes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import aiohttp
import structlog

from subscriber.app.lifecycle import run_until_stopped, traced
from subscriber.errors import SubscriberError
from subscriber.ingress.nrf import NrfClient, sbi_ssl_context
from subscriber.ingress.poller import EventSink, Poller
from subscriber.ingress.publisher import Publisher
from subscriber.ingress.subscriptions import SubscriptionManager
from subscriber.logs import require_pseudonym_key
from subscriber.settings import Settings

log = structlog.get_logger()


def callback_base(settings: Settings) -> str:
    """The base URL the core is told to call back: the receiver's public URL."""
    r = settings.receiver
    return (r.public_url or f"http://{r.host}:{r.port}").rstrip("/")


class Tracker:
    """The subscription manager and, when the AMF is polled, the poller, run side by side."""

    def __init__(self, manager: SubscriptionManager, poller: Poller | None) -> None:
        """Hold the opened adapters; :meth:`run` drives them."""
        self._manager = manager
        self._poller = poller

    async def run(self, stop: asyncio.Event) -> None:
        """Run both loops until ``stop`` is set or one of them fails (its error re-raised)."""
        tasks = [asyncio.create_task(self._manager.run(), name="subscriptions")]
        if self._poller is not None:
            tasks.append(asyncio.create_task(self._poller.run(), name="poller"))
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in [stopped, *tasks]:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task  # a crashed loop re-raises here, after the others stopped


@asynccontextmanager
async def open_tracker(
    settings: Settings, *, sink: EventSink | None = None
) -> AsyncIterator[Tracker]:
    """The HTTP session, NRF client, publisher, subscription manager and poller, in that order.

    Args:
        settings: the whole settings (core, kafka, receiver).
        sink: where events go; the Kafka publisher (spool under ``spool_dir/tracker``) if None.

    Raises:
        SubscriberError: no core is configured.
    """
    core = settings.core
    if core.nrf_url is None and core.amf_url is None:
        raise SubscriberError("nothing to track: set core.nrf_url or core.amf_url")
    async with AsyncExitStack() as stack:
        connector = aiohttp.TCPConnector(ssl=sbi_ssl_context(core))
        http = await stack.enter_async_context(aiohttp.ClientSession(connector=connector))
        nrf = await stack.enter_async_context(NrfClient(settings=core, session=http))
        if sink is None:
            receiver = settings.receiver.model_copy(
                update={"spool_dir": settings.receiver.spool_dir / "tracker"}
            )
            sink = await stack.enter_async_context(
                Publisher(kafka=settings.kafka, receiver=receiver, client_id="subscriber-tracker")
            )
        manager = await stack.enter_async_context(
            SubscriptionManager(settings=core, nrf=nrf, callback_base=callback_base(settings))
        )
        poller = None
        if core.amf_tracking in ("poll", "both"):
            poller = await stack.enter_async_context(
                Poller(
                    settings=core,
                    nrf=nrf,
                    sink=sink,
                    manager=manager,
                    notify_uri=f"{callback_base(settings)}/callbacks/amf/poll",
                )
            )
        log.info("tracker.started", tracking=core.amf_tracking, instance=core.instance_index)
        yield Tracker(manager, poller)
    log.info("tracker.stopped")


async def main(settings: Settings) -> int:
    """The CLI entry: SIGTERM or SIGINT saves state, deletes subscriptions, and exits."""
    require_pseudonym_key(settings.log)
    with traced(settings, "subscriber-tracker"):
        await run_until_stopped(open_tracker(settings))
    return 0
