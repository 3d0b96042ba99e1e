"""Session fixtures that start the real local stack (or reuse a running one).

Set ``SUBSCRIBER_TEST_STACK_DIR`` to the directory of a stack started with
``subscriber stack up`` to reuse it (it is left running); otherwise the session starts its own
stack in a temporary directory and stops it at the end.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import structlog

from subscriber.settings import Settings, StackSettings, default_cache_dir
from subscriber.stack import StackInfo, down, settings_for, up
from subscriber.stack.free5gc import Binaries, RealNrf, ensure_built

STACK_DIR_ENV = "SUBSCRIBER_TEST_STACK_DIR"
# serve, track and consume refuse to start without a secret pseudonym key (subscriber.logs);
# every Settings() of the session, in this process and in the processes it starts, gets this one.
os.environ.setdefault("SUBSCRIBER_LOG__PSEUDONYM_KEY", "suite-pseudonym-key-0123456789")


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


def isolate(settings: Settings, unique: str, tmp_path: Path) -> Settings:
    """Per-test topics, group, task queue, zone and local directories."""
    return settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(
                update={
                    "events_topic": f"events-{unique}",
                    "dead_letter_topic": f"dead-letter-{unique}",
                    "decisions_topic": f"decisions-{unique}",
                    "state_topic": f"ue-state-{unique}",
                    "consumer_group": f"group-{unique}",
                }
            ),
            "temporal": settings.temporal.model_copy(update={"task_queue": f"tq-{unique}"}),
            "powerdns": settings.powerdns.model_copy(update={"zone": f"z{unique}.test."}),
            "receiver": settings.receiver.model_copy(
                update={"spool_dir": tmp_path / "spool", "port": 0}
            ),
            "core": settings.core.model_copy(update={"state_dir": tmp_path / "state"}),
        }
    )


@pytest.fixture
def stack_settings(stack_base_settings: Settings, unique: str, tmp_path: Path) -> Settings:
    """Settings pointing at the session stack, with names unique to this test."""
    return isolate(stack_base_settings, unique, tmp_path)


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    structlog.contextvars.clear_contextvars()
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


_status: dict[str, int] = {}
_session: list[pytest.Session] = []


def pytest_configure(config: pytest.Config) -> None:
    from tests.hostile.log_scan import LogScan

    # No SUPI, GPSI or IP address in clear in any log line of the session (tests/test_log_scan.py).
    if not config.pluginmanager.has_plugin("log-scan"):
        config.pluginmanager.register(LogScan(config), "log-scan")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _status["rc"] = int(exitstatus)
    _session.append(session)


def pytest_unconfigure(config: pytest.Config) -> None:
    # temporalio's native runtime can abort at interpreter exit after every test passed
    # (sdk-python#300, ../shared/notes/local-stack.md §3.5): leave with pytest's own status,
    # as the session ends it (the log scan may fail a session whose tests all passed).
    if "rc" in _status:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(_session[-1].exitstatus) if _session else _status["rc"])
