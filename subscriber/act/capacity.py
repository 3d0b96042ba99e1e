"""Capacity from the clusters themselves: a loop in the consumer that reads every Kubernetes
cluster of the running topology (:func:`subscriber.act.kubernetes.read_capacity`) and hands the
readings to the policy holder, which uses them while the policy sets ``capacity.from_clusters``.

A cluster whose API cannot be read is left out of that round, so the policy falls back to the
topology's figures for it rather than trusting an old reading.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from types import TracebackType

import structlog
from lightkube import AsyncClient

from subscriber.act.kubernetes import KubeTarget, api_failure, read_capacity, targets_of
from subscriber.act.orchestrator import OrchestratorError
from subscriber.decide.engine import PolicyHolder
from subscriber.decide.topology import ClusterReading

log = structlog.get_logger()


class CapacityFeed:
    """Refreshes the holder's cluster readings every ``interval_s`` while entered.

    Args:
        holder: the running policy (its topology names the clusters).
        topology_file: where the topology lives (relative credential paths start there).
        interval_s: time between two rounds.
        timeout_s: per API request.
    """

    def __init__(
        self, holder: PolicyHolder, *, topology_file: Path, interval_s: float, timeout_s: float
    ) -> None:
        self._holder = holder
        self._file = topology_file
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._clients: dict[str, tuple[KubeTarget, AsyncClient]] = {}
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> CapacityFeed:
        self._task = asyncio.create_task(self._loop(), name="capacity-feed")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for _, client in self._clients.values():
            await client.close()
        self._clients.clear()

    async def _loop(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # a bug here must not stop the refreshes, nor the consumer
                log.exception("capacity.refresh_failed")
            await asyncio.sleep(self._interval_s)

    async def refresh(self) -> dict[str, ClusterReading]:
        """One round: read every Kubernetes cluster, if the policy asks for it."""
        bundle = self._holder.bundle
        if not bundle.rules.doc.capacity.from_clusters:
            return {}
        readings: dict[str, ClusterReading] = {}
        for cluster, target in targets_of(bundle.topology.doc, self._file).items():
            try:
                client = await self._client(target)
                readings[cluster] = await read_capacity(client, namespace=target.doc.namespace)
            except OrchestratorError as exc:
                log.warning("capacity.unread", cluster=cluster, error=str(exc))
            except Exception as exc:
                failure = api_failure(cluster, "read capacity", exc)
                log.warning("capacity.unread", cluster=cluster, error=str(failure))
        self._holder.update_capacity(readings)
        return readings

    async def _client(self, target: KubeTarget) -> AsyncClient:
        """One client per cluster, made anew when the topology changes its access."""
        known = self._clients.get(target.cluster)
        if known is not None and known[0] == target:
            return known[1]
        if known is not None:
            await known[1].close()
        client = target.client(timeout_s=self._timeout_s)
        self._clients[target.cluster] = (target, client)
        return client
