"""PowerDNS down while a relocation steers DNS: the real workflow, worker, Temporal and PowerDNS."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from subscriber.act.dns import DnsError, PowerDns
from subscriber.act.signals import request_relocation
from subscriber.act.workflows import RelocationWorkflow
from subscriber.relocation import Placement, Status, Step, workflow_id
from subscriber.settings import Settings
from subscriber.stack.supervisor import start_service, stop_service
from tests.support.relocation import (
    Gated,
    make_request,
    relocation_clients,
    running_worker,
    serve_from,
    wait_history,
)
from tests.support.settings import isolate, tuned

pytestmark = [pytest.mark.stack, pytest.mark.slow]


class CountingDns:
    """The real PowerDNS adapter, counting the API calls that failed."""

    def __init__(self, inner: PowerDns) -> None:
        self.inner = inner
        self.failures = 0
        self.failed = asyncio.Event()

    @property
    def zone(self) -> str:
        """The inner zone."""
        return self.inner.zone

    async def replace_a(self, name: str, addresses: list[str]) -> None:
        """Replace through the API; count a failure."""
        try:
            await self.inner.replace_a(name, addresses)
        except DnsError:
            self.failures += 1
            self.failed.set()
            raise

    async def query_a(self, name: str) -> list[str]:
        """The real answer."""
        return await self.inner.query_a(name)


async def fetch(placement: Placement) -> str:
    """What the service at ``placement`` answers on ``/``."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http,
        http.get(f"http://{placement.address}:{placement.port}/") as resp,
    ):
        return (await resp.text()).strip()


@pytest.mark.parametrize("outage", ["back_within_retries", "down_throughout"])
async def test_powerdns_down_during_the_dns_step(
    private_stack: Settings,
    clusters: dict[str, Placement],
    unique: str,
    tmp_path: Path,
    outage: str,
) -> None:
    """PowerDNS stopped as the move reaches DNS: the step retries; back in time, the move
    completes; down through every retry, the move fails and the app still serves from the
    source, which DNS still names."""
    settings = tuned(isolate(private_stack, unique, tmp_path), tmp_path)
    a, b = clusters["edge1"], clusters["edge2"]
    req = make_request(unique, a, b)
    async with relocation_clients(settings) as (client, pdns, local):
        name = await serve_from(local, pdns, req, a)
        gated = Gated(local, "edge2")
        dns = CountingDns(pdns)
        async with running_worker(client, settings, gated, dns):
            await request_relocation(client, settings.temporal.task_queue, req)
            await gated.waiting.wait()
            await asyncio.to_thread(stop_service, private_stack, "powerdns", hard=True)
            stopped = time.monotonic()
            gated.gate.set()
            await dns.failed.wait()
            if outage == "back_within_retries":
                await start_service(private_stack, "powerdns")
            history = await wait_history(client, req, 1, timeout_s=120)
            finished = time.monotonic()
            state = await client.get_workflow_handle(workflow_id(req.app, req.instance)).query(
                RelocationWorkflow.state
            )
        if outage == "down_throughout":
            await start_service(private_stack, "powerdns")
        outcome = history[0]
        print(
            f"\nfault figures (powerdns {outage}): failed_api_calls={dns.failures} "
            f"outcome_s={finished - stopped:.1f} status={outcome.status.value} "
            f"compensated={outcome.compensated} errors={len(outcome.compensation_errors)}"
        )
        if outage == "back_within_retries":
            assert outcome.status is Status.COMPLETED
            assert await pdns.query_a(name) == [b.address]
            assert local.running() == [(req.app, req.instance, "edge2")]
            assert state.placement == b
        else:
            assert outcome.status is Status.FAILED
            assert outcome.failed_step is Step.DNS
            # Compensation cannot restore DNS either; but the change never reached the
            # server, so DNS still names the source: the target is removed and the source,
            # never touched, stays the placement and keeps serving.
            assert [e.split(":", 1)[0] for e in outcome.compensation_errors] == ["dns_restore"]
            assert "target_removed" in outcome.compensated
            assert await pdns.query_a(name) == [a.address]
            assert await fetch(a) == "edge1"
            assert sorted(local.running()) == [(req.app, req.instance, "edge1")]
            assert state.placement == a
        assert state.in_flight is None
        assert dns.failures >= 1
