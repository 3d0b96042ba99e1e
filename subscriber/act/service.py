"""``subscriber consume``: the consumer process, from settings to a graceful stop."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path

import structlog
from aiokafka.errors import KafkaError
from prometheus_client import start_http_server

from subscriber.act.consumer import EventConsumer
from subscriber.act.instances import Instances, parse_instances
from subscriber.act.signals import connect
from subscriber.decide.engine import PolicyHolder
from subscriber.errors import SubscriberError
from subscriber.logs import require_pseudonym_key
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
        async with contextlib.AsyncExitStack() as stack:
            try:
                consumer = await stack.enter_async_context(
                    EventConsumer(settings, policy=holder, instances=instances, temporal=temporal)
                )
            except KafkaError as exc:  # one line for the user, not aiokafka's traceback
                raise SubscriberError(
                    f"Kafka at {settings.kafka.bootstrap_servers} cannot be reached "
                    f"({type(exc).__name__})"
                ) from exc
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
    require_pseudonym_key(settings.log)
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
