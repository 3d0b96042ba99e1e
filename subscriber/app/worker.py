"""``subscriber worker``: the Temporal worker that runs the relocation workflow and activities.

It polls ``settings.temporal.task_queue`` until SIGTERM or SIGINT, then stops polling, lets the
activities in flight finish for up to ``settings.shutdown_grace_s``, and closes its adapters.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta

import structlog
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker

from subscriber.act.activities import DnsPort, OutcomesPort, RelocationActivities
from subscriber.act.context_activities import ContextActivities
from subscriber.act.dns import PowerDns
from subscriber.act.orchestrator import Orchestrator
from subscriber.act.outcomes import OutcomeWriter
from subscriber.act.routing import RoutedOrchestrator
from subscriber.act.signals import connect
from subscriber.act.steering_activities import SteeringActivities
from subscriber.act.workflows import STEP_BUCKETS_S, STEPS_METRIC, RelocationWorkflow
from subscriber.ams.server import serving_ams
from subscriber.ams.service import Ams
from subscriber.app.lifecycle import run_until_stopped, traced
from subscriber.app.probes import ProbeServer, Readiness
from subscriber.settings import Settings

log = structlog.get_logger()


async def open_orchestrator(
    settings: Settings, stack: AsyncExitStack, *, ams_url: str | None = None
) -> Orchestrator:
    """The orchestrators the settings and the topology name, entered on ``stack``: one for the
    topology's Kubernetes clusters, and ``relocation.orchestrator`` for every other cluster.
    ``ams_url`` is handed to the instances the local orchestrator starts."""
    default = await _open_default(settings, stack, ams_url)
    topology_file = settings.policy.topology_file
    if topology_file is None:
        return default
    from subscriber.act.kubernetes import from_topology

    kube = from_topology(topology_file, settings.relocation)
    if not kube.clusters:
        return default
    await stack.enter_async_context(kube)
    return RoutedOrchestrator(default, dict.fromkeys(kube.clusters, kube))


async def _open_default(
    settings: Settings, stack: AsyncExitStack, ams_url: str | None
) -> Orchestrator:
    reloc = settings.relocation
    if reloc.orchestrator == "emco":
        from subscriber.act.emco import EmcoOrchestrator

        return await stack.enter_async_context(EmcoOrchestrator.from_settings(reloc))
    from subscriber.fakes.local_orchestrator import LocalOrchestrator

    return await stack.enter_async_context(
        LocalOrchestrator(state_dir=reloc.local_dir, warmup_s=reloc.local_warmup_s, ams_url=ams_url)
    )


async def open_steering(settings: Settings, stack: AsyncExitStack) -> SteeringActivities:
    """The traffic-influence activities: the NEF reached as an AF of its own (its NF instance
    id kept apart from the tracker's, so neither deregisters the other), its records in
    ``core.state_dir`` beside the receiver's."""
    import aiohttp

    from subscriber.act.nef import TrafficInfluenceClient
    from subscriber.app.tracker import callback_base
    from subscriber.influence import InfluenceStore
    from subscriber.ingress.nrf import NrfClient

    core = settings.core
    http = await stack.enter_async_context(aiohttp.ClientSession())
    nrf_settings = core.model_copy(update={"state_dir": core.state_dir / "steering-af"})
    nrf = await stack.enter_async_context(NrfClient(settings=nrf_settings, session=http))
    client = TrafficInfluenceClient(
        nrf=nrf, session=http, settings=settings.traffic_influence, af_id=core.nef_af_id
    )
    return SteeringActivities(
        client=client,
        store=InfluenceStore(core.state_dir),
        instances_file=settings.act.instances_file,
        callback_base=callback_base(settings),
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
    ams: Ams,
    steering: SteeringActivities | None = None,
    outcomes: OutcomesPort | None = None,
) -> Worker:
    """A worker for the relocation workflow and its activities (not started)."""
    activities = RelocationActivities(
        orchestrator=orchestrator, dns=dns, settings=settings.relocation, outcomes=outcomes
    )
    context = ContextActivities(ams=ams, orchestrator=orchestrator)
    return Worker(
        client,
        task_queue=settings.temporal.task_queue,
        workflows=[RelocationWorkflow],
        activities=[*activities.all(), *context.all(), *(steering.all() if steering else [])],
        graceful_shutdown_timeout=timedelta(seconds=settings.shutdown_grace_s),
    )


class RelocationWorker:
    """The relocation worker, polling its task queue while :meth:`run` runs."""

    def __init__(self, worker: Worker, settings: Settings) -> None:
        """Hold a built (not started) worker."""
        self._worker = worker
        self._s = settings

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set; then stop polling and let activities in flight finish."""
        async with self._worker:
            log.info(
                "worker.started",
                task_queue=self._s.temporal.task_queue,
                orchestrator=self._s.relocation.orchestrator,
            )
            await stop.wait()
            log.info("worker.stopping", grace_s=self._s.shutdown_grace_s)


def temporal_readiness(client: Client) -> Readiness:
    """The worker's readiness: Temporal answers its gRPC health check within 2 s."""

    async def ready() -> str | None:
        try:
            async with asyncio.timeout(2):
                if await client.service_client.check_health():
                    return None
        except Exception as exc:  # any failure to answer is "not ready", said in words
            return f"Temporal does not answer its health check: {type(exc).__name__}"
        return "Temporal reports itself not serving"

    return ready


@asynccontextmanager
async def open_worker(
    settings: Settings,
    *,
    client: Client | None = None,
    orchestrator: Orchestrator | None = None,
    dns: DnsPort | None = None,
) -> AsyncIterator[RelocationWorker]:
    """The Temporal client, the AMS, the orchestrator, PowerDNS and the outcomes writer, then the
    worker over them.

    The AMS (ETSI GS MEC 021) lives here because the workflow drives every procedure it runs:
    the activities that notify applications and wait for their context read the same store
    the API writes, in the same process, with no hop and no second copy of the state; and the
    worker is already the process that reaches the edge clusters, where the applications are.

    Args:
        settings: the whole settings.
        client: a connected client; one is connected (with the metrics runtime) when None.
        orchestrator: the orchestrator to drive; the one ``relocation.orchestrator`` names when
            None.
        dns: the DNS adapter; PowerDNS (``powerdns``), its zone created, when None.
    """
    async with AsyncExitStack() as stack:
        if client is None:
            client = await connect(settings.temporal, runtime=metrics_runtime(settings))
        ams = await stack.enter_async_context(serving_ams(settings.ams))
        if orchestrator is None:
            orchestrator = await open_orchestrator(settings, stack, ams_url=ams.base_url)
        if dns is None:
            powerdns = await stack.enter_async_context(PowerDns(settings.powerdns))
            await powerdns.ensure_zone()
            dns = powerdns
        outcomes = await stack.enter_async_context(OutcomeWriter(settings.kafka))
        if settings.relocation.probe_port is not None:
            await stack.enter_async_context(
                ProbeServer(
                    host="0.0.0.0",  # noqa: S104 - probed from outside the container
                    port=settings.relocation.probe_port,
                    ready=temporal_readiness(client),
                    metrics=False,  # the Temporal runtime serves them (relocation.metrics_port)
                )
            )
        steering = await open_steering(settings, stack)
        worker = build_worker(
            client,
            settings,
            orchestrator=orchestrator,
            dns=dns,
            ams=ams,
            outcomes=outcomes,
            steering=steering,
        )
        yield RelocationWorker(worker, settings)
    log.info("worker.stopped")


async def main(settings: Settings) -> int:
    """The CLI entry: run the worker until SIGTERM or SIGINT."""
    with traced(settings, "subscriber-worker"):
        await run_until_stopped(open_worker(settings))
    # The Temporal runtime can abort the interpreter at exit (code 134) after a clean shutdown
    # (temporalio/sdk-python#300); everything is closed: leave now.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
