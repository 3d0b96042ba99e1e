"""Kubernetes adapter: deploy an app instance on a cluster through its API, check it, remove it.

One orchestrator serves every cluster whose topology entry has a ``kubernetes`` section
(:class:`~subscriber.decide.topology.KubernetesDoc`), each with its own client and credentials.

* deploy = render the app's template (:mod:`subscriber.act.workload`), refuse if an object of that
  name exists without our ownership labels, then server-side apply the Deployment and the Service
  (field manager ``subscriber``, forced: our template is the truth; the same apply again changes
  nothing, so a retried activity creates no duplicate) and report the endpoint: the load
  balancer's address and the Service port, or a node address and the node port;
* readiness = the Deployment's rollout status and its pods' Ready condition, from the API;
* remove = delete what carries our ownership labels for this instance, and nothing else.

Errors become :class:`OrchestratorError`: a refusal by the API (4xx but 409/429) is permanent, an
unreachable API or a 5xx is not. Messages name the cluster, never its address.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx2
import structlog
from lightkube import ApiError, AsyncClient, ConfigError, KubeConfig, SingleConfig
from lightkube.codecs import from_dict
from lightkube.config.models import Cluster as ClusterAuth
from lightkube.config.models import User
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Node, Pod, Service
from lightkube.types import CascadeType
from lightkube.utils.quantity import parse_quantity

from subscriber.act.orchestrator import OrchestratorError
from subscriber.act.workload import (
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    MANAGER,
    Workload,
    owned,
    ownership,
    parse_template,
    readiness_of,
    render,
    selector,
    workload_name,
)
from subscriber.decide.topology import ClusterReading, KubernetesDoc, TopologyDoc, parse_topology
from subscriber.errors import PolicyUnavailable
from subscriber.relocation import Endpoint, Placement, Readiness
from subscriber.settings import RelocationSettings

log = structlog.get_logger()

_TRANSIENT_STATUS = frozenset({408, 409, 429})


@dataclass(frozen=True)
class KubeTarget:
    """One cluster as the orchestrator sees it: its access and where its files are."""

    cluster: str
    doc: KubernetesDoc
    base_dir: Path

    def path(self, name: str) -> Path:
        """A file the topology names, relative to the topology file's folder."""
        return (self.base_dir / Path(name).expanduser()).absolute()

    def config(self) -> SingleConfig:
        """This cluster's server, CA and credentials, checked as far as can be without calling.

        Raises:
            OrchestratorError: (permanent) the kubeconfig, token or CA cannot be used.
        """
        doc = self.doc
        try:
            if doc.kubeconfig is not None:
                config = KubeConfig.from_file(self.path(doc.kubeconfig)).get(doc.context)
                assert config is not None  # get() raises rather than return None without default
            else:
                assert doc.server is not None
                assert doc.token_file is not None
                assert doc.ca_file is not None
                config = KubeConfig.from_one(
                    cluster=ClusterAuth(
                        server=doc.server, certificate_auth=str(self.path(doc.ca_file))
                    ),
                    # Re-read on 401, so a rotated service-account token is picked up.
                    user=User(token_file=str(self.path(doc.token_file))),
                ).get()
                assert config is not None
            for name in (config.cluster.certificate_auth, config.user and config.user.token_file):
                if name and not Path(config.abs_file(name)).is_file():
                    raise ConfigError(f"{name} not found")
            if config.cluster.certificate_auth:
                ca = config.abs_file(config.cluster.certificate_auth)
                try:
                    ssl.create_default_context(cafile=str(ca))
                except ssl.SSLError as exc:
                    raise ConfigError(f"{ca} holds no PEM certificate") from exc
        except (ConfigError, KeyError, OSError, ValueError, TypeError) as exc:
            raise self._unusable(exc) from exc
        return config

    def _unusable(self, exc: Exception) -> OrchestratorError:
        return OrchestratorError(
            f"cluster {self.cluster!r}: cannot use its Kubernetes credentials: {exc}",
            permanent=True,
        )

    def client(self, *, timeout_s: float) -> AsyncClient:
        """A client with this cluster's credentials (not connected until first used).

        Raises:
            OrchestratorError: (permanent) the kubeconfig, token or CA cannot be used.
        """
        config = self.config()
        try:
            return AsyncClient(
                config,
                namespace=self.doc.namespace,
                timeout=httpx2.Timeout(timeout_s),
                field_manager=MANAGER,
                trust_env=False,
            )
        except (ConfigError, OSError, ValueError) as exc:  # e.g. a CA file that is no PEM
            raise self._unusable(exc) from exc


def targets_of(topology: TopologyDoc, topology_file: Path) -> dict[str, KubeTarget]:
    """The clusters of a topology that have a ``kubernetes`` section."""
    base = topology_file.parent
    return {
        c.id: KubeTarget(c.id, c.kubernetes, base)
        for c in topology.clusters
        if c.kubernetes is not None
    }


def templates_of(topology: TopologyDoc, topology_file: Path) -> dict[str, Path]:
    """app -> its workload template's path, for apps that have one."""
    base = topology_file.parent
    return {
        a.name: (base / Path(a.workload).expanduser()).absolute()
        for a in topology.applications
        if a.workload is not None
    }


def from_topology(topology_file: Path, settings: RelocationSettings) -> KubernetesOrchestrator:
    """The orchestrator for the Kubernetes clusters of a topology file (possibly none).

    Raises:
        PolicyUnavailable: the file cannot be read or is invalid.
    """
    try:
        text = topology_file.read_bytes()
    except OSError as exc:
        raise PolicyUnavailable(f"{topology_file}: cannot read: {exc.strerror}") from exc
    doc = parse_topology(text, source=str(topology_file)).doc
    return KubernetesOrchestrator(
        targets=targets_of(doc, topology_file),
        templates=templates_of(doc, topology_file),
        request_timeout_s=settings.kubernetes_request_timeout_s,
        endpoint_timeout_s=settings.kubernetes_endpoint_timeout_s,
    )


def typed(workload: Workload, *, source: str) -> tuple[Deployment, Service]:
    """The rendered objects as lightkube resources, which checks every field's type.

    Raises:
        OrchestratorError: (permanent) a field has the wrong type or shape.
    """
    try:
        deployment = from_dict(workload.deployment)
        service = from_dict(workload.service)
    except Exception as exc:  # lightkube's decoder raises plain errors for bad fields
        raise OrchestratorError(
            f"workload template {source}: not a valid object: {exc}", permanent=True
        ) from exc
    assert isinstance(deployment, Deployment)
    assert isinstance(service, Service)
    return deployment, service


def topology_problems(topology: TopologyDoc, topology_file: Path) -> list[str]:
    """What keeps the topology's Kubernetes clusters and templates from working, found without
    calling any cluster: unreadable files, a kubeconfig without the context, a bad template.
    One ``path: problem`` line each, as the topology's own checks write them."""
    problems = []
    targets = targets_of(topology, topology_file)
    for i, c in enumerate(topology.clusters):
        target = targets.get(c.id)
        if target is None:
            continue
        try:
            target.config()
        except OrchestratorError as exc:
            problems.append(f"clusters[{i}].kubernetes: {str(exc).split(': ', 1)[1]}")
    for i, a in enumerate(topology.applications):
        if a.workload is None:
            continue
        path = topology_file.parent / Path(a.workload).expanduser()
        try:
            docs = parse_template(path.read_bytes(), source=a.workload)
            workload = render(
                docs,
                app=a.name,
                instance="check",
                namespace="default",
                cluster="check",
                service_type="NodePort",
            )
            typed(workload, source=a.workload)
        except OSError as exc:
            problems.append(f"applications[{i}].workload: cannot read {a.workload}: {exc.strerror}")
        except OrchestratorError as exc:
            problems.append(f"applications[{i}].workload: {exc}")
    return problems


def api_failure(cluster: str, what: str, exc: Exception) -> OrchestratorError:
    """Our error for a failed API call: permanent when the API refused it for good."""
    if isinstance(exc, ApiError):
        code = exc.status.code or 0
        detail = exc.status.message or exc.status.reason or ""
        return OrchestratorError(
            f"cluster {cluster!r}: {what}: {code} {detail}"[:400],
            permanent=400 <= code < 500 and code not in _TRANSIENT_STATUS,
        )
    if isinstance(exc, ConfigError):
        return OrchestratorError(f"cluster {cluster!r}: {what}: {exc}", permanent=True)
    # The exception text may hold the API server's address: the type says enough.
    return OrchestratorError(
        f"cluster {cluster!r}: {what}: API unreachable ({type(exc).__name__})", permanent=False
    )


_API_ERRORS = (ApiError, ConfigError, httpx2.HTTPError)


def _query(labels: Mapping[str, str]) -> dict[str, Any]:
    """Labels as lightkube's list() takes them (equality on each)."""
    return dict(labels)


class KubernetesOrchestrator:
    """Deploys, checks and removes app instances on Kubernetes clusters; see the module.

    Args:
        targets: cluster id -> its access (:func:`targets_of`).
        templates: app -> its workload template (:func:`templates_of`); read at each deploy.
        request_timeout_s: per API request.
        endpoint_timeout_s: how long deploy waits for a load balancer address.
        poll_s: interval while waiting for it.
    """

    def __init__(
        self,
        *,
        targets: Mapping[str, KubeTarget],
        templates: Mapping[str, Path],
        request_timeout_s: float = 10.0,
        endpoint_timeout_s: float = 60.0,
        poll_s: float = 0.5,
    ) -> None:
        self._targets = dict(targets)
        self._templates = dict(templates)
        self._timeout_s = request_timeout_s
        self._endpoint_timeout_s = endpoint_timeout_s
        self._poll_s = poll_s
        self._clients: dict[str, AsyncClient] = {}

    @property
    def clusters(self) -> frozenset[str]:
        """The clusters this orchestrator deploys to."""
        return frozenset(self._targets)

    async def __aenter__(self) -> KubernetesOrchestrator:
        for cluster, target in self._targets.items():
            self._clients[cluster] = target.client(timeout_s=self._timeout_s)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.close()

    def _client(self, cluster: str) -> tuple[KubeTarget, AsyncClient]:
        target = self._targets.get(cluster)
        if target is None:
            raise OrchestratorError(
                f"cluster {cluster!r} has no kubernetes section", permanent=True
            )
        client = self._clients.get(cluster)
        assert client is not None, "use KubernetesOrchestrator as an async context manager"
        return target, client

    def _render(self, app: str, instance: str, target: KubeTarget) -> tuple[Deployment, Service]:
        path = self._templates.get(app)
        if path is None:
            raise OrchestratorError(f"app {app!r} has no workload template", permanent=True)
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise OrchestratorError(
                f"workload template of {app!r}: cannot read: {exc.strerror}", permanent=True
            ) from exc
        docs = parse_template(text, source=path.name)
        mode = target.doc.endpoint
        workload = render(
            docs,
            app=app,
            instance=instance,
            namespace=target.doc.namespace,
            cluster=target.cluster,
            service_type="LoadBalancer" if mode == "load_balancer" else "NodePort",
        )
        return typed(workload, source=path.name)

    async def _claim(self, client: AsyncClient, kind: Any, name: str, app: str, inst: str) -> None:
        """Refuse to touch an object of our name that we did not create."""
        try:
            existing: Deployment | Service = await client.get(kind, name)
        except ApiError as exc:
            if exc.status.code == 404:
                return
            raise
        if not owned(existing.metadata.labels if existing.metadata else None, app, inst):
            raise OrchestratorError(
                f"{kind.__name__} {name!r} exists without our ownership labels "
                f"({', '.join(f'{k}={v}' for k, v in ownership(app, inst).items())}): "
                "not ours to change",
                permanent=True,
            )

    async def deploy(self, app: str, instance: str, placement: Placement) -> Endpoint:
        """Apply the app's Deployment and Service on the cluster; report their endpoint."""
        target, client = self._client(placement.cluster)
        deployment, service = self._render(app, instance, target)
        name = workload_name(app, instance)
        try:
            for kind in (Deployment, Service):
                await self._claim(client, kind, name, app, instance)
            await client.apply(deployment, force=True)
            applied = await client.apply(service, force=True)
            address, port = await self._endpoint(target, client, applied)
        except _API_ERRORS as exc:
            raise api_failure(placement.cluster, f"deploy {name}", exc) from exc
        log.info("kubernetes.applied", app=app, instance=instance, cluster=placement.cluster)
        return Endpoint(
            app=app,
            instance=instance,
            placement=Placement(cluster=placement.cluster, address=address, port=port),
        )

    async def _endpoint(
        self, target: KubeTarget, client: AsyncClient, service: Service
    ) -> tuple[str, int]:
        name = service.metadata.name if service.metadata else ""
        if target.doc.endpoint == "load_balancer":
            return await self._load_balancer(target.cluster, client, name or "")
        ports = service.spec.ports if service.spec else None
        node_port = ports[0].nodePort if ports else None
        if node_port is None:
            raise OrchestratorError(
                f"cluster {target.cluster!r}: Service {name} got no node port", permanent=True
            )
        address = target.doc.node_address or await self._node_address(target.cluster, client)
        return address, node_port

    async def _node_address(self, cluster: str, client: AsyncClient) -> str:
        """The InternalIP of the first Ready node, by name: stable from one move to the next."""
        nodes = sorted(
            [n async for n in client.list(Node)],
            key=lambda n: n.metadata.name if n.metadata and n.metadata.name else "",
        )
        for node in nodes:
            status = node.status
            if status is None or (node.spec and node.spec.unschedulable):
                continue
            if not any(c.type == "Ready" and c.status == "True" for c in status.conditions or ()):
                continue
            for addr in status.addresses or ():
                if addr.type == "InternalIP" and "." in addr.address:
                    return addr.address
        raise OrchestratorError(
            f"cluster {cluster!r}: no Ready node with an IPv4 InternalIP; set node_address",
            permanent=False,
        )

    async def _load_balancer(self, cluster: str, client: AsyncClient, name: str) -> tuple[str, int]:
        """Wait for the load balancer to give the Service an address (a controller's job)."""
        deadline = time.monotonic() + self._endpoint_timeout_s
        while True:
            service = await client.get(Service, name)
            ingress = (
                service.status.loadBalancer.ingress
                if service.status and service.status.loadBalancer
                else None
            )
            ports = service.spec.ports if service.spec else None
            for entry in ingress or ():
                if entry.ip and "." in entry.ip and ports:
                    return entry.ip, ports[0].port
            if ingress:
                raise OrchestratorError(
                    f"cluster {cluster!r}: load balancer of {name} gave no IPv4 address",
                    permanent=True,
                )
            if time.monotonic() >= deadline:
                raise OrchestratorError(
                    f"cluster {cluster!r}: no load balancer address for {name} after "
                    f"{self._endpoint_timeout_s:g} s",
                    permanent=False,
                )
            await asyncio.sleep(self._poll_s)

    async def readiness(self, endpoint: Endpoint) -> Readiness:
        """READY when the rollout is complete and every pod is Ready; FAILED when the Deployment
        is gone, is not ours, or passed its progress deadline; NOT_READY while the API cannot
        be reached, so a short outage only delays the move.
        """
        cluster = endpoint.placement.cluster
        _, client = self._client(cluster)
        name = workload_name(endpoint.app, endpoint.instance)
        try:
            try:
                deployment: dict[str, Any] | None = (await client.get(Deployment, name)).to_dict()
            except ApiError as exc:
                if exc.status.code != 404:
                    raise
                deployment = None
            if deployment is not None and not owned(
                (deployment.get("metadata") or {}).get("labels"), endpoint.app, endpoint.instance
            ):
                return Readiness.FAILED
            labels = _query(selector(endpoint.app, endpoint.instance))
            pods = [p.to_dict() async for p in client.list(Pod, labels=labels)]
        except _API_ERRORS as exc:
            failure = api_failure(cluster, f"readiness of {name}", exc)
            if failure.permanent:
                raise failure from exc
            return Readiness.NOT_READY
        return readiness_of(deployment, pods)

    async def remove(self, app: str, instance: str, placement: Placement) -> None:
        """Delete this instance's Deployment and Service where they carry our ownership labels;
        succeed when they are already gone."""
        _, client = self._client(placement.cluster)
        labels = _query(ownership(app, instance))
        kinds: tuple[Any, ...] = (Service, Deployment)
        try:
            for kind in kinds:
                found: list[Deployment | Service] = [
                    o async for o in client.list(kind, labels=labels)
                ]
                for obj in found:
                    meta = obj.metadata
                    if meta is None or meta.name is None or not owned(meta.labels, app, instance):
                        continue
                    name = meta.name
                    try:
                        await client.delete(kind, name, cascade=CascadeType.BACKGROUND)
                    except ApiError as exc:
                        if exc.status.code != 404:
                            raise
        except _API_ERRORS as exc:
            raise api_failure(placement.cluster, f"remove {app}/{instance}", exc) from exc
        log.info("kubernetes.removed", app=app, instance=instance, cluster=placement.cluster)


def _mib(quantity: str | None) -> float:
    return float(parse_quantity(quantity) or 0) / 2**20


async def read_capacity(client: AsyncClient, *, namespace: str) -> ClusterReading:
    """Allocatable CPU and memory of the Ready, schedulable nodes; what the pods we manage in
    ``namespace`` request (containers, while not finished); and how many instances we run."""
    cpu = memory = 0.0
    async for node in client.list(Node):
        status, spec = node.status, node.spec
        if status is None or (spec is not None and spec.unschedulable):
            continue
        if not any(c.type == "Ready" and c.status == "True" for c in status.conditions or ()):
            continue
        allocatable = status.allocatable or {}
        cpu += float(parse_quantity(allocatable.get("cpu")) or 0)
        memory += _mib(allocatable.get("memory"))
    mine = _query({LABEL_MANAGED_BY: MANAGER})
    cpu_requested = memory_requested = 0.0
    async for pod in client.list(Pod, namespace=namespace, labels=mine):
        if pod.status is not None and pod.status.phase in ("Succeeded", "Failed"):
            continue
        for container in pod.spec.containers if pod.spec else ():
            requests = (container.resources.requests if container.resources else None) or {}
            cpu_requested += float(parse_quantity(requests.get("cpu")) or 0)
            memory_requested += _mib(requests.get("memory"))
    instances = {
        (d.metadata.labels or {}).get(LABEL_INSTANCE)
        async for d in client.list(Deployment, namespace=namespace, labels=mine)
        if d.metadata is not None
    }
    return ClusterReading(
        cpu=cpu,
        memory_mib=int(memory),
        cpu_requested=cpu_requested,
        memory_requested_mib=int(memory_requested + 0.999),
        apps=len(instances),
    )
