"""Helpers for the tests on the two real Kubernetes control planes (fixture ``kube_clusters``)."""

from __future__ import annotations

import asyncio
import functools
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import yaml
from lightkube import ApiError, AsyncClient
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment, ReplicaSet
from lightkube.resources.core_v1 import Namespace, Pod, Service, ServiceAccount

from subscriber.act.kubernetes import KubernetesOrchestrator, KubeTarget
from subscriber.act.workload import selector
from subscriber.decide.topology import KubernetesDoc
from subscriber.stack.kubernetes.cluster import KubeCluster, make_pki

DOCS = Path(__file__).resolve().parents[2] / "docs" / "kubernetes"
TEMPLATE = (DOCS / "web.yaml").read_text()
"""The worked example's template (docs/relocation.md), so the example is what the tests run."""
PULLABLE = "registry.example.org/edge/ar-guide:1.4.2"
UNPULLABLE = "registry.invalid/edge/web:1"
"""kwok-stages.yaml gives pods with images from a ``.invalid`` registry ImagePullBackOff."""


def write_template(
    path: Path, *, image: str = PULLABLE, progress_deadline_s: int = 120, replicas: int = 2
) -> Path:
    """The app's template with ``image``; returns ``path``."""
    text = TEMPLATE.replace(PULLABLE, image)
    text = text.replace("Seconds: 120", f"Seconds: {progress_deadline_s}")
    path.write_text(text.replace("replicas: 2", f"replicas: {replicas}"))
    return path


def target(cluster: KubeCluster, namespace: str, base: Path, **doc: object) -> KubeTarget:
    """The cluster as a topology entry would name it: its admin kubeconfig and ``namespace``."""
    assert cluster.access is not None
    return KubeTarget(
        cluster.name,
        KubernetesDoc.model_validate(
            {"kubeconfig": str(cluster.access.kubeconfig), "namespace": namespace, **doc}
        ),
        base,
    )


def orchestrator(
    clusters: dict[str, KubeCluster], namespace: str, templates: dict[str, Path], **kw: object
) -> KubernetesOrchestrator:
    """An orchestrator for both clusters, deploying into ``namespace``."""
    base = next(iter(templates.values())).parent
    return KubernetesOrchestrator(
        targets={name: target(c, namespace, base) for name, c in clusters.items()},
        templates=templates,
        poll_s=0.05,
        **kw,  # type: ignore[arg-type]
    )


def admin(cluster: KubeCluster, namespace: str) -> AsyncClient:
    """The cluster administrator's client (close it)."""
    assert cluster.access is not None
    return cluster.access.client(namespace=namespace)


@asynccontextmanager
async def namespaces(clusters: dict[str, KubeCluster], name: str) -> AsyncIterator[str]:
    """``name`` created on every cluster while the block runs, with its default ServiceAccount.

    Pods cannot be created before the controller-manager has made that account; a ReplicaSet
    that tries anyway backs off for longer and longer, so tests wait for it, as an admin would.
    """
    for cluster in clusters.values():
        client = admin(cluster, name)
        try:
            await client.create(Namespace(metadata=ObjectMeta(name=name)))
            async with asyncio.timeout(30):
                while True:
                    try:
                        await client.get(ServiceAccount, "default", namespace=name)
                        break
                    except ApiError:
                        await asyncio.sleep(0.05)
        finally:
            await client.close()
    try:
        yield name
    finally:
        for cluster in clusters.values():
            client = admin(cluster, name)
            try:
                await client.delete(Namespace, name)
            except ApiError:
                pass  # the API of a cluster a test took down may not be back
            finally:
                await client.close()


async def census(client: AsyncClient, app: str, instance: str) -> dict[str, list[str]]:
    """Names of this instance's Deployments, ReplicaSets, Pods and Services (by labels)."""
    labels = selector(app, instance)
    found: dict[str, list[str]] = {}
    for kind in (Deployment, ReplicaSet, Pod, Service):
        found[kind.__name__] = sorted(
            [
                o.metadata.name
                async for o in client.list(kind, labels=labels)  # type: ignore[attr-defined]
                if o.metadata and o.metadata.name and not o.metadata.deletionTimestamp
            ]
        )
    return found


@functools.cache
def ca_pem() -> bytes:
    """A CA certificate (made once: RSA keys take a while)."""
    with tempfile.TemporaryDirectory() as pki:
        make_pki(Path(pki))
        return (Path(pki) / "ca.crt").read_bytes()


def worked_example(tmp_path: Path) -> Path:
    """docs/kubernetes/ copied with the credential files it names; returns the topology."""
    docs = DOCS
    for name in ("topology.yaml", "web.yaml"):
        (tmp_path / name).write_bytes((docs / name).read_bytes())
    for name in ("edge-a-ca.crt", "edge-b-ca.crt"):
        (tmp_path / name).write_bytes(ca_pem())
    (tmp_path / "edge-a.kubeconfig").write_text(
        yaml.safe_dump(
            {
                "clusters": [
                    {
                        "name": "a",
                        "cluster": {
                            "server": "https://edge-a.example.net:6443",
                            "certificate-authority": "edge-a-ca.crt",
                        },
                    }
                ],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [
                    {"name": "subscriber@edge-a", "context": {"cluster": "a", "user": "u"}}
                ],
            }
        )
    )
    (tmp_path / "edge-b.token").write_text("t\n")
    return tmp_path / "topology.yaml"
