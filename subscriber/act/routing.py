"""One orchestrator per cluster: the topology says which clusters are Kubernetes targets, and
every other cluster goes to the default orchestrator (``relocation.orchestrator``).

A move between a Kubernetes cluster and a local or EMCO one works like any other: deploy on the
target through its orchestrator, remove from the source through its own.
"""

from __future__ import annotations

from collections.abc import Mapping

from subscriber.act.orchestrator import Orchestrator
from subscriber.relocation import Endpoint, Placement, Readiness


class RoutedOrchestrator:
    """Sends each call to the orchestrator of the placement's cluster.

    Args:
        default: for clusters not in ``by_cluster``.
        by_cluster: cluster id -> its orchestrator.
    """

    def __init__(self, default: Orchestrator, by_cluster: Mapping[str, Orchestrator]) -> None:
        self._default = default
        self._by_cluster = dict(by_cluster)

    def for_cluster(self, cluster: str) -> Orchestrator:
        """The orchestrator that deploys on ``cluster``."""
        return self._by_cluster.get(cluster, self._default)

    async def deploy(self, app: str, instance: str, placement: Placement) -> Endpoint:
        """Deploy through the target cluster's orchestrator."""
        return await self.for_cluster(placement.cluster).deploy(app, instance, placement)

    async def readiness(self, endpoint: Endpoint) -> Readiness:
        """Readiness from the endpoint's cluster's orchestrator."""
        return await self.for_cluster(endpoint.placement.cluster).readiness(endpoint)

    async def remove(self, app: str, instance: str, placement: Placement) -> None:
        """Remove through the cluster's orchestrator."""
        await self.for_cluster(placement.cluster).remove(app, instance, placement)
