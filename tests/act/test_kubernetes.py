"""The Kubernetes orchestrator against two real control planes (etcd, kube-apiserver,
controller-manager, scheduler; kwok as the kubelets)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from lightkube import ApiError, codecs
from lightkube.models.apps_v1 import DeploymentSpec
from lightkube.models.authentication_v1 import TokenRequestSpec
from lightkube.models.core_v1 import Container, PodSpec, PodTemplateSpec
from lightkube.models.meta_v1 import LabelSelector, ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Pod, Service, ServiceAccountToken
from lightkube.types import PatchType

from subscriber.act.capacity import CapacityFeed
from subscriber.act.kubernetes import KubernetesOrchestrator, read_capacity
from subscriber.act.orchestrator import OrchestratorError
from subscriber.act.workload import LABEL_MANAGED_BY, workload_name
from subscriber.decide.engine import PolicyHolder
from subscriber.decide.topology import ClusterReading
from subscriber.relocation import Placement, Readiness
from subscriber.settings import PolicySettings
from subscriber.stack.kubernetes.cluster import KubeCluster
from tests.conftest import KUBE_NODE_ADDRESSES
from tests.support.kube import (
    DOCS,
    UNPULLABLE,
    admin,
    census,
    namespaces,
    orchestrator,
    target,
    write_template,
)
from tests.support.waiting import until

pytestmark = [pytest.mark.kube]

APP = "web"


@pytest.fixture
async def kube(
    kube_clusters: dict[str, KubeCluster], kube_ns: str, tmp_path: Path
) -> AsyncIterator[KubernetesOrchestrator]:
    """The orchestrator for clusters a and b, deploying the ``web`` template into ``kube_ns``."""
    templates = {APP: write_template(tmp_path / "web.yaml")}
    async with orchestrator(kube_clusters, kube_ns, templates) as orch:
        yield orch


def placement(cluster: str) -> Placement:
    """Where the policy would send the app: the cluster (the address is the orchestrator's)."""
    return Placement(cluster=cluster, address="192.0.2.1", port=8080)


async def ready(orch: KubernetesOrchestrator, endpoint: object) -> bool:
    """Whether the orchestrator reports the endpoint READY."""
    return await orch.readiness(endpoint) is Readiness.READY  # type: ignore[arg-type]


async def test_deploy_reports_node_port_endpoint_and_turns_ready(
    kube: KubernetesOrchestrator, kube_clusters: dict[str, KubeCluster], kube_ns: str, unique: str
) -> None:
    """Deploy applies a Deployment and a NodePort Service that the real controllers roll out."""
    instance = f"i{unique}"
    endpoint = await kube.deploy(APP, instance, placement("b"))
    assert endpoint.placement.cluster == "b"
    assert endpoint.placement.address == KUBE_NODE_ADDRESSES["b"]
    assert 30000 <= endpoint.placement.port <= 32767
    await until(lambda: ready(kube, endpoint), timeout_s=30)
    client = admin(kube_clusters["b"], kube_ns)
    try:
        found = await census(client, APP, instance)
        deployment = await client.get(Deployment, workload_name(APP, instance))
        service = await client.get(Service, workload_name(APP, instance))
    finally:
        await client.close()
    assert found["Deployment"] == found["Service"] == [f"{APP}-{instance}"]
    assert len(found["ReplicaSet"]) == 1
    assert len(found["Pod"]) == 2
    assert deployment.metadata is not None
    assert deployment.metadata.labels is not None
    assert deployment.metadata.labels[LABEL_MANAGED_BY] == "subscriber"
    container = deployment.spec.template.spec.containers[0]  # type: ignore[union-attr]
    assert container.args == ["--site=b", f"--instance={instance}"]
    assert service.spec is not None
    assert service.spec.type == "NodePort"
    assert service.spec.ports[0].nodePort == endpoint.placement.port  # type: ignore[index]
    on_a = admin(kube_clusters["a"], kube_ns)
    try:
        assert not any((await census(on_a, APP, instance)).values())
    finally:
        await on_a.close()


async def test_retried_deploy_creates_no_duplicates(
    kube: KubernetesOrchestrator, kube_clusters: dict[str, KubeCluster], kube_ns: str, unique: str
) -> None:
    """The same deploy three times (a retried activity) leaves one of everything, unchanged."""
    instance = f"i{unique}"
    first = await kube.deploy(APP, instance, placement("a"))
    await until(lambda: ready(kube, first), timeout_s=30)
    client = admin(kube_clusters["a"], kube_ns)
    try:
        before = await client.get(Deployment, workload_name(APP, instance))
        for _ in range(2):
            assert await kube.deploy(APP, instance, placement("a")) == first
        after = await client.get(Deployment, workload_name(APP, instance))
        found = await census(client, APP, instance)
    finally:
        await client.close()
    assert before.metadata
    assert after.metadata
    assert after.metadata.generation == before.metadata.generation == 1
    assert after.metadata.resourceVersion == before.metadata.resourceVersion
    assert len(found["ReplicaSet"]) == 1
    assert len(found["Pod"]) == 2
    assert len(found["Service"]) == 1


async def test_unpullable_image_never_turns_ready_and_fails_at_the_deadline(
    kube_clusters: dict[str, KubeCluster], kube_ns: str, unique: str, tmp_path: Path
) -> None:
    """Pods that cannot pull their image stay not Ready; past the progress deadline: FAILED."""
    templates = {
        APP: write_template(tmp_path / "web.yaml", image=UNPULLABLE, progress_deadline_s=2)
    }
    instance = f"i{unique}"
    async with orchestrator(kube_clusters, kube_ns, templates) as kube:
        endpoint = await kube.deploy(APP, instance, placement("b"))
        assert await kube.readiness(endpoint) is Readiness.NOT_READY
        client = admin(kube_clusters["b"], kube_ns)
        try:

            async def backing_off() -> bool:
                pods = [
                    p
                    async for p in client.list(Pod, labels={"app.kubernetes.io/instance": instance})
                ]
                reasons = [
                    s.state.waiting.reason
                    for p in pods
                    for s in (p.status.containerStatuses or [])
                    if p.status  # type: ignore[union-attr]
                    if s.state and s.state.waiting
                ]
                return len(reasons) == 2 and set(reasons) == {"ImagePullBackOff"}

            await until(backing_off, timeout_s=30)
        finally:
            await client.close()
        await until(lambda: _is(kube, endpoint, Readiness.FAILED), timeout_s=30)


async def _is(kube: KubernetesOrchestrator, endpoint: object, state: Readiness) -> bool:
    return await kube.readiness(endpoint) is state  # type: ignore[arg-type]


async def test_remove_deletes_only_what_carries_our_labels(
    kube: KubernetesOrchestrator, kube_clusters: dict[str, KubeCluster], kube_ns: str, unique: str
) -> None:
    """Remove takes this instance's objects and leaves another instance and foreign objects."""
    mine, other = f"i{unique}", f"j{unique}"
    await kube.deploy(APP, mine, placement("a"))
    await kube.deploy(APP, other, placement("a"))
    client = admin(kube_clusters["a"], kube_ns)
    try:
        # Someone else's Deployment carrying our app and instance labels, but not managed by us.
        await client.create(_foreign(f"hand-made-{unique}", {"app.kubernetes.io/instance": mine}))
        await kube.remove(APP, mine, placement("a"))
        await kube.remove(APP, mine, placement("a"))  # already gone: still fine
        gone = await census(client, APP, mine)
        kept = await census(client, APP, other)
        foreign = await client.get(Deployment, f"hand-made-{unique}")
    finally:
        await client.close()
    assert gone["Deployment"] == [f"hand-made-{unique}"]  # carries our labels, not managed-by
    assert gone["Service"] == []
    assert kept["Deployment"] == kept["Service"] == [f"{APP}-{other}"]
    assert foreign.metadata is not None
    assert foreign.metadata.deletionTimestamp is None


def _foreign(name: str, labels: dict[str, str]) -> Deployment:
    pod_labels = {"run": name}
    return Deployment(
        metadata=ObjectMeta(name=name, labels={"app.kubernetes.io/name": APP, **labels}),
        spec=DeploymentSpec(
            selector=LabelSelector(matchLabels=pod_labels),
            template=PodTemplateSpec(
                metadata=ObjectMeta(labels=pod_labels),
                spec=PodSpec(containers=[Container(name="c", image="registry.example.org/x:1")]),
            ),
        ),
    )


async def test_deploy_refuses_an_object_of_our_name_that_we_did_not_create(
    kube: KubernetesOrchestrator, kube_clusters: dict[str, KubeCluster], kube_ns: str, unique: str
) -> None:
    """A hand-made Deployment with the name we would use is neither changed nor deleted."""
    instance = f"i{unique}"
    name = workload_name(APP, instance)
    client = admin(kube_clusters["b"], kube_ns)
    try:
        await client.create(_foreign(name, {}))
        with pytest.raises(OrchestratorError, match="without our ownership labels") as err:
            await kube.deploy(APP, instance, placement("b"))
        assert err.value.permanent
        await kube.remove(APP, instance, placement("b"))
        survivor = await client.get(Deployment, name)
        services = [s async for s in client.list(Service)]
    finally:
        await client.close()
    assert survivor.metadata is not None
    assert survivor.metadata.deletionTimestamp is None
    assert survivor.metadata.generation == 1
    assert services == []
    endpoint_b = await kube.readiness(_endpoint_of(instance, "b"))
    assert endpoint_b is Readiness.FAILED


def _endpoint_of(instance: str, cluster: str) -> object:
    from subscriber.relocation import Endpoint

    return Endpoint(app=APP, instance=instance, placement=placement(cluster))


async def test_api_outage_is_transient_and_readiness_waits_through_it(
    kube: KubernetesOrchestrator, kube_clusters: dict[str, KubeCluster], unique: str
) -> None:
    """While B's API server is down: deploy fails retryably, readiness says NOT_READY."""
    instance = f"i{unique}"
    endpoint = await kube.deploy(APP, instance, placement("b"))
    b = kube_clusters["b"]
    b.stop_apiserver(hard=True)
    try:
        assert await kube.readiness(endpoint) is Readiness.NOT_READY
        with pytest.raises(OrchestratorError, match="API unreachable") as err:
            await kube.deploy(APP, instance, placement("b"))
        assert not err.value.permanent
        assert "127.0.0.1" not in str(err.value)
        with pytest.raises(OrchestratorError) as err:
            await kube.remove(APP, instance, placement("b"))
        assert not err.value.permanent
    finally:
        await b.start_apiserver()
    await until(lambda: ready(kube, endpoint), timeout_s=30)


async def test_load_balancer_endpoint_is_the_address_the_controller_gives(
    kube_clusters: dict[str, KubeCluster], kube_ns: str, unique: str, tmp_path: Path
) -> None:
    """In load_balancer mode deploy waits for the Service's ingress address and reports it."""
    templates = {APP: write_template(tmp_path / "web.yaml")}
    instance = f"i{unique}"
    base = tmp_path
    kube = KubernetesOrchestrator(
        targets={"b": target(kube_clusters["b"], kube_ns, base, endpoint="load_balancer")},
        templates=templates,
        poll_s=0.05,
        endpoint_timeout_s=20,
    )
    client = admin(kube_clusters["b"], kube_ns)

    async def cloud_controller() -> None:
        # What a cloud's service controller does once its load balancer is up (none runs here).
        name = workload_name(APP, instance)
        while True:
            try:
                await client.get(Service, name)
                break
            except ApiError:
                await asyncio.sleep(0.05)
        await client.patch(
            Service.Status,
            name,
            {"status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.7"}]}}},
            patch_type=PatchType.MERGE,
        )

    try:
        async with kube:
            controller = asyncio.create_task(cloud_controller())
            endpoint = await kube.deploy(APP, instance, placement("b"))
            await controller
    finally:
        await client.close()
    assert (endpoint.placement.address, endpoint.placement.port) == ("198.51.100.7", 8080)


async def service_account_token(cluster: KubeCluster, kube_ns: str, tmp_path: Path) -> Path:
    """Apply docs/kubernetes/rbac.yaml in ``kube_ns``; return a file holding the account's token."""
    text = (DOCS / "rbac.yaml").read_text().replace("edge-apps", kube_ns)
    text = text.replace("name: subscriber-nodes", f"name: subscriber-nodes-{kube_ns}")
    client = admin(cluster, kube_ns)
    try:
        for obj in codecs.load_all_yaml(text):
            await client.apply(obj, field_manager="admin")  # type: ignore[call-overload]
        token = await client.create(
            ServiceAccountToken(
                metadata=ObjectMeta(), spec=TokenRequestSpec(audiences=[], expirationSeconds=3600)
            ),
            "subscriber",
            namespace=kube_ns,
        )
    finally:
        await client.close()
    assert token.status is not None
    path = tmp_path / f"{cluster.name}.token"
    path.write_text(token.status.token)
    return path


async def test_least_privilege_service_account_can_move_and_nothing_more(
    kube_clusters: dict[str, KubeCluster], kube_ns: str, unique: str, tmp_path: Path
) -> None:
    """With the documented Role (and the node reader), deploy, readiness and remove work; in a
    namespace it was not granted, the API refuses and the error is permanent."""
    b = kube_clusters["b"]
    assert b.access is not None
    token = await service_account_token(b, kube_ns, tmp_path)
    templates = {APP: write_template(tmp_path / "web.yaml")}

    def as_account(namespace: str) -> KubernetesOrchestrator:
        return KubernetesOrchestrator(
            targets={
                "b": target(
                    b,
                    namespace,
                    tmp_path,
                    kubeconfig=None,
                    server=b.access.server,  # type: ignore[union-attr]
                    token_file=token.name,
                    ca_file=str(b.access.ca_file),  # type: ignore[union-attr]
                )
            },
            templates=templates,
            poll_s=0.05,
        )

    instance = f"i{unique}"
    async with as_account(kube_ns) as kube:
        endpoint = await kube.deploy(APP, instance, placement("b"))
        assert endpoint.placement.address == KUBE_NODE_ADDRESSES["b"]
        await until(lambda: ready(kube, endpoint), timeout_s=30)
        await kube.remove(APP, instance, placement("b"))
        assert await kube.readiness(endpoint) is Readiness.FAILED
    async with namespaces({"b": b}, f"u-{unique}") as other, as_account(other) as kube:
        with pytest.raises(OrchestratorError, match="403") as err:
            await kube.deploy(APP, instance, placement("b"))
        assert err.value.permanent


async def test_capacity_is_read_from_the_cluster(
    kube: KubernetesOrchestrator, kube_clusters: dict[str, KubeCluster], kube_ns: str, unique: str
) -> None:
    """Allocatable of the Ready node, and what our pods request there (2 x 500m / 512Mi)."""
    endpoint = await kube.deploy(APP, f"i{unique}", placement("b"))
    await until(lambda: ready(kube, endpoint), timeout_s=30)
    client = admin(kube_clusters["b"], kube_ns)
    try:
        reading = await read_capacity(client, namespace=kube_ns)
    finally:
        await client.close()
    assert reading == ClusterReading(
        cpu=8, memory_mib=16384, cpu_requested=1.0, memory_requested_mib=1024, apps=1
    )


async def test_capacity_feed_hands_readings_to_the_policy(
    kube_clusters: dict[str, KubeCluster], kube_ns: str, tmp_path: Path
) -> None:
    """With capacity.from_clusters the running topology carries the clusters' own figures; a
    cluster whose API is down is left out of the round and keeps the topology's."""
    a, b = kube_clusters["a"], kube_clusters["b"]
    assert a.access is not None
    assert b.access is not None
    topology = yaml.safe_load((DOCS / "topology.yaml").read_text())
    for entry, cluster in zip(topology["clusters"], (a, b), strict=True):
        entry["kubernetes"] = {"kubeconfig": str(cluster.access.kubeconfig), "namespace": kube_ns}  # type: ignore[union-attr]
    (tmp_path / "topology.yaml").write_text(yaml.safe_dump(topology))
    (tmp_path / "web.yaml").write_text((DOCS / "web.yaml").read_text())
    (tmp_path / "policy.yaml").write_text("capacity: {from_clusters: true}\n")
    settings = PolicySettings(
        topology_file=tmp_path / "topology.yaml", policy_file=tmp_path / "policy.yaml"
    )
    async with PolicyHolder(settings) as holder:
        feed = CapacityFeed(
            holder, topology_file=tmp_path / "topology.yaml", interval_s=3600, timeout_s=2
        )
        async with feed:
            readings = await feed.refresh()
            assert sorted(readings) == ["edge-a", "edge-b"]
            assert holder.bundle.topology.clusters["edge-b"].cpu == 8
            b.stop_apiserver(hard=True)
            try:
                readings = await feed.refresh()
            finally:
                await b.start_apiserver()
            assert sorted(readings) == ["edge-a"]
            assert holder.bundle.topology.clusters["edge-b"].cpu == 16


async def test_longest_ids_make_valid_objects_on_a_real_api_server(
    kube: KubernetesOrchestrator, kube_clusters: dict[str, KubeCluster], kube_ns: str
) -> None:
    """A 63-character instance (the longest label) still deploys, turns Ready and is removed."""
    instance = "i" * 63
    endpoint = await kube.deploy(APP, instance, placement("a"))
    await until(lambda: ready(kube, endpoint), timeout_s=30)
    await kube.remove(APP, instance, placement("a"))
    client = admin(kube_clusters["a"], kube_ns)
    try:
        left = await census(client, APP, instance)
    finally:
        await client.close()
    assert left["Deployment"] == left["Service"] == []
