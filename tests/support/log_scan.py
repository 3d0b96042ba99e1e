"""A pytest plugin that fails the session when a log line shows a SUPI, GPSI or IP address.

It reads every log line the session produced:

* what pytest captured from each test phase (setup, call, teardown): structlog's rendered lines
  (in tests that do not configure logging, structlog renders the fields our code passed, with no
  masking, so a SUPI handed to a logger shows up here), stdlib ``logging`` records (aiokafka,
  granian, temporalio) and anything printed;
* the log files of the processes the tests start: every ``*.log`` under the session's base temp
  directory, except the third-party services of the local stack (Kafka, Temporal, PowerDNS) and
  of the Kubernetes test clusters (etcd, kube-*, kwok: their ``control-plane/`` folder), which
  never see a subscriber identity.

Loopback addresses (127.0.0.0/8 and ::1) are allowed: they name our own test services (Kafka,
Temporal, PowerDNS, the loopback clusters 127.0.x.1), never a UE. Every other IPv4 or IPv6
address counts, like UE addresses (10.60.0.1) or core addresses. docs/reliability.md says why.

Registered by tests/conftest.py; the scan needs pytest's output capture (it sees nothing with
``-s``). Proven by tests/test_log_scan.py.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# SUPIs (imsi-, nai-), GPSIs (msisdn-, extid-), PEIs, bare 15-digit IMSIs, IPv4, IPv6.
_IDENTITY = re.compile(
    r"(?P<id>\b(?:imsi|nai|msisdn|extid|imei|imeisv)-[0-9A-Za-z@._+-]*[0-9A-Za-z])"
    r"|(?P<imsi>(?<![\w.~-])\d{15}(?![\w.]))"
    r"|(?P<v4>(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\w.]))"
    r"|(?P<v6>(?<![\w:.])(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}(?![\w:])"
    r"|(?<![\w:.])(?:[0-9A-Fa-f]{1,4}:){0,6}[0-9A-Fa-f]{0,4}::(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,6})?(?![\w:]))",
    re.IGNORECASE,
)
# Data directories of the stack's own services (subscriber.stack), whose logs (and Kafka's
# *.log segments, which hold the events themselves) are not log lines of ours.
_SERVICES = {("kafka",), ("temporal",), ("powerdns",)}
# Known lines whose numbers only look like an identity: granian names its worker threads by a
# 15-digit thread id ("[INFO] Spawning worker-1 with id: 139653496389888").
_BENIGN = re.compile(r"Spawning worker-\d+ with id: \d+")
_MAX_FINDINGS = 20


@dataclass(frozen=True)
class Finding:
    """One identity found in clear."""

    where: str
    kind: str
    value: str
    line: str


def _allowed(kind: str, value: str) -> bool:
    if kind not in ("v4", "v6"):
        return False
    try:
        return ipaddress.ip_address(value).is_loopback
    except ValueError:
        # "::" forms the address parser refuses (a C++ scope, "a::b" in a repr): not an address.
        return kind == "v6"


def scan_text(text: str, where: str) -> Iterator[Finding]:
    """Every SUPI, GPSI, IMSI or non-loopback address in ``text``."""
    for line in text.splitlines():
        for match in _IDENTITY.finditer(_BENIGN.sub("", line)):
            kind = match.lastgroup or "?"
            value = match.group(0)
            if not _allowed(kind, value):
                yield Finding(where, kind, value, line.strip()[:300])


def _stack_service_log(path: Path, base: Path) -> bool:
    parts = path.relative_to(base).parts[:-1]
    if parts[-1:] == ("control-plane",):  # subscriber.stack.kubernetes.cluster
        return True
    return any(
        re.fullmatch(r"stack\d*", part) is not None and parts[i + 1 : i + 2] in _SERVICES
        for i, part in enumerate(parts)
    )


def log_files(base: Path) -> Iterable[Path]:
    """The log files of our own processes under the session's temp directory."""
    if not base.exists():
        return []
    return sorted(p for p in base.rglob("*.log") if p.is_file() and not _stack_service_log(p, base))


class LogScan:
    """Collects the captured output of every test phase and scans it at the end of the session."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.findings: list[Finding] = []
        self.lines = 0

    def _add(self, text: str, where: str) -> None:
        self.lines += text.count("\n") + 1
        self.findings.extend(scan_text(text, where))

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Scan what pytest captured during this phase of this test."""
        for title, content in report.sections:
            if title.startswith("Captured"):
                self._add(content, f"{report.nodeid} [{title}]")

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Scan the log files of our subprocesses, then fail the session on any finding."""
        factory = getattr(self.config, "_tmp_path_factory", None)
        base = factory.getbasetemp() if factory is not None else None
        if base is not None:
            for path in log_files(base):
                self._add(path.read_text(errors="replace"), str(path.relative_to(base)))
        if not self.findings:
            return
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        lines = [
            f"log scan: {len(self.findings)} identities in clear in {self.lines} log lines:",
            *(
                f"  {f.where}: {f.kind} {f.value!r} in: {f.line}"
                for f in self.findings[:_MAX_FINDINGS]
            ),
        ]
        if reporter is not None:
            reporter.write_line("\n".join(lines), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_configure(config: pytest.Config) -> None:
    """Register the scan when this module is loaded with ``-p tests.support.log_scan``."""
    if not config.pluginmanager.has_plugin("log-scan"):
        config.pluginmanager.register(LogScan(config), "log-scan")
