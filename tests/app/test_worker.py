"""``subscriber worker`` as a process: it relocates, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest
from temporalio.client import Client

from subscriber.act.dns import PowerDns
from subscriber.act.signals import request_relocation
from subscriber.fakes.local_orchestrator import LocalOrchestrator
from subscriber.relocation import Placement, Status
from subscriber.settings import Settings
from tests.support.relocation import make_request, serve_from, wait_history

pytestmark = [pytest.mark.stack]


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment that points ``subscriber worker`` at this test's stack and names."""
    reloc, dns = settings.relocation, settings.powerdns
    return {
        **os.environ,
        "SUBSCRIBER_LOG__FORMAT": "json",
        "SUBSCRIBER_TEMPORAL__ADDRESS": settings.temporal.address,
        "SUBSCRIBER_TEMPORAL__TASK_QUEUE": settings.temporal.task_queue,
        "SUBSCRIBER_POWERDNS__API_URL": dns.api_url,
        "SUBSCRIBER_POWERDNS__API_KEY": dns.api_key,
        "SUBSCRIBER_POWERDNS__DNS_PORT": str(dns.dns_port),
        "SUBSCRIBER_POWERDNS__ZONE": dns.zone,
        "SUBSCRIBER_RELOCATION__LOCAL_DIR": str(reloc.local_dir),
        "SUBSCRIBER_RELOCATION__LOCAL_WARMUP_S": str(reloc.local_warmup_s),
        "SUBSCRIBER_RELOCATION__DRAIN_S": "0",
        "SUBSCRIBER_AMS__PORT": "0",
        "SUBSCRIBER_AMS__DB": str(settings.ams.db),
    }


async def test_worker_process_relocates_and_stops_on_sigterm(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    local: LocalOrchestrator,
    clusters: dict[str, Placement],
    unique: str,
) -> None:
    """The CLI worker runs a relocation, then drains and exits 0 on SIGTERM."""
    a, b = clusters["edge1"], clusters["edge2"]
    req = make_request(unique, a, b)
    name = await serve_from(local, pdns, req, a)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "subscriber", "worker",
        env=worker_env(act_settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(30):
            while b"worker.started" not in await proc.stdout.readline():
                pass
        await request_relocation(client, act_settings.temporal.task_queue, req)
        history = await wait_history(client, req, 1)
        assert history[0].status is Status.COMPLETED
        assert await pdns.query_a(name) == [b.address]
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            output = await proc.stdout.read()
            rc = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert rc == 0
    assert b"worker.stopped" in output
