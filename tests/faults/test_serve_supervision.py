"""What a supervisor sees of ``subscriber serve``: exit codes, refusals at start, readiness."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import httpx
import orjson
import pytest

from subscriber.fakes.core import ExternalNrf, FakeCoreServer
from subscriber.settings import Settings, to_env
from subscriber.stack.free5gc import RealNrf
from subscriber.stack.procs import free_port
from tests.support.callbacks import JSON, amf_body
from tests.support.processes import serving

REGISTRY = "subscriber.ingress.subscriptions:registry_for"


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


async def _start(settings: Settings, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "subscriber", "serve", *args,
        env={**os.environ, **to_env(settings)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


@pytest.mark.stack
async def test_serve_exits_non_zero_when_its_tracker_dies(
    stack_settings: Settings, real_nrf: RealNrf, tmp_path: Path
) -> None:
    """The tracker killed under a running serve takes serve down with exit 1, not 0, so a
    restart-on-failure supervisor starts the pair again."""
    async with FakeCoreServer(nrf=ExternalNrf(real_nrf.url, real_nrf.certificate)) as fake:
        settings = stack_settings.model_copy(
            update={
                "core": stack_settings.core.model_copy(
                    update={"nrf_url": fake.nrf_url, "amf_tracking": "poll", "poll_interval_s": 0.2}
                ),
                "receiver": stack_settings.receiver.model_copy(update={"port": free_port()}),
            }
        )
        proc = await _start(settings)
        try:
            async with asyncio.timeout(60):
                while True:
                    trackers = [c for c in _children(proc.pid) if " track" in _cmdline(c)]
                    if trackers and fake.core.amf.subscriptions_created:  # it polled
                        break
                    await asyncio.sleep(0.1)
            os.kill(trackers[0], signal.SIGKILL)
            code = await asyncio.wait_for(proc.wait(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert code == 1


async def test_serve_refuses_a_port_another_process_listens_on(
    stack_base_settings: Settings, tmp_path: Path
) -> None:
    """A second serve on the port of a running one, or on a port any other program listens on,
    stops at once with one line and exit 1, instead of sharing the callbacks."""
    settings = stack_base_settings.model_copy(
        update={
            "receiver": stack_base_settings.receiver.model_copy(
                update={"spool_dir": tmp_path / "spool"}
            ),
            "core": stack_base_settings.core.model_copy(update={"state_dir": tmp_path / "state"}),
        }
    )
    async with serving(settings, tmp_path / "first.log") as first:
        taken = settings.model_copy(
            update={"receiver": settings.receiver.model_copy(update={"port": first.port})}
        )
        second = await _start(taken)
        _, err = await asyncio.wait_for(second.communicate(), 60)
        assert second.returncode == 1
        assert err.decode().strip().count("\n") == 0
        assert "already in use" in err.decode()
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        foreign = settings.model_copy(
            update={"receiver": settings.receiver.model_copy(update={"port": port})}
        )
        third = await _start(foreign)
        _, err = await asyncio.wait_for(third.communicate(), 60)
        assert third.returncode == 1
        assert "already in use" in err.decode()


@pytest.mark.stack
async def test_readiness_follows_the_subscriptions_file(
    stack_settings: Settings, tmp_path: Path
) -> None:
    """While the state file is of the wrong shape the receiver is not ready (503) and answers
    callbacks 404, never 500; once the file is good again it is ready."""
    state = stack_settings.core.state_dir
    state.mkdir(parents=True, exist_ok=True)
    (state / "subscriptions.json").write_bytes(b'{"records": {"not": "a list"}}')
    async with (
        serving(stack_settings, tmp_path / "serve.log", registry=REGISTRY) as served,
        httpx.AsyncClient(timeout=10) as http,
    ):
        assert (await http.get(f"{served.base}/readyz")).status_code == 503
        answer = await http.post(
            f"{served.base}/callbacks/amf/anything", content=amf_body(1, 1), headers=JSON
        )
        assert answer.status_code == 404
        (state / "subscriptions.json").write_bytes(orjson.dumps({"records": []}))
        assert (await http.get(f"{served.base}/readyz")).status_code == 200
