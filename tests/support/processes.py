"""``subscriber serve`` (real granian) and ``subscriber consume`` as processes, and their memory."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from subscriber.settings import Settings, to_env
from tests.support.ports import free_port

ACCEPT_ANY = "tests.support.registry:accept_any"
KNOWN_ONLY = "tests.support.registry:known"
ROOT = Path(__file__).parent.parent.parent


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants (granian's workers), in KiB."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def metric(text: str, prefix: str) -> float:
    """The value of the one Prometheus sample whose line starts with ``prefix``."""
    (line,) = [x for x in text.splitlines() if x.startswith(prefix)]
    return float(line.rsplit(" ", 1)[1])


@dataclass
class Server:
    """A running ``subscriber serve`` process."""

    base: str
    port: int
    proc: subprocess.Popen[bytes]
    settings: Settings
    log_file: Path

    def rss_kib(self) -> int:
        """Resident memory of the server and its granian workers."""
        return rss_kib(self.proc.pid)

    def healthy(self) -> bool:
        """The process runs and /healthz answers 200."""
        if self.proc.poll() is not None:
            return False
        with httpx.Client(timeout=5) as http:
            return http.get(f"{self.base}/healthz").status_code == 200


@contextlib.contextmanager
def serve_process(
    settings: Settings,
    log_file: Path,
    *,
    registry: str | None = ACCEPT_ANY,
    workers: int = 1,
    ready_timeout_s: float = 60,
) -> Iterator[Server]:
    """Run ``subscriber serve`` on a free port until the block ends (then SIGTERM it).

    Its log (JSON lines) goes to ``log_file``, which the session's log scan reads too.

    Args:
        settings: the settings the process runs with (its port and log format are set here).
        log_file: where its stdout and stderr go.
        registry: ``module:function`` returning the subscription registry (``serve --registry``);
            None for the default, the subscription state file.
        workers: granian worker processes.
        ready_timeout_s: how long /healthz may take to answer 200.
    """
    port = free_port()
    settings = settings.model_copy(
        update={
            "receiver": settings.receiver.model_copy(update={"port": port, "workers": workers}),
            "log": settings.log.model_copy(update={"format": "json", "level": "info"}),
        }
    )
    env = {**os.environ, **to_env(settings)}
    argv = [sys.executable, "-m", "subscriber", "serve"]
    if registry is not None:
        argv += ["--registry", registry]
    with log_file.open("ab") as log:
        proc = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdout=log, stderr=log, start_new_session=True
        )
    server = Server(f"http://127.0.0.1:{port}", port, proc, settings, log_file)
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve did not start; see {log_file}")
            with contextlib.suppress(httpx.TransportError):
                if server.healthy():
                    break
            time.sleep(0.1)
        yield server
    finally:
        stop_process(proc, group=True)


@contextlib.asynccontextmanager
async def serving(settings: Settings, log_file: Path, **options: Any) -> AsyncIterator[Server]:
    """:func:`serve_process` from async code: starts and stops it off the event loop."""
    running = serve_process(settings, log_file, **options)
    server = await asyncio.to_thread(running.__enter__)
    try:
        yield server
    finally:
        await asyncio.to_thread(running.__exit__, None, None, None)


@contextlib.contextmanager
def consumer_process(settings: Settings, log_file: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``subscriber consume`` as its own process; stopped (SIGTERM) at the end if alive."""
    env = {**os.environ, **to_env(settings)}
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "subscriber", "consume"], env=env, stdout=log, stderr=log
        )
    try:
        yield proc
    finally:
        stop_process(proc, must_stop=True)


def stop_process(
    proc: subprocess.Popen[bytes],
    *,
    group: bool = False,
    must_stop: bool = False,
    timeout_s: float = 30,
) -> None:
    """SIGTERM, and SIGKILL after ``timeout_s`` if it is still running.

    Args:
        proc: the process (nothing happens if it has exited).
        group: SIGKILL its whole session (granian's workers too), not only the process.
        must_stop: re-raise ``subprocess.TimeoutExpired`` after the kill: ignoring SIGTERM is
            then the failure under test.
        timeout_s: how long SIGTERM may take.
    """
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
        proc.wait()
        if must_stop:
            raise
