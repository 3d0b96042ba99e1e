"""Which orchestrator deploys on which cluster: the topology's Kubernetes clusters, else the
default one (``relocation.orchestrator``)."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import yaml

from subscriber.act.kubernetes import KubernetesOrchestrator
from subscriber.act.routing import RoutedOrchestrator
from subscriber.app.worker import open_orchestrator
from subscriber.errors import PolicyUnavailable
from subscriber.fakes.local_orchestrator import LocalOrchestrator
from subscriber.settings import PolicySettings, RelocationSettings, Settings
from tests.support.kube import worked_example


def settings_for(topology: Path | None, tmp_path: Path) -> Settings:
    """Settings with this topology and a local orchestrator in ``tmp_path``."""
    return Settings(
        policy=PolicySettings(topology_file=topology),
        relocation=RelocationSettings(local_dir=tmp_path / "clusters"),
    )


async def test_kubernetes_clusters_of_the_topology_go_to_their_api(tmp_path: Path) -> None:
    """edge-a and edge-b have kubernetes sections; any other cluster goes to the local one."""
    topology = worked_example(tmp_path)
    doc = yaml.safe_load(topology.read_text())
    doc["clusters"].append(
        {"id": "plain", "site": "s", "zone": "zone-north",
         "capacity": {"cpu": 1, "memory_mib": 1, "app_slots": 1}, "address": "127.0.10.9"}
    )  # fmt: skip
    topology.write_text(yaml.safe_dump(doc))
    async with AsyncExitStack() as stack:
        routed = await open_orchestrator(settings_for(topology, tmp_path), stack)
        assert isinstance(routed, RoutedOrchestrator)
        assert isinstance(routed.for_cluster("edge-a"), KubernetesOrchestrator)
        assert routed.for_cluster("edge-a") is routed.for_cluster("edge-b")
        assert isinstance(routed.for_cluster("plain"), LocalOrchestrator)


async def test_without_kubernetes_clusters_the_default_serves_all(tmp_path: Path) -> None:
    """No topology, or one without kubernetes sections: the default orchestrator, unwrapped."""
    async with AsyncExitStack() as stack:
        orch = await open_orchestrator(settings_for(None, tmp_path), stack)
        assert isinstance(orch, LocalOrchestrator)


async def test_a_worker_with_unusable_credentials_does_not_start(tmp_path: Path) -> None:
    """A token file that is gone stops the worker at start with the cluster's name."""
    topology = worked_example(tmp_path)
    (tmp_path / "edge-b.token").unlink()
    async with AsyncExitStack() as stack:
        with pytest.raises(Exception, match="cluster 'edge-b': cannot use its Kubernetes"):
            await open_orchestrator(settings_for(topology, tmp_path), stack)


async def test_an_invalid_topology_stops_the_worker(tmp_path: Path) -> None:
    """The worker refuses a topology that policy check would refuse."""
    topology = tmp_path / "t.yaml"
    topology.write_text("plmn: 1\n")
    async with AsyncExitStack() as stack:
        with pytest.raises(PolicyUnavailable):
            await open_orchestrator(settings_for(topology, tmp_path), stack)
