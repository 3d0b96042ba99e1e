"""``subscriber consume``: the consumer process, from settings to a graceful stop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import structlog
from aiokafka.errors import KafkaError
from prometheus_client import start_http_server
from temporalio.client import Client

from subscriber.act.capacity import CapacityFeed
from subscriber.act.consumer import EventConsumer, Signaller
from subscriber.act.signals import connect, request_relocation
from subscriber.app.lifecycle import run_until_stopped, traced
from subscriber.decide.engine import PolicyHolder
from subscriber.decide.instances import Instances, parse_instances
from subscriber.errors import SubscriberError
from subscriber.logs import require_pseudonym_key
from subscriber.settings import Settings

log = structlog.get_logger()


def load_instances(path: Path | None, holder: PolicyHolder) -> Instances:
    """The instances file (``act.instances_file``), checked against the running topology."""
    if path is None:
        return Instances({})
    return parse_instances(path.read_bytes(), source=str(path), topology=holder.bundle.topology)


@asynccontextmanager
async def open_consumer(
    settings: Settings,
    *,
    temporal: Client | None = None,
    signal: Signaller = request_relocation,
) -> AsyncIterator[EventConsumer]:
    """The policy holder, the Temporal client and the consumer group member, in that order.

    Args:
        settings: the whole settings.
        temporal: a connected client; one is connected from ``settings.temporal`` when None.
        signal: how a request reaches its workflow (tests inject failures here).
    """
    async with AsyncExitStack() as stack:
        holder = await stack.enter_async_context(PolicyHolder(settings.policy))
        if settings.policy.topology_file is not None:  # PolicyHolder refused to start without
            await stack.enter_async_context(
                CapacityFeed(
                    holder,
                    topology_file=settings.policy.topology_file,
                    interval_s=settings.policy.capacity_refresh_s,
                    timeout_s=settings.relocation.kubernetes_request_timeout_s,
                )
            )
        instances = load_instances(settings.act.instances_file, holder)
        if temporal is None:
            temporal = await connect(settings.temporal)
        try:
            consumer = await stack.enter_async_context(
                EventConsumer(
                    settings, policy=holder, instances=instances, temporal=temporal, signal=signal
                )
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
        yield consumer
    log.info("consumer.stopped")


async def main(settings: Settings) -> int:
    """The CLI entry: SIGTERM or SIGINT finishes the batch in hand, commits, and exits."""
    require_pseudonym_key(settings.log)
    if settings.act.metrics_port is not None:
        # Decisions by reason, consumer lag and records by outcome (subscriber.act.consumer).
        start_http_server(settings.act.metrics_port)
    with traced(settings, "subscriber-consumer"):
        await run_until_stopped(open_consumer(settings))
    return 0
