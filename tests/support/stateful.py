"""Stateful moves: an AMS at a known port, instances that register with it, a user of the app."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp

from subscriber.act.dns import PowerDns
from subscriber.ams.models import app_instance_id
from subscriber.ams.service import BASE_PATH
from subscriber.fakes.edge_user import EdgeUser
from subscriber.fakes.local_orchestrator import LocalOrchestrator
from subscriber.relocation import Placement, RelocationRequest
from subscriber.settings import Settings, to_env
from tests.support.ports import free_port
from tests.support.processes import ROOT, stop_process
from tests.support.waiting import until

UE = "127.0.9.7"
"""The user's address: what the app knows it by (MEC 012 AssociateId type 1)."""


def with_ams_port(settings: Settings) -> Settings:
    """``settings`` with the AMS on a free port known before it starts (instances need it)."""
    return settings.model_copy(
        update={"ams": settings.ams.model_copy(update={"port": free_port()})}
    )


def ams_root(settings: Settings) -> str:
    """The AMS API root the instances use."""
    return settings.ams.url + BASE_PATH


@contextlib.asynccontextmanager
async def registering_orchestrator(settings: Settings) -> AsyncIterator[LocalOrchestrator]:
    """The local orchestrator, its instances told where the AMS is; all stopped at the end."""
    r = settings.relocation
    async with LocalOrchestrator(
        state_dir=r.local_dir, warmup_s=r.local_warmup_s, ams_url=ams_root(settings)
    ) as local:
        try:
            yield local
        finally:
            local.remove_all()


async def http_json(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    """One JSON call; (status, decoded body or None)."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
        http.request(method, url, json=body) as resp,
    ):
        data = await resp.json(content_type=None) if resp.status != 204 else None
        return resp.status, data


async def app_state(at: Placement) -> dict[str, Any]:
    """What the instance at ``at`` holds (``GET /fake/state``)."""
    status, data = await http_json("GET", f"http://{at.address}:{at.port}/fake/state")
    assert status == 200
    state: dict[str, Any] = data
    return state


async def behave(at: Placement, mode: str, level: int | None = None) -> None:
    """Tell the instance at ``at`` how to answer the next mobility notification."""
    body: dict[str, Any] = {"mode": mode}
    if level is not None:
        body["level"] = level
    status, _ = await http_json("PUT", f"http://{at.address}:{at.port}/fake/transfer", body)
    assert status == 204


async def retrigger(at: Placement) -> None:
    """Make the instance act on the mobility notification it ignored (a slow application)."""
    status, _ = await http_json("POST", f"http://{at.address}:{at.port}/fake/retrigger")
    assert status == 204


async def registered(settings: Settings, req: RelocationRequest, at: Placement) -> bool:
    """The AMS has the instance at ``at`` registered with the user, and its subscription."""
    with contextlib.suppress(aiohttp.ClientError, OSError):
        status, regs = await http_json("GET", f"{ams_root(settings)}/app_mobility_services")
        if status != 200:
            return False
        mine = app_instance_id(req.app, req.instance, at.cluster)
        for reg in regs:
            if reg["serviceConsumerId"].get("appInstanceId") == mine:
                values = [d["associateId"]["value"] for d in reg["deviceInformation"]]
                state = await app_state(at)
                return UE in values and bool(state["subscribed"])
    return False


def user_of(pdns: PowerDns, req: RelocationRequest, port: int) -> EdgeUser:
    """The app's user, finding it through the authoritative DNS answer at every request."""
    from subscriber.act.dns import record_name

    name = record_name(req.app, req.instance, pdns.zone)

    async def resolve() -> tuple[str, int]:
        (address,) = await pdns.query_a(name)
        return address, port

    return EdgeUser(UE, resolve)


@contextlib.asynccontextmanager
async def using(user: EdgeUser, every_s: float = 0.05) -> AsyncIterator[EdgeUser]:
    """The user sends requests in the background while the block runs."""
    stop = asyncio.Event()
    async with user:
        task = asyncio.create_task(user.run(stop, every_s))
        try:
            yield user
        finally:
            stop.set()
            await task


async def warm_up(user: EdgeUser, requests: int = 5) -> None:
    """A few requests before the move, so the app has state and registers the user."""
    for _ in range(requests):
        await user.step()


@contextlib.contextmanager
def worker_process(settings: Settings, log_file: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``subscriber worker`` as its own process (stopped at the end if alive)."""
    env = {**os.environ, **to_env(settings)}
    with log_file.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "subscriber", "worker"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=log,
        )
    try:
        yield proc
    finally:
        stop_process(proc)


async def ams_up(settings: Settings) -> bool:
    """The AMS answers."""
    with contextlib.suppress(aiohttp.ClientError, OSError):
        status, _ = await http_json("GET", f"{ams_root(settings)}/subscriptions")
        return status == 200
    return False


async def wait_ams(settings: Settings, timeout_s: float = 30) -> None:
    """Until the AMS answers."""
    await until(lambda: ams_up(settings), timeout_s=timeout_s)
