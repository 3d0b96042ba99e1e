"""The Kubernetes control planes the tests run on: binaries, a started cluster, a clean stop."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import httpx
import pytest
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import Node

from subscriber.settings import default_cache_dir
from subscriber.stack.kubernetes.build import BINARIES, binaries_dir, is_built
from subscriber.stack.kubernetes.cluster import KubeCluster
from subscriber.stack.procs import is_running
from tests.conftest import KUBE_NODE_ADDRESSES

pytestmark = [pytest.mark.kube]


async def test_clusters_report_the_pinned_version_and_a_ready_node(
    kube_clusters: dict[str, KubeCluster],
) -> None:
    """Each apiserver says v1.36.3; its kwok node is Ready with its address, resources and a
    Lease that kwok renews (without one the node turns NotReady after about 50 s)."""
    for name, cluster in kube_clusters.items():
        access = cluster.access
        assert access is not None
        async with httpx.AsyncClient(
            verify=ssl.create_default_context(cafile=str(access.ca_file)),
            headers={"Authorization": f"Bearer {access.token}"},
        ) as http:
            version = (await http.get(f"{access.server}/version")).json()
        assert version["gitVersion"] == "v1.36.3"
        client = access.client()
        try:
            node = await client.get(Node, f"{name}-node")
            lease = await client.get(Lease, f"{name}-node", namespace="kube-node-lease")
        finally:
            await client.close()
        assert node.status is not None
        assert [(a.type, a.address) for a in node.status.addresses or ()] == [
            ("InternalIP", KUBE_NODE_ADDRESSES[name]),
            ("Hostname", f"{name}-node"),
        ]
        assert node.status.allocatable == {"cpu": "8", "memory": "16Gi", "pods": "110"}
        assert lease.spec is not None
        assert lease.spec.renewTime is not None


def test_binaries_are_cached_by_version() -> None:
    """The cache directory names every pinned version; all five binaries are there."""
    bin_dir = binaries_dir(default_cache_dir())
    assert bin_dir.parent.name == "k8s-v1.36.3-kwok-v0.8.0-etcd-v3.6.8"
    assert is_built(default_cache_dir())
    assert sorted(p.name for p in bin_dir.iterdir()) == sorted(BINARIES)


async def test_stop_leaves_no_process(
    kube_clusters: dict[str, KubeCluster], tmp_path: Path
) -> None:
    """A third cluster starts beside A and B on its own ports; stop ends all five processes."""
    cluster = KubeCluster(
        "c",
        bin_dir=binaries_dir(default_cache_dir()),
        work_dir=tmp_path / "c",
        node_address="127.0.43.1",
    )
    try:
        await cluster.start()
        procs = cluster.processes
        assert sorted(procs) == sorted(
            ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"]
        )
    finally:
        await asyncio.to_thread(cluster.stop)
    assert not any(is_running(pid, ticks) for pid, ticks in procs.values())
