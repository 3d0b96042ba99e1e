"""``subscriber worker``: the Temporal worker that runs the relocation workflow and activities.

It polls ``settings.temporal.task_queue`` until SIGTERM or SIGINT, then stops polling, lets the
activities in flight finish for up to ``settings.shutdown_grace_s``, and closes its adapters.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from contextlib import AsyncExitStack
from datetime import timedelta

import structlog
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker

from subscriber.act.activities import DnsPort, RelocationActivities
from subscriber.act.dns import PowerDns
from subscriber.act.orchestrator import Orchestrator
from subscriber.act.signals import connect
from subscriber.act.workflows import STEP_BUCKETS_S, STEPS_METRIC, RelocationWorkflow
from subscriber.settings import Settings
from subscriber.tracing import configure_tracing, shutdown_tracing

log = structlog.get_logger()


async def open_orchestrator(settings: Settings, stack: AsyncExitStack) -> Orchestrator:
    """The orchestrator adapter the settings name, entered on ``stack``."""
    reloc = settings.relocation
    if reloc.orchestrator == "emco":
        from subscriber.act.emco import EmcoOrchestrator

        return await stack.enter_async_context(EmcoOrchestrator.from_settings(reloc))
    from subscriber.act.local_orchestrator import LocalOrchestrator

    return await stack.enter_async_context(
        LocalOrchestrator(state_dir=reloc.local_dir, warmup_s=reloc.local_warmup_s)
    )


def metrics_runtime(settings: Settings) -> Runtime | None:
    """A Temporal runtime serving Prometheus metrics on ``relocation.metrics_port``, if set.

    It exports the SDK's own worker metrics, the workflow's ``subscriber_relocations_total`` and
    its step durations (``subscriber_relocation_step_seconds``).
    """
    port = settings.relocation.metrics_port
    if port is None:
        return None
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=f"0.0.0.0:{port}",
                counters_total_suffix=True,
                histogram_bucket_overrides={STEPS_METRIC: STEP_BUCKETS_S},
            )
        )
    )


def build_worker(
    client: Client,
    settings: Settings,
    *,
    orchestrator: Orchestrator,
    dns: DnsPort,
) -> Worker:
    """A worker for the relocation workflow and its activities (not started)."""
    activities = RelocationActivities(
        orchestrator=orchestrator, dns=dns, settings=settings.relocation
    )
    return Worker(
        client,
        task_queue=settings.temporal.task_queue,
        workflows=[RelocationWorkflow],
        activities=activities.all(),
        graceful_shutdown_timeout=timedelta(seconds=settings.shutdown_grace_s),
    )


async def run(settings: Settings, args: argparse.Namespace | None = None) -> int:
    """Run the worker until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    provider = configure_tracing(settings.log, service="subscriber-worker")
    async with AsyncExitStack() as stack:
        stack.callback(shutdown_tracing, provider)
        client = await connect(settings.temporal, runtime=metrics_runtime(settings))
        orchestrator = await open_orchestrator(settings, stack)
        dns = await stack.enter_async_context(PowerDns(settings.powerdns))
        await dns.ensure_zone()
        worker = build_worker(client, settings, orchestrator=orchestrator, dns=dns)
        async with worker:
            log.info(
                "worker.started",
                task_queue=settings.temporal.task_queue,
                orchestrator=settings.relocation.orchestrator,
            )
            await stop.wait()
            log.info("worker.stopping", grace_s=settings.shutdown_grace_s)
    log.info("worker.stopped")
    # The Temporal runtime can abort the interpreter at exit (code 134) after a clean shutdown
    # (sdk-python#300, ../shared/notes/local-stack.md §3.5); everything is closed: leave now.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
