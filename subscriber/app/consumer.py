"""``subscriber consume``: the consumer process, from settings to a graceful stop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import structlog
from aiokafka.errors import KafkaError
from temporalio.client import Client

from subscriber.act.capacity import CapacityFeed
from subscriber.act.consumer import EventConsumer, Signaller
from subscriber.act.signals import connect, request_relocation
from subscriber.app.lifecycle import run_until_stopped, traced
from subscriber.app.probes import ProbeServer, Readiness
from subscriber.decide.engine import InstancesHolder, PolicyHolder
from subscriber.errors import SubscriberError
from subscriber.logs import require_pseudonym_key
from subscriber.settings import Settings

log = structlog.get_logger()


@asynccontextmanager
async def open_consumer(
    settings: Settings,
    *,
    temporal: Client | None = None,
    signal: Signaller = request_relocation,
) -> AsyncIterator[EventConsumer]:
    """The policy and instances holders, the Temporal client and the consumer group member.

    Args:
        settings: the whole settings.
        temporal: a client; one connecting lazily to ``settings.temporal`` when None (Temporal
            away at start delays the signals, not the decisions).
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
        instances = await stack.enter_async_context(
            InstancesHolder(
                settings.act.instances_file,
                policy=holder,
                interval_s=settings.policy.reload_interval_s,
            )
        )
        if temporal is None:
            temporal = await connect(settings.temporal, lazy=True)
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
        port = settings.act.metrics_port
        if port is not None:
            # Decisions by reason, lag, records by outcome (subscriber.act.consumer); readiness.
            await stack.enter_async_context(
                ProbeServer(host="0.0.0.0", port=port, ready=_readiness(consumer))  # noqa: S104
            )
        log.info(
            "consumer.started",
            topic=settings.kafka.events_topic,
            group=settings.kafka.consumer_group,
            instances=len(instances.current),
            policy_version=holder.bundle.version,
        )
        yield consumer
    log.info("consumer.stopped")


def _readiness(consumer: EventConsumer) -> Readiness:
    async def ready() -> str | None:
        if consumer.ready:
            return None
        return (
            "the consumer group has not yet assigned this member its partitions and restored them"
        )

    return ready


async def main(settings: Settings) -> int:
    """The CLI entry: SIGTERM or SIGINT finishes the records in hand, commits, and exits."""
    require_pseudonym_key(settings.log)
    with traced(settings, "subscriber-consumer"):
        await run_until_stopped(open_consumer(settings))
    return 0
