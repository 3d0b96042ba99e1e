"""``subscriber serve`` as its own process (real granian), and free5GC-shaped bodies for it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson

from subscriber.settings import Settings, to_env

VECTORS = Path(__file__).parent.parent / "vectors"
JSON = {"content-type": "application/json"}
ACCEPT_ANY = "subscriber.ingress.server:accept_any_registry"
_AMF = orjson.loads((VECTORS / "d1-amf-notification-location.json").read_bytes())


def amf_body(ue: int, seq: int) -> bytes:
    """free5GC's D1 location report for UE ``ue``; its cell id and time both encode ``seq``."""
    doc = orjson.loads(orjson.dumps(_AMF))
    report = doc["reportList"][0]
    report["supi"] = f"imsi-20893{ue:010d}"
    nr = report["location"]["nrLocation"]
    nr["ncgi"]["nrCellId"] = f"{seq:09x}"
    nr["ueLocationTimestamp"] = f"2026-07-01T08:{seq // 60 % 60:02d}:{seq % 60:02d}.{seq:06d}Z"
    return orjson.dumps(doc)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def closed_kafka(settings: Settings) -> Settings:
    """``settings`` with Kafka on a port where nothing listens: every event goes to the spool."""
    return settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(
                update={"bootstrap_servers": f"127.0.0.1:{free_port()}", "publish_timeout_ms": 500}
            )
        }
    )


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
class Served:
    """A running ``subscriber serve``."""

    base: str
    port: int
    proc: asyncio.subprocess.Process
    log_file: Path


@contextlib.asynccontextmanager
async def serving(
    settings: Settings,
    log_file: Path,
    *,
    registry: str = ACCEPT_ANY,
    workers: int = 1,
    ready_timeout_s: float = 60,
) -> AsyncIterator[Served]:
    """Run ``subscriber serve`` on a free port until the block ends (then SIGTERM it).

    Its log (JSON lines) goes to ``log_file``, which the session's log scan reads too.
    """
    port = free_port()
    settings = settings.model_copy(
        update={
            "receiver": settings.receiver.model_copy(update={"port": port, "workers": workers}),
            "log": settings.log.model_copy(update={"format": "json", "level": "info"}),
        }
    )
    env = {**os.environ, **to_env(settings)}
    with log_file.open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "subscriber", "serve", "--registry", registry,
            env=env, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout_s
        async with httpx.AsyncClient(timeout=2) as http:
            while True:
                if proc.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"serve did not start; see {log_file}")
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{base}/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        yield Served(base, port, proc, log_file)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
