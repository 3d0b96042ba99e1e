"""A local orchestrator for the demo and the tests: one real HTTP service per instance and cluster.

Each "cluster" is a loopback address (127.0.1.1, 127.0.2.1, ...: Linux routes all of 127/8 to
``lo``), so a relocation visibly moves a live service and DNS steering changes which address the
app's name resolves to. An instance is the demo application (:mod:`subscriber.fakes.edge_app`)
in its own process: ``GET /`` answers its cluster's name, ``GET /healthz`` 200 only after a
warm-up, so readiness is something to wait for, and it keeps a counter per user that moves with
the user through the AMS when the orchestrator knows the AMS's URL.

Several instances share a cluster, as on a real one, where each gets a service port of its own
(a Kubernetes NodePort, see :mod:`subscriber.act.kubernetes`): an instance listens on the
placement's port when it is free on the cluster's address and on a port the kernel picks when
it is not, and the :class:`Endpoint` a deploy returns names the port it got. The orchestrator
binds and listens itself and hands the socket to the process, so two deploys at once cannot
both take one port, and readiness checks that ``/healthz`` was answered by the instance asked
about, not by a neighbour on a reused port. Every process is recorded
in a JSON file under ``state_dir`` (PID and start time), so a restarted worker finds, reuses or
stops what an earlier one started, and :meth:`LocalOrchestrator.remove_all` leaves nothing
behind.

Run one service by hand: ``python -m subscriber.fakes.edge_app --cluster edge1
--host 127.0.1.1 --port 8080``.
"""

from __future__ import annotations

import asyncio
import errno
import json
import socket
import sys
from pathlib import Path
from types import TracebackType

import aiohttp
import structlog

from subscriber.act.orchestrator import OrchestratorError
from subscriber.relocation import Endpoint, Placement, Readiness
from subscriber.stack.procs import is_running, spawn, start_ticks, stop

log = structlog.get_logger()


class LocalOrchestrator:
    """Runs instances as loopback HTTP services in subprocesses; see the module docstring.

    Args:
        state_dir: where process records and service logs go.
        warmup_s: how long a new service answers 503 on ``/healthz`` before turning ready.
        python: the interpreter that runs the services.
        ams_url: the AMS API root the instances register with; None: they run without it.
    """

    def __init__(
        self,
        *,
        state_dir: Path,
        warmup_s: float = 0.5,
        python: str = sys.executable,
        ams_url: str | None = None,
    ) -> None:
        self._dir = state_dir
        self._warmup_s = warmup_s
        self._ams_url = ams_url
        self._python = python
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> LocalOrchestrator:
        self._dir.mkdir(parents=True, exist_ok=True)
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Services outlive the worker on purpose, like workloads on a real cluster.
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _record_path(self, app: str, instance: str, cluster: str) -> Path:
        return self._dir / f"{app}.{instance}.{cluster}.json"

    def _read(self, path: Path) -> dict[str, int | str] | None:
        try:
            record: dict[str, int | str] = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return record

    def _alive(self, record: dict[str, int | str] | None) -> bool:
        return record is not None and is_running(int(record["pid"]), int(record["ticks"]))

    async def deploy(self, app: str, instance: str, placement: Placement) -> Endpoint:
        """Start the service on ``placement.cluster`` unless the same one already runs there."""
        if placement.address is None:
            raise OrchestratorError(
                f"cluster {placement.cluster!r} has no address to start a local service at",
                permanent=True,
            )
        path = self._record_path(app, instance, placement.cluster)
        record = self._read(path)
        if self._alive(record) and record is not None:
            if record["address"] == placement.address:
                at = placement.model_copy(update={"port": int(record["port"])})
                return Endpoint(app=app, instance=instance, placement=at)
            await asyncio.to_thread(stop, int(record["pid"]), int(record["ticks"]), timeout_s=5)
        try:
            sock = _listen(placement.address, placement.port)
        except OSError as exc:
            raise OrchestratorError(
                f"cannot listen on {placement.cluster}: {exc}", permanent=True
            ) from exc
        with sock:
            port = sock.getsockname()[1]
            argv = [
                self._python, "-m", "subscriber.fakes.edge_app",
                "--app", app, "--instance", instance, "--cluster", placement.cluster,
                "--host", placement.address, "--port", str(port), "--fd", str(sock.fileno()),
                "--warmup-s", str(self._warmup_s),
            ]  # fmt: skip
            if self._ams_url:
                argv += ["--ams-url", self._ams_url]
            try:
                pid = spawn(
                    argv, log_file=path.with_suffix(".log"), cwd=self._dir, pass_fds=[sock.fileno()]
                )
            except OSError as exc:
                raise OrchestratorError(
                    f"cannot start the local service: {exc}", permanent=True
                ) from exc
        record = {"pid": pid, "ticks": start_ticks(pid), "address": placement.address, "port": port}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(path)
        log.info("local.deployed", app=app, instance=instance, cluster=placement.cluster, pid=pid)
        return Endpoint(
            app=app, instance=instance, placement=placement.model_copy(update={"port": port})
        )

    async def readiness(self, endpoint: Endpoint) -> Readiness:
        """READY when this instance's ``/healthz`` answers 200; FAILED when its process is gone."""
        p = endpoint.placement
        if not self._alive(
            self._read(self._record_path(endpoint.app, endpoint.instance, p.cluster))
        ):
            return Readiness.FAILED
        assert self._http is not None, "use LocalOrchestrator as an async context manager"
        try:
            async with self._http.get(f"{endpoint.url}/healthz") as resp:
                ours = (resp.headers.get("X-App"), resp.headers.get("X-Instance")) == (
                    endpoint.app,
                    endpoint.instance,
                )
                return Readiness.READY if resp.status == 200 and ours else Readiness.NOT_READY
        except (aiohttp.ClientError, TimeoutError):
            return Readiness.NOT_READY

    async def remove(self, app: str, instance: str, placement: Placement) -> None:
        """Stop the service on ``placement.cluster`` (SIGTERM, then SIGKILL) and forget it."""
        path = self._record_path(app, instance, placement.cluster)
        record = self._read(path)
        if record is not None:
            await asyncio.to_thread(stop, int(record["pid"]), int(record["ticks"]), timeout_s=5)
            log.info("local.removed", app=app, instance=instance, cluster=placement.cluster)
        path.unlink(missing_ok=True)

    def running(self) -> list[tuple[str, str, str]]:
        """(app, instance, cluster) of every recorded service that is still alive."""
        found = []
        for path in sorted(self._dir.glob("*.json")):
            if self._alive(self._read(path)):
                app, instance, cluster = path.stem.split(".")
                found.append((app, instance, cluster))
        return found

    def remove_all(self) -> None:
        """Stop every recorded service: for the end of a demo or a test."""
        for path in self._dir.glob("*.json"):
            record = self._read(path)
            if record is not None:
                stop(int(record["pid"]), int(record["ticks"]), timeout_s=5)
            path.unlink(missing_ok=True)


def _listen(address: str, port: int) -> socket.socket:
    """A listening socket on ``address``: at ``port`` when it is free there, else at any port."""
    for candidate in (port, 0):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, candidate))
            # Listening now, not in the child: Linux lets two sockets with SO_REUSEADDR bind
            # one port while neither listens, so a bound-only socket would not claim it.
            sock.listen(128)
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE or candidate == 0:
                raise
            continue
        return sock
    raise AssertionError("unreachable")
