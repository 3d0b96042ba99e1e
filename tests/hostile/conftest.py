"""One real ``subscriber serve`` process per hostile-input module, on the session's stack."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from subscriber.settings import Settings, to_env
from tests.conftest import isolate
from tests.faults.serve import free_port, rss_kib

ROOT = Path(__file__).parent.parent.parent
REGISTRY = "tests.hostile.registry:known"


@dataclass
class Server:
    """A running receiver process."""

    base: str
    port: int
    proc: subprocess.Popen[bytes]
    settings: Settings

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
def serve_process(settings: Settings, log_file: Path) -> Iterator[Server]:
    """``subscriber serve`` with the hostile registry, until the block ends (then SIGTERM)."""
    port = free_port()
    settings = settings.model_copy(
        update={
            "receiver": settings.receiver.model_copy(update={"port": port}),
            "log": settings.log.model_copy(update={"format": "json", "level": "info"}),
        }
    )
    env = {**os.environ, **to_env(settings)}
    with log_file.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "subscriber", "serve", "--registry", REGISTRY],
            env=env, cwd=ROOT, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
    server = Server(f"http://127.0.0.1:{port}", port, proc, settings)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve did not start; see {log_file}")
            with contextlib.suppress(httpx.TransportError):
                if server.healthy():
                    break
            time.sleep(0.1)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture(scope="module")
def server(
    stack_base_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The receiver under granian, publishing to the session's Kafka, for this module."""
    tmp = tmp_path_factory.mktemp("hostile")
    settings = isolate(stack_base_settings, uuid.uuid4().hex[:10], tmp)
    with serve_process(settings, tmp / "serve.log") as running:
        yield running
