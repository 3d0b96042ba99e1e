"""Relocations between two real Kubernetes control planes, through the real relocation workflow
(Temporal dev server) and PowerDNS: deploy on B, wait Ready from the API, steer DNS, delete from A.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client

from subscriber.act.dns import PowerDns, record_name
from subscriber.act.kubernetes import KubernetesOrchestrator
from subscriber.act.orchestrator import OrchestratorError
from subscriber.act.routing import RoutedOrchestrator
from subscriber.act.signals import request_relocation
from subscriber.fakes.local_orchestrator import LocalOrchestrator
from subscriber.relocation import Endpoint, Placement, Readiness, RelocationRequest, Status, Step
from subscriber.settings import Settings
from subscriber.stack.kubernetes.cluster import KubeCluster
from tests.conftest import KUBE_NODE_ADDRESSES
from tests.support.kube import UNPULLABLE, admin, census, orchestrator, write_template
from tests.support.relocation import DNS_MOVE_STEPS, make_request, running_worker, wait_history
from tests.support.waiting import until

pytestmark = [pytest.mark.kube, pytest.mark.stack]

APP = "shop"


@pytest.fixture
def template(tmp_path: Path) -> Path:
    """The app's workload template (the worked example's), rewritable by a test."""
    return write_template(tmp_path / "shop.yaml")


@pytest.fixture
async def kube(
    kube_clusters: dict[str, KubeCluster], kube_ns: str, template: Path
) -> AsyncIterator[KubernetesOrchestrator]:
    """The Kubernetes orchestrator for clusters a and b."""
    async with orchestrator(kube_clusters, kube_ns, {APP: template}) as orch:
        yield orch


def policy_target(cluster: str) -> Placement:
    """The target as the policy names it: a Kubernetes cluster with no topology address (its
    API tells the address at deploy; the worked example of docs/relocation.md has none)."""
    return Placement(cluster=cluster, address=None, port=8080)


async def serve_from_a(
    kube: KubernetesOrchestrator, pdns: PowerDns, unique: str
) -> tuple[RelocationRequest, Endpoint, str]:
    """The app instance running Ready on A with its DNS record there; a request to move it to B."""
    instance = f"i{unique}"
    endpoint = await kube.deploy(APP, instance, policy_target("a"))
    await until(lambda: _state(kube, endpoint, Readiness.READY), timeout_s=30)
    name = record_name(APP, instance, pdns.zone)
    await pdns.replace_a(name, [endpoint.placement.address])
    request = make_request(unique, endpoint.placement, policy_target("b"), app=APP)
    return request, endpoint, name


async def _state(kube: object, endpoint: Endpoint, state: Readiness) -> bool:
    return await kube.readiness(endpoint) is state  # type: ignore[attr-defined]


async def test_move_creates_on_b_waits_ready_steers_dns_and_deletes_from_a(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    local: LocalOrchestrator,
    kube: KubernetesOrchestrator,
    kube_clusters: dict[str, KubeCluster],
    kube_ns: str,
    unique: str,
) -> None:
    """A completed move: B's Deployment Ready, DNS on B's node, A's objects gone."""
    request, _, name = await serve_from_a(kube, pdns, unique)
    routed = RoutedOrchestrator(local, {"a": kube, "b": kube})
    async with running_worker(client, act_settings, routed, pdns):
        await request_relocation(client, act_settings.temporal.task_queue, request)
        history = await wait_history(client, request, 1)
    outcome = history[0]
    assert outcome.status is Status.COMPLETED, outcome
    assert list(outcome.step_ms) == DNS_MOVE_STEPS
    print(f"\nKubernetes move A->B, steps (ms, workflow time): {outcome.step_ms}")
    assert await pdns.query_a(name) == [KUBE_NODE_ADDRESSES["b"]]
    on_a, on_b = admin(kube_clusters["a"], kube_ns), admin(kube_clusters["b"], kube_ns)
    try:
        found_b = await census(on_b, APP, request.instance)
        await until(lambda: _nothing(on_a, request.instance), timeout_s=30)
    finally:
        await on_a.close()
        await on_b.close()
    assert found_b["Deployment"] == [f"{APP}-{request.instance}"]
    assert len(found_b["Pod"]) == 2
    assert local.running() == []


async def _nothing(client: object, instance: str) -> bool:
    found = await census(client, APP, instance)  # type: ignore[arg-type]
    return not any(found.values())


async def test_never_ready_fails_the_move_and_leaves_a_serving_and_b_clean(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    kube: KubernetesOrchestrator,
    kube_clusters: dict[str, KubeCluster],
    kube_ns: str,
    template: Path,
    unique: str,
) -> None:
    """A new image that cannot be pulled: readiness fails, B is cleaned, A and DNS untouched."""
    request, endpoint_a, name = await serve_from_a(kube, pdns, unique)
    on_a = admin(kube_clusters["a"], kube_ns)
    before = await census(on_a, APP, request.instance)
    write_template(template, image=UNPULLABLE, progress_deadline_s=2)
    on_b = admin(kube_clusters["b"], kube_ns)
    try:
        async with running_worker(client, act_settings, kube, pdns):
            await request_relocation(client, act_settings.temporal.task_queue, request)
            history = await wait_history(client, request, 1)
        outcome = history[0]
        assert outcome.status is Status.FAILED, outcome
        assert outcome.failed_step is Step.READINESS
        assert outcome.error is not None
        assert outcome.error.startswith("ReadinessFailed")
        assert outcome.compensated == ("target_removed",)
        await until(lambda: _nothing(on_b, request.instance), timeout_s=30)
        assert await census(on_a, APP, request.instance) == before
        assert await kube.readiness(endpoint_a) is Readiness.READY
        assert await pdns.query_a(name) == [endpoint_a.placement.address]
    finally:
        await on_a.close()
        await on_b.close()


class PassThrough:
    """Hands every call to the real orchestrator; subclasses watch or disturb ``deploy``."""

    def __init__(self, inner: KubernetesOrchestrator, cluster: str) -> None:
        self.inner = inner
        self.cluster = cluster

    async def deploy(self, app: str, instance: str, placement: Placement) -> Endpoint:
        """The inner deploy."""
        return await self.inner.deploy(app, instance, placement)

    async def readiness(self, endpoint: Endpoint) -> Readiness:
        """The inner readiness."""
        return await self.inner.readiness(endpoint)

    async def remove(self, app: str, instance: str, placement: Placement) -> None:
        """The inner remove."""
        await self.inner.remove(app, instance, placement)


class Retried(PassThrough):
    """Deploys for real, then loses the first answer on ``cluster``: the activity is retried."""

    deploys = 0

    async def deploy(self, app: str, instance: str, placement: Placement) -> Endpoint:
        """The real deploy; the first one on the cluster then fails as a lost reply would."""
        endpoint = await self.inner.deploy(app, instance, placement)
        if placement.cluster == self.cluster:
            self.deploys += 1
            if self.deploys == 1:
                raise OrchestratorError("reply lost after the apply", permanent=False)
        return endpoint


async def test_retried_deploy_activity_creates_no_duplicates(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    kube: KubernetesOrchestrator,
    kube_clusters: dict[str, KubeCluster],
    kube_ns: str,
    unique: str,
) -> None:
    """A deploy retried after its apply went through leaves one Deployment, one rollout."""
    request, _, _ = await serve_from_a(kube, pdns, unique)
    retried = Retried(kube, "b")
    async with running_worker(client, act_settings, retried, pdns):
        await request_relocation(client, act_settings.temporal.task_queue, request)
        history = await wait_history(client, request, 1)
    assert history[0].status is Status.COMPLETED, history[0]
    assert retried.deploys == 2
    on_b = admin(kube_clusters["b"], kube_ns)
    try:
        found = await census(on_b, APP, request.instance)
    finally:
        await on_b.close()
    assert found["Deployment"] == found["Service"] == [f"{APP}-{request.instance}"]
    assert len(found["ReplicaSet"]) == 1
    assert len(found["Pod"]) == 2


class Watched(PassThrough):
    """Sets ``deployed`` once a deploy on ``cluster`` returned."""

    def __init__(self, inner: KubernetesOrchestrator, cluster: str) -> None:
        super().__init__(inner, cluster)
        self.deployed = asyncio.Event()

    async def deploy(self, app: str, instance: str, placement: Placement) -> Endpoint:
        """The inner deploy, observed."""
        endpoint = await self.inner.deploy(app, instance, placement)
        if placement.cluster == self.cluster:
            self.deployed.set()
        return endpoint


async def test_api_server_of_b_away_mid_move_then_back_completes_the_move(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    kube: KubernetesOrchestrator,
    kube_clusters: dict[str, KubeCluster],
    unique: str,
) -> None:
    """B's API server dies right after the apply and returns: readiness rides it out."""
    request, _, name = await serve_from_a(kube, pdns, unique)
    watched = Watched(kube, "b")
    b = kube_clusters["b"]
    async with running_worker(client, act_settings, watched, pdns):
        await request_relocation(client, act_settings.temporal.task_queue, request)
        await asyncio.wait_for(watched.deployed.wait(), 30)
        b.stop_apiserver(hard=True)
        try:
            await asyncio.sleep(2)  # readiness polls an API that is not there
        finally:
            await b.start_apiserver()
        history = await wait_history(client, request, 1)
    assert history[0].status is Status.COMPLETED, history[0]
    assert await pdns.query_a(name) == [KUBE_NODE_ADDRESSES["b"]]


async def test_api_server_of_b_away_for_good_fails_the_move_and_a_keeps_serving(
    act_settings: Settings,
    client: Client,
    pdns: PowerDns,
    kube: KubernetesOrchestrator,
    kube_clusters: dict[str, KubeCluster],
    kube_ns: str,
    unique: str,
) -> None:
    """B's API server gone past the readiness deadline: the move fails, DNS and A stay, the
    failed clean-up of B is recorded, and B's leftover carries our labels for a later remove."""
    settings = act_settings.model_copy(
        update={
            "relocation": act_settings.relocation.model_copy(update={"readiness_timeout_s": 3.0})
        }
    )
    request, endpoint_a, name = await serve_from_a(kube, pdns, unique)
    watched = Watched(kube, "b")
    b = kube_clusters["b"]
    try:
        async with running_worker(client, settings, watched, pdns):
            await request_relocation(client, settings.temporal.task_queue, request)
            await asyncio.wait_for(watched.deployed.wait(), 30)
            b.stop_apiserver(hard=True)
            history = await wait_history(client, request, 1, timeout_s=90)
    finally:
        if not b.apiserver_running:
            await b.start_apiserver()
    outcome = history[0]
    assert outcome.status is Status.FAILED, outcome
    assert outcome.failed_step is Step.READINESS
    assert outcome.error is not None
    assert outcome.error.startswith("ReadinessTimeout")
    assert [e.split(":")[0] for e in outcome.compensation_errors] == ["remove_target"]
    assert await pdns.query_a(name) == [endpoint_a.placement.address]
    assert await kube.readiness(endpoint_a) is Readiness.READY
    on_b = admin(b, kube_ns)
    try:
        left = await census(on_b, APP, request.instance)
        assert left["Deployment"] == left["Service"] == [f"{APP}-{request.instance}"]
        await kube.remove(APP, request.instance, policy_target("b"))
        # Pods and ReplicaSets are the garbage collector's to delete, once it has caught up
        # with an API server that was away; what we own is gone at once.
        left = await census(on_b, APP, request.instance)
    finally:
        await on_b.close()
    assert left["Deployment"] == left["Service"] == []
