"""Shared fixtures: the real local stack (started once per session, or reused), per-test names
on it, and the relocation side's clients (Temporal, PowerDNS, the local orchestrator).

Set ``SUBSCRIBER_TEST_STACK_DIR`` to the directory of a stack started with
``subscriber stack up`` to reuse it (it is left running); otherwise the session starts its own
stack in a temporary directory and stops it at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import structlog
from temporalio.client import Client

from subscriber.act.dns import PowerDns
from subscriber.act.signals import connect
from subscriber.errors import StackError
from subscriber.fakes.local_orchestrator import LocalOrchestrator
from subscriber.relocation import Placement
from subscriber.settings import Settings, StackSettings, default_cache_dir
from subscriber.stack import StackInfo, down, settings_for, up
from subscriber.stack.free5gc import Binaries, RealNrf, ensure_built
from subscriber.stack.kubernetes.build import ensure_binaries
from subscriber.stack.kubernetes.cluster import KubeCluster
from subscriber.stack.procs import port_free_on
from tests.support.settings import isolate, tuned

STACK_DIR_ENV = "SUBSCRIBER_TEST_STACK_DIR"
CLUSTER_ADDRESSES = {"edge1": "127.0.1.1", "edge2": "127.0.2.1", "edge3": "127.0.3.1"}
# serve, track and consume refuse to start without a secret pseudonym key (subscriber.logs);
# every Settings() of the session, in this process and in the processes it starts, gets this one.
os.environ.setdefault("SUBSCRIBER_LOG__PSEUDONYM_KEY", "suite-pseudonym-key-0123456789")
KUBE_NODE_ADDRESSES = {"a": "127.0.41.1", "b": "127.0.42.1"}
"""The InternalIP of each test cluster's node (loopback: nothing listens there, as with kwok)."""


def _stack_settings(stack_dir: Path) -> Settings:
    return Settings(stack=StackSettings(dir=stack_dir))


@pytest.fixture(scope="session")
def stack_base_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings whose stack section names the session's stack directory."""
    shared = os.environ.get(STACK_DIR_ENV)
    stack_dir = Path(shared) if shared else tmp_path_factory.mktemp("stack")
    settings = _stack_settings(stack_dir)
    state, _ = asyncio.run(up(settings))
    yield settings_for(settings, state.info())
    if not shared:
        down(settings)


@pytest.fixture(scope="session")
def stack(stack_base_settings: Settings) -> StackInfo:
    """The running stack's addresses: Kafka, Temporal and PowerDNS on loopback."""
    from subscriber.stack.state import read_state

    return read_state(stack_base_settings.stack.dir).info()


@pytest.fixture
def private_stack(tmp_path: Path) -> Iterator[Settings]:
    """A stack of this test's own, for tests that stop or kill a service."""
    settings = _stack_settings(tmp_path / "stack")
    state, _ = asyncio.run(up(settings))
    yield settings_for(settings, state.info())
    down(settings)


@pytest.fixture(scope="session")
def nrf_binaries() -> Binaries:
    """The free5GC NRF and FerretDB, built once (cached under ~/.cache/subscriber/free5gc)."""
    return ensure_built(default_cache_dir())


@pytest.fixture
async def real_nrf(nrf_binaries: Binaries, tmp_path: Path) -> AsyncIterator[RealNrf]:
    """A free5GC NRF v1.4.3 (OAuth2 on) on FerretDB of this test's own (starts in ~0.4 s)."""
    async with RealNrf(nrf_binaries, tmp_path / "nrf") as nrf:
        yield nrf


@pytest.fixture
def unique() -> str:
    """A short name part that no other test uses."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def stack_settings(stack_base_settings: Settings, unique: str, tmp_path: Path) -> Settings:
    """Settings pointing at the session stack, with names unique to this test."""
    return isolate(stack_base_settings, unique, tmp_path)


@pytest.fixture
def clusters() -> dict[str, Placement]:
    """Three loopback clusters sharing one service port."""
    port = port_free_on(*CLUSTER_ADDRESSES.values())
    return {
        name: Placement(cluster=name, address=address, port=port)
        for name, address in CLUSTER_ADDRESSES.items()
    }


@pytest.fixture
def act_settings(stack_settings: Settings, tmp_path: Path) -> Settings:
    """The session stack's settings, :func:`tuned`, with names unique to this test."""
    return tuned(stack_settings, tmp_path)


@pytest.fixture
async def client(act_settings: Settings) -> Client:
    """A Temporal client with the pydantic converter."""
    return await connect(act_settings.temporal)


@pytest.fixture
async def pdns(act_settings: Settings) -> AsyncIterator[PowerDns]:
    """The stack's PowerDNS, with this test's zone created."""
    async with PowerDns(act_settings.powerdns) as dns:
        await dns.ensure_zone()
        yield dns


@pytest.fixture
async def local(act_settings: Settings) -> AsyncIterator[LocalOrchestrator]:
    """The local orchestrator; every service it started is stopped at the end."""
    reloc = act_settings.relocation
    async with LocalOrchestrator(state_dir=reloc.local_dir, warmup_s=reloc.local_warmup_s) as orch:
        yield orch
        orch.remove_all()


@pytest.fixture(scope="session")
def kube_clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, KubeCluster]]:
    """Two real Kubernetes control planes, "a" and "b", each with one kwok node.

    The binaries come from the cache; a cold build (about 8 minutes on 2 cores) started by
    ``scripts/bootstrap`` is waited for, not repeated.
    """
    bin_dir = ensure_binaries(Settings().stack.cache_dir)
    base = tmp_path_factory.mktemp("kube")
    clusters = {
        name: KubeCluster(name, bin_dir=bin_dir, work_dir=base / name, node_address=address)
        for name, address in KUBE_NODE_ADDRESSES.items()
    }

    async def start() -> None:
        await asyncio.gather(*(c.start() for c in clusters.values()))

    try:
        asyncio.run(start())
        yield clusters
    finally:
        for cluster in clusters.values():
            cluster.stop()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    # A cold build of the binaries is no test's time: wait for it before pytest-timeout starts
    # the first cluster test's timer. A failure is left for the fixture to report.
    if "kube_clusters" in getattr(item, "fixturenames", ()) and not _kube_build_tried:
        _kube_build_tried.append(True)
        with contextlib.suppress(StackError):
            ensure_binaries(Settings().stack.cache_dir)
    yield


_kube_build_tried: list[bool] = []


@pytest.fixture
async def kube_ns(kube_clusters: dict[str, KubeCluster], unique: str) -> AsyncIterator[str]:
    """A namespace of this test's own on every Kubernetes test cluster."""
    from tests.support.kube import namespaces

    async with namespaces(kube_clusters, f"t-{unique}") as name:
        yield name


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests on the Kubernetes clusters go last, so that a cold build of the control plane
    # (started in the background by scripts/bootstrap) overlaps the rest of the suite.
    items.sort(key=lambda item: "kube_clusters" in getattr(item, "fixturenames", ()))


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    structlog.contextvars.clear_contextvars()
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


_status: dict[str, int] = {}
_session: list[pytest.Session] = []


def pytest_configure(config: pytest.Config) -> None:
    from tests.support.log_scan import LogScan

    # No SUPI, GPSI or IP address in clear in any log line of the session (tests/test_log_scan.py).
    if not config.pluginmanager.has_plugin("log-scan"):
        config.pluginmanager.register(LogScan(config), "log-scan")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _status["rc"] = int(exitstatus)
    _session.append(session)


def pytest_unconfigure(config: pytest.Config) -> None:
    # temporalio's native runtime can abort at interpreter exit after every test passed
    # (temporalio/sdk-python#300): leave with pytest's own status,
    # as the session ends it (the log scan may fail a session whose tests all passed).
    if "rc" in _status:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(_session[-1].exitstatus) if _session else _status["rc"])
