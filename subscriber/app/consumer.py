"""``subscriber consume``: the consumer process, from settings to a graceful stop."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path

import structlog
from prometheus_client import start_http_server

from subscriber.act.consumer import EventConsumer
from subscriber.act.signals import connect
from subscriber.decide.engine import PolicyHolder
from subscriber.decide.instances import Instances, parse_instances
from subscriber.settings import Settings
from subscriber.tracing import configure_tracing, shutdown_tracing

log = structlog.get_logger()


def _load_instances(path: Path | None, holder: PolicyHolder) -> Instances:
    if path is None:
        return Instances({})
    return parse_instances(path.read_bytes(), source=str(path), topology=holder.bundle.topology)


async def consume(settings: Settings, stop: asyncio.Event) -> None:
    """Run one consumer group member until ``stop`` is set."""
    async with PolicyHolder(settings.policy) as holder:
        instances = _load_instances(settings.act.instances_file, holder)
        temporal = await connect(settings.temporal)
        async with EventConsumer(
            settings, policy=holder, instances=instances, temporal=temporal
        ) as consumer:
            log.info(
                "consumer.started",
                topic=settings.kafka.events_topic,
                group=settings.kafka.consumer_group,
                instances=len(instances),
                policy_version=holder.bundle.version,
            )
            await consumer.run(stop)
    log.info("consumer.stopped")


async def run(settings: Settings, _args: argparse.Namespace) -> int:
    """The CLI entry: SIGTERM or SIGINT finishes the batch in hand, commits, and exits."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    if settings.act.metrics_port is not None:
        # Decisions by reason, consumer lag and records by outcome (subscriber.act.consumer).
        start_http_server(settings.act.metrics_port)
    provider = configure_tracing(settings.log, service="subscriber-consumer")
    try:
        await consume(settings, stop)
    finally:
        shutdown_tracing(provider)
    return 0
