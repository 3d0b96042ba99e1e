"""One real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, and kwok simulating the nodes and kubelets.

Every process binds 127.0.0.1 on free ports, so several clusters (and several test sessions) run
side by side. The PKI is made with openssl at start: a CA, the apiserver's serving certificate,
the service-account signing key, and a static admin token in ``system:masters``. The written
kubeconfig is what the controller-manager, the scheduler, kwok and clients use.

Pods go through the real Deployment -> ReplicaSet -> scheduler chain; kwok then writes the status
a kubelet would (``kwok-stages.yaml``). No container runs: pod and Service addresses answer
nothing. Start-up takes 3-5 s per cluster; stopping sends SIGTERM in reverse order, etcd last,
because the apiserver needs etcd to shut down cleanly.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import ssl
import subprocess
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import httpx
import yaml
from lightkube import AsyncClient, KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.models.core_v1 import NodeStatus
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Node, ServiceAccount
from lightkube.types import PatchType

from subscriber.errors import StackError
from subscriber.stack.procs import free_ports, is_running, kill_hard, spawn, start_ticks, stop

FAKE_NODE = ("kwok.x-k8s.io/node", "fake")
"""The annotation that hands a node to kwok (``--manage-nodes-with-annotation-selector``)."""


@dataclass(frozen=True)
class ClusterAccess:
    """How to reach a running cluster as its administrator."""

    name: str
    server: str
    ca_file: Path
    token: str
    kubeconfig: Path
    node_address: str

    def client(self, *, namespace: str = "default") -> AsyncClient:
        """An administrator's lightkube client (close it with ``aclose``)."""
        return AsyncClient(KubeConfig.from_file(self.kubeconfig), namespace=namespace)


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError(f"openssl {args[0]} failed: {result.stderr[-500:]}")


def make_pki(pki: Path) -> None:
    """CA, apiserver serving certificate for 127.0.0.1, and the service-account key pair."""
    if shutil.which("openssl") is None:
        raise StackError("openssl not found: apt-get install -y openssl")
    pki.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "3650", "-subj", "/CN=subscriber-test-ca", cwd=pki,
    )  # fmt: skip
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "apiserver.key",
        "-out", "apiserver.csr", "-subj", "/CN=kube-apiserver", cwd=pki,
    )  # fmt: skip
    (pki / "san.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "apiserver.crt", "-days", "3650", "-extfile", "san.ext",
        cwd=pki,
    )  # fmt: skip
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def kubeconfig(server: str, ca_file: Path, token: str, *, namespace: str = "default") -> str:
    """A one-context kubeconfig that authenticates with a bearer token."""
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "c", "cluster": {"server": server, "certificate-authority": str(ca_file)}}
            ],
            "users": [{"name": "u", "user": {"token": token}}],
            "contexts": [
                {"name": "c", "context": {"cluster": "c", "user": "u", "namespace": namespace}}
            ],
            "current-context": "c",
        }
    )


class KubeCluster:
    """One control plane and its simulated nodes; see the module docstring.

    Args:
        name: names the etcd member and the node (``<name>-node``).
        bin_dir: where the binaries are (:func:`subscriber.stack.kubernetes.build.ensure_binaries`).
        work_dir: data, PKI, kubeconfig and logs; created, and left for post-mortems.
        node_address: the InternalIP of its node, reported for NodePort endpoints.
        node_cpu, node_memory: the node's allocatable resources.
        ready_timeout_s: how long each start-up step may take.
    """

    def __init__(
        self,
        name: str,
        *,
        bin_dir: Path,
        work_dir: Path,
        node_address: str = "127.0.0.1",
        node_cpu: str = "8",
        node_memory: str = "16Gi",
        ready_timeout_s: float = 60.0,
    ) -> None:
        self.name = name
        self._bin = bin_dir
        self._dir = work_dir
        self._node_address = node_address
        self._node_allocatable = {"cpu": node_cpu, "memory": node_memory, "pods": "110"}
        self._timeout_s = ready_timeout_s
        self._procs: dict[str, tuple[int, int]] = {}
        self._ports: dict[str, int] = {}
        self._token = secrets.token_hex(16)
        self.access: ClusterAccess | None = None

    def _spawn(self, name: str, argv: list[str]) -> None:
        pid = spawn(argv, log_file=self._dir / "control-plane" / f"{name}.log", cwd=self._dir)
        self._procs[name] = (pid, start_ticks(pid))

    def _check_alive(self, name: str) -> None:
        pid, ticks = self._procs[name]
        if not is_running(pid, ticks):
            log = (self._dir / "control-plane" / f"{name}.log").read_text(errors="replace")[-3000:]
            raise StackError(f"{self.name}: {name} exited during start-up; its log ends:\n{log}")

    def _apiserver_argv(self) -> list[str]:
        pki = self._dir / "pki"
        return [
            str(self._bin / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{self._ports['etcd']}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self._ports['apiserver']}",
            "--advertise-address=127.0.0.1",
            # Keeps its own address out of the kubernetes Endpoints: nothing routes there.
            "--endpoint-reconciler-type=none",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--token-auth-file={pki / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-cluster-ip-range=10.96.0.0/24",
            f"--cert-dir={self._dir / 'certs'}",
        ]

    async def start(self) -> ClusterAccess:
        """Start every process, create the node, and wait until pods can be scheduled.

        Raises:
            StackError: a process exited or a step did not finish in time.
        """
        self._dir.mkdir(parents=True, exist_ok=True)
        pki = self._dir / "pki"
        await asyncio.to_thread(make_pki, pki)
        (pki / "tokens.csv").write_text(f'{self._token},admin,admin,"system:masters"\n')
        etcd, peer, apiserver, kwok = free_ports(4)
        self._ports = {"etcd": etcd, "apiserver": apiserver}
        server = f"https://127.0.0.1:{apiserver}"
        config = self._dir / "kubeconfig"
        config.write_text(kubeconfig(server, pki / "ca.crt", self._token))
        (self._dir / "kwok.yaml").write_bytes(
            resources.files(__package__).joinpath("kwok-stages.yaml").read_bytes()
        )
        self._spawn(
            "etcd",
            [
                str(self._bin / "etcd"), "--name", self.name,
                "--data-dir", str(self._dir / "etcd"),
                # Throwaway data: fsync buys nothing and costs the tests' time.
                "--unsafe-no-fsync", "--log-level=warn",
                "--listen-client-urls", f"http://127.0.0.1:{etcd}",
                "--advertise-client-urls", f"http://127.0.0.1:{etcd}",
                "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                "--initial-cluster", f"{self.name}=http://127.0.0.1:{peer}",
            ],
        )  # fmt: skip
        self.access = ClusterAccess(
            name=self.name,
            server=server,
            ca_file=pki / "ca.crt",
            token=self._token,
            kubeconfig=config,
            node_address=self._node_address,
        )
        await self.start_apiserver()
        self._spawn(
            "kwok",
            [
                str(self._bin / "kwok"), f"--kubeconfig={config}",
                f"--config={self._dir / 'kwok.yaml'}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={'='.join(FAKE_NODE)}",
                f"--node-ip={self._node_address}",
                # Renews each node's Lease; without it (the flag's default is 0 unless a
                # KwokConfiguration sets it) the node-lifecycle controller marks the node
                # NotReady after its grace period (about 50 s).
                "--node-lease-duration-seconds=40",
                f"--server-address=127.0.0.1:{kwok}",
            ],
        )  # fmt: skip
        await self._ensure_node()
        return self.access

    def _start_controllers(self) -> None:
        pki = self._dir / "pki"
        config = self._dir / "kubeconfig"
        common = [f"--kubeconfig={config}", "--leader-elect=false", "--secure-port=0"]
        self._spawn(
            "kube-controller-manager",
            [
                str(self._bin / "kube-controller-manager"), *common,
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                "--use-service-account-credentials=false",
            ],
        )  # fmt: skip
        self._spawn("kube-scheduler", [str(self._bin / "kube-scheduler"), *common])

    async def start_apiserver(self) -> None:
        """(Re)start kube-apiserver on its port, wait for ``/readyz``, then (re)start the
        controller-manager and the scheduler.

        On a restart they start afresh, as in a real control plane: there they run with leader
        election, lose their lease while the API server is away, exit, and are restarted by their
        kubelet. Left running with stale caches instead, they take up to a minute to act again.
        """
        for name in ("kube-scheduler", "kube-controller-manager"):
            if name in self._procs:
                stop(*self._procs.pop(name), timeout_s=10)
        self._spawn("kube-apiserver", self._apiserver_argv())
        await self._wait_ready()
        self._start_controllers()

    async def _wait_ready(self) -> None:
        assert self.access is not None
        context = ssl.create_default_context(cafile=str(self.access.ca_file))
        headers = {"Authorization": f"Bearer {self._token}"}
        deadline = time.monotonic() + self._timeout_s
        async with httpx.AsyncClient(verify=context, headers=headers, timeout=2) as http:
            while time.monotonic() < deadline:
                self._check_alive("etcd")
                self._check_alive("kube-apiserver")
                try:
                    if (await http.get(f"{self.access.server}/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise StackError(f"{self.name}: kube-apiserver not ready after {self._timeout_s:.0f} s")

    @property
    def processes(self) -> dict[str, tuple[int, int]]:
        """name -> (PID, start ticks) of each process it runs."""
        return dict(self._procs)

    @property
    def apiserver_running(self) -> bool:
        """Whether kube-apiserver is up (a fault test may have stopped it)."""
        found = self._procs.get("kube-apiserver")
        return found is not None and is_running(*found)

    def stop_apiserver(self, *, hard: bool = False) -> None:
        """Stop kube-apiserver alone (the rest keeps running): an API outage, for fault tests."""
        pid, ticks = self._procs.pop("kube-apiserver")
        if hard:
            kill_hard(pid, ticks)
        else:
            stop(pid, ticks, timeout_s=10)

    async def _ensure_node(self) -> None:
        assert self.access is not None
        client = self.access.client()
        try:
            node = Node(
                metadata=ObjectMeta(
                    name=f"{self.name}-node", annotations={FAKE_NODE[0]: FAKE_NODE[1]}
                ),
                # A kubelet registers its node with its resources; kwok keeps them.
                status=NodeStatus(
                    allocatable=self._node_allocatable, capacity=self._node_allocatable
                ),
            )
            await client.create(node)
            deadline = time.monotonic() + self._timeout_s
            while time.monotonic() < deadline:
                for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
                    self._check_alive(name)
                if await self._node_ready(client) and await self._has_default_account(client):
                    # kwok's node-initialize leaves addresses out, whatever --node-ip says; a
                    # kubelet reports them in the node status, so we do it for kwok. Both kinds:
                    # should the node ever turn NotReady (its API server away for long), that
                    # stage runs again and rewrites the list unless both are already there.
                    addresses = [
                        {"type": "InternalIP", "address": self._node_address},
                        {"type": "Hostname", "address": f"{self.name}-node"},
                    ]
                    await client.patch(
                        Node.Status,
                        f"{self.name}-node",
                        {"status": {"addresses": addresses}},
                        patch_type=PatchType.MERGE,
                    )
                    return
                await asyncio.sleep(0.1)
        finally:
            await client.close()
        raise StackError(f"{self.name}: node or controllers not ready after {self._timeout_s} s")

    async def _node_ready(self, client: AsyncClient) -> bool:
        node = await client.get(Node, f"{self.name}-node")
        conditions = node.status.conditions if node.status else None
        return any(c.type == "Ready" and c.status == "True" for c in conditions or ())

    async def _has_default_account(self, client: AsyncClient) -> bool:
        # The controller-manager creates it: proof that the controllers run.
        try:
            await client.get(ServiceAccount, "default", namespace="default")
        except ApiError as exc:
            if exc.status.code == 404:
                return False
            raise
        return True

    def stop(self) -> None:
        """SIGTERM every process in reverse start order (etcd last); SIGKILL after 10 s."""
        etcd = self._procs.pop("etcd", None)
        for name in reversed(list(self._procs)):
            pid, ticks = self._procs.pop(name)
            stop(pid, ticks, timeout_s=10)
        if etcd is not None:
            stop(*etcd, timeout_s=10)
