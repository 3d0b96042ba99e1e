"""Fixtures for the act tests: tuned settings, a Temporal client, PowerDNS, loopback clusters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client

from subscriber.act.dns import PowerDns
from subscriber.act.signals import connect
from subscriber.fakes.local_orchestrator import LocalOrchestrator
from subscriber.settings import Settings
from tests.support.settings import tuned


@pytest.fixture
def act_settings(stack_settings: Settings, tmp_path: Path) -> Settings:
    """The session stack's settings, :func:`tuned`, with names unique to this test."""
    return tuned(stack_settings, tmp_path)


@pytest.fixture
async def client(act_settings: Settings) -> Client:
    """A Temporal client with the pydantic converter."""
    return await connect(act_settings.temporal)


@pytest.fixture
async def pdns(act_settings: Settings) -> AsyncIterator[PowerDns]:
    """The stack's PowerDNS, with this test's zone created."""
    async with PowerDns(act_settings.powerdns) as dns:
        await dns.ensure_zone()
        yield dns


@pytest.fixture
async def local(act_settings: Settings) -> AsyncIterator[LocalOrchestrator]:
    """The local orchestrator; every service it started is stopped at the end."""
    reloc = act_settings.relocation
    async with LocalOrchestrator(state_dir=reloc.local_dir, warmup_s=reloc.local_warmup_s) as orch:
        yield orch
        orch.remove_all()
