"""Process plumbing for the stack: free ports, detached children, PID checks, stopping."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

# Services outlive the Popen objects that started them; keeping the objects here stops Python
# from warning about them at garbage collection and lets us reap our own children.
_children: dict[int, subprocess.Popen[bytes]] = {}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    (port,) = free_ports(1)
    return port


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports: all held open at once, so none is handed out twice."""
    with contextlib.ExitStack() as held:
        ports = []
        for _ in range(count):
            s = held.enter_context(socket.socket())
            s.bind(("127.0.0.1", 0))
            ports.append(int(s.getsockname()[1]))
        return ports


def port_free_on(*addresses: str) -> int:
    """A TCP port free on every one of ``addresses`` (loopback "clusters" sharing a port)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind((addresses[0], 0))
            port: int = s.getsockname()[1]
        try:
            for address in addresses[1:]:
                with socket.socket() as s:
                    s.bind((address, port))
        except OSError:
            continue
        return port
    raise OSError(f"no port free on all of {addresses}")


def free_udp_tcp_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (DNS needs both)."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError("no port free for both TCP and UDP")


def start_ticks(pid: int) -> int:
    """The process start time in clock ticks since boot, or 0 if it is gone.

    Recorded beside the PID so that ``down`` never signals a process that merely reused it.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    # Field 22; the command name (field 2) may hold spaces, so split after its closing paren.
    return int(stat.rsplit(")", 1)[1].split()[19])


def is_running(pid: int, ticks: int) -> bool:
    """Whether the process we started is still alive (and not a zombie)."""
    if ticks == 0 or start_ticks(pid) != ticks:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def spawn(
    argv: Sequence[str],
    *,
    log_file: Path,
    cwd: Path,
    env: dict[str, str] | None = None,
    pass_fds: Sequence[int] = (),
) -> int:
    """Start a service detached from our session, so it outlives ``subscriber stack up``.

    ``pass_fds`` are inherited by the service under the same numbers (a listening socket).
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            pass_fds=tuple(pass_fds),
        )
    _children[proc.pid] = proc
    return proc.pid


def stop(pid: int, ticks: int, *, timeout_s: float = 20.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout_s``; only if it is still the process we started."""
    if not is_running(pid, ticks):
        _reap(pid)
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(pid)
        if not is_running(pid, ticks):
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    while is_running(pid, ticks):
        _reap(pid)
        time.sleep(0.05)


def kill_hard(pid: int, ticks: int) -> None:
    """SIGKILL at once: what a crash looks like, for fault tests."""
    if is_running(pid, ticks):
        os.kill(pid, signal.SIGKILL)
        while is_running(pid, ticks):
            _reap(pid)
            time.sleep(0.02)


def _reap(pid: int) -> None:
    # A child of this very process (tests start the stack in-process) stays a zombie until waited.
    child = _children.get(pid)
    if child is not None:
        if child.poll() is not None:
            del _children[pid]
        return
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
