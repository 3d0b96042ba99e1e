"""Relocation helpers: requests, a worker in-process, histories, fault-injecting wrappers.

The orchestrator and DNS wrappers below only add failures (or a gate) in front of the real
adapters; everything else is the real local orchestrator, PowerDNS and Temporal.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from subscriber.act.activities import DnsPort
from subscriber.act.dns import DnsError, PowerDns, record_name
from subscriber.act.orchestrator import Orchestrator, OrchestratorError
from subscriber.act.signals import SignalReceipt, connect, request_relocation
from subscriber.act.workflows import RelocationWorkflow
from subscriber.app.lifecycle import running
from subscriber.app.worker import RelocationWorker, open_worker
from subscriber.fakes.local_orchestrator import LocalOrchestrator
from subscriber.relocation import (
    Endpoint,
    MoveOutcome,
    Placement,
    Readiness,
    RelocationRequest,
    RequestKind,
    Step,
)
from subscriber.settings import Settings
from tests.support.waiting import until

DNS_MOVE_STEPS = [
    s.value
    for s in Step
    if s not in (Step.TRAFFIC_INFLUENCE, Step.TRAFFIC_CONFIRM, Step.REMOVE_WARM)
]
"""Every step a DNS-steered move runs, in order."""


@asynccontextmanager
async def relocation_clients(
    settings: Settings,
) -> AsyncIterator[tuple[Client, PowerDns, LocalOrchestrator]]:
    """A Temporal client, PowerDNS (the zone created) and the local orchestrator for ``settings``.

    Every service the orchestrator started is stopped at the end, whatever happened.
    """
    client = await connect(settings.temporal)
    reloc = settings.relocation
    async with (
        PowerDns(settings.powerdns) as pdns,
        LocalOrchestrator(state_dir=reloc.local_dir, warmup_s=reloc.local_warmup_s) as local,
    ):
        await pdns.ensure_zone()
        try:
            yield client, pdns, local
        finally:
            local.remove_all()


class Recorder:
    """The real signal-with-start, remembering every request Temporal accepted."""

    def __init__(self) -> None:
        self.accepted: list[RelocationRequest] = []

    async def __call__(self, client: Client, queue: str, req: RelocationRequest) -> SignalReceipt:
        """Signal; remember the request once Temporal accepted it."""
        receipt = await request_relocation(client, queue, req)
        self.accepted.append(req)
        return receipt


def running_worker(
    client: Client, settings: Settings, orchestrator: Orchestrator, dns: DnsPort
) -> AbstractAsyncContextManager[RelocationWorker]:
    """The worker process's wiring, polling the test's task queue while the block runs."""
    return running(open_worker(settings, client=client, orchestrator=orchestrator, dns=dns))


class Faulty:
    """Wraps an orchestrator; fails chosen operations on chosen clusters, permanently."""

    def __init__(self, inner: Orchestrator, **fail: str) -> None:
        self.inner = inner
        self.fail = fail  # operation name -> cluster

    def _maybe_fail(self, op: str, cluster: str) -> None:
        if self.fail.get(op) == cluster:
            raise OrchestratorError(f"injected {op} failure on {cluster}", permanent=True)

    async def deploy(self, app: str, instance: str, placement: Placement) -> Endpoint:
        """Deploy, unless told to fail here."""
        self._maybe_fail("deploy", placement.cluster)
        return await self.inner.deploy(app, instance, placement)

    async def readiness(self, endpoint: Endpoint) -> Readiness:
        """Readiness of the inner orchestrator."""
        return await self.inner.readiness(endpoint)

    async def remove(self, app: str, instance: str, placement: Placement) -> None:
        """Remove, unless told to fail here."""
        self._maybe_fail("remove", placement.cluster)
        await self.inner.remove(app, instance, placement)


class Gated(Faulty):
    """Holds readiness on one cluster at NOT_READY until the gate opens: a move held mid-way."""

    def __init__(self, inner: Orchestrator, cluster: str) -> None:
        super().__init__(inner)
        self.cluster = cluster
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def readiness(self, endpoint: Endpoint) -> Readiness:
        """NOT_READY on the gated cluster while the gate is shut."""
        if endpoint.placement.cluster == self.cluster and not self.gate.is_set():
            self.waiting.set()
            return Readiness.NOT_READY
        return await self.inner.readiness(endpoint)


class FaultyDns:
    """Wraps PowerDNS; the API rejects a change to ``fail_address``, as it does a bad record."""

    def __init__(self, inner: PowerDns, fail_address: str) -> None:
        self.inner = inner
        self.fail_address = fail_address

    @property
    def zone(self) -> str:
        """The inner zone."""
        return self.inner.zone

    async def replace_a(self, name: str, addresses: list[str]) -> None:
        """Replace, unless the change names the failing address."""
        if self.fail_address in addresses:
            raise DnsError("PowerDNS PATCH: 422 injected", permanent=True)
        await self.inner.replace_a(name, addresses)

    async def query_a(self, name: str) -> list[str]:
        """The real answer."""
        return await self.inner.query_a(name)


def make_request(
    unique: str,
    source: Placement | None,
    target: Placement,
    n: int = 1,
    *,
    app: str = "shop",
    kind: RequestKind = RequestKind.MOVE,
) -> RelocationRequest:
    """A request as the consumer would build it; ``n`` orders requests and ids."""
    return RelocationRequest(
        kind=kind,
        request_id=f"evt-{unique}-{n}",
        app=app,
        instance=f"i{unique}",
        ue_key="~0123456789ab",
        source=source,
        target=target,
        event_id=f"evt-{unique}-{n}",
        decided_at=datetime(2026, 1, 1, 0, 0, n, tzinfo=UTC),
        policy_version="test",
        reasons=("cell_changed",),
    )


async def serve_from(
    local: LocalOrchestrator, pdns: PowerDns, req: RelocationRequest, placement: Placement
) -> str:
    """Start the app at ``placement``, point its DNS record there; return the record name."""
    endpoint = await local.deploy(req.app, req.instance, placement)
    await until(lambda: _ready(local, endpoint), timeout_s=10)
    name = record_name(req.app, req.instance, pdns.zone)
    await pdns.replace_a(name, [placement.address])
    return name


async def _ready(local: LocalOrchestrator, endpoint: Endpoint) -> bool:
    return await local.readiness(endpoint) is Readiness.READY


async def assert_replays(handle: WorkflowHandle[Any, Any]) -> None:
    """The recorded history replays against today's workflow code: it is deterministic."""
    replayer = Replayer(workflows=[RelocationWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(await handle.fetch_history())


async def wait_history(
    client: Client, req: RelocationRequest, count: int, timeout_s: float = 60
) -> list[MoveOutcome]:
    """Poll the workflow's history query until it holds ``count`` outcomes."""
    from subscriber.relocation import workflow_id

    handle = client.get_workflow_handle_for(
        RelocationWorkflow.run, workflow_id(req.app, req.instance)
    )
    async with asyncio.timeout(timeout_s):
        while True:
            history = await handle.query(RelocationWorkflow.history)
            if len(history) >= count:
                return history
            await asyncio.sleep(0.05)
