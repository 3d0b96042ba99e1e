"""Names of a benchmark run's own: topics, consumer group and task queue, so runs never mix; and
the clean-up that leaves the shared stack as the run found it."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from temporalio.client import Client
from temporalio.service import RPCError

from subscriber.settings import LogSettings, Settings


def isolated(base: Settings, prefix: str) -> Settings:
    """``base`` with every topic, the consumer group and the task queue named after ``prefix``."""
    return base.model_copy(
        update={
            "kafka": base.kafka.model_copy(
                update={
                    "events_topic": f"{prefix}.events",
                    "decisions_topic": f"{prefix}.decisions",
                    "state_topic": f"{prefix}.state",
                    "outcomes_topic": f"{prefix}.outcomes",
                    "dead_letter_topic": f"{prefix}.dead",
                    "consumer_group": prefix,
                }
            ),
            "temporal": base.temporal.model_copy(update={"task_queue": prefix}),
        }
    )


def child_log() -> LogSettings:
    """Log settings for a process a benchmark starts: warnings only, JSON lines, and a fresh
    pseudonym key (``serve``, ``track`` and ``consume`` refuse to start without a real one)."""
    return LogSettings(level="warning", format="json", pseudonym_key=secrets.token_hex(16))


async def drop_topics(bootstrap: str, topics: Iterable[str]) -> None:
    """Delete those of ``topics`` that exist: a run leaves the broker as it found it.

    Runs that left theirs behind made the stack's broker hold hundreds of partitions after a day
    of benchmarking, and it spent about twice the CPU per report of a fresh one: later runs
    measured an older stack, not the code.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        with contextlib.suppress(KafkaError):
            await admin.delete_topics([t for t in topics if t in existing])
    finally:
        await admin.close()


async def clean_up(settings: Settings, temporal: Client) -> None:
    """Delete the run's topics and terminate the workflows on its task queue (runs that left
    theirs had the stack's Temporal hold 16,000 open workflows in a 336 MB database)."""
    k = settings.kafka
    await drop_topics(
        k.bootstrap_servers,
        [k.events_topic, k.decisions_topic, k.state_topic, k.outcomes_topic, k.dead_letter_topic],
    )
    slots = asyncio.Semaphore(32)

    async def terminate(workflow_id: str) -> None:
        async with slots:
            with contextlib.suppress(RPCError):  # finished meanwhile: nothing to do
                await temporal.get_workflow_handle(workflow_id).terminate("benchmark run over")

    query = f'TaskQueue = "{settings.temporal.task_queue}" AND ExecutionStatus = "Running"'
    ids = [wf.id async for wf in temporal.list_workflows(query)]
    await asyncio.gather(*(terminate(i) for i in ids))
