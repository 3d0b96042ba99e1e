"""The session-wide log scan (tests/support/log_scan.py) finds identities in clear, only them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.log_scan import scan_text

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("callback supi=imsi-208930000000001 status=204", "id"),
        ("ue=nai-alice@example.com", "id"),
        ("gpsi=msisdn-33612345678", "id"),
        ("externalId=extid-ue1@example.com", "id"),
        ("key 208930000000001 accepted", "imsi"),
        ("ue_address=10.60.0.1", "v4"),
        ("peer ('192.0.2.7', 80)", "v4"),
        ("ue_address=2001:db8::17", "v6"),
        ("addr fe80:0:0:0:0:0:0:1", "v6"),
    ],
)
def test_identities_in_clear_are_found(line: str, kind: str) -> None:
    """SUPIs, GPSIs, bare IMSIs and non-loopback addresses are each reported."""
    (finding,) = scan_text(line, "here")
    assert finding.kind == kind


@pytest.mark.parametrize(
    "line",
    [
        "ue=~0123456789ab subscription=~a1b2c3d4e5f6 status=204",
        "Connect call failed ('127.0.0.1', 54761)",
        "listening on [::1]:8800 and 127.0.2.1:9000",
        "2026-11-26T10:27:23.123456Z [info] stack.ready ready_s=3.2",
        "ingest_ns=1782893723123456789 offset=123456789012",
        "event_id=3f2a9c1e-58b1-4c0b-9f7e-0a1b2c3d4e5f version=0.1.0",
        "[INFO] Spawning worker-1 with id: 139653496389888",
    ],
)
def test_pseudonyms_loopback_and_clock_times_pass(line: str) -> None:
    """Pseudonyms, loopback addresses of our services, times, ids and versions are not flagged."""
    assert list(scan_text(line, "here")) == []


LEAKS = {
    "structlog_supi": """
        import structlog
        def test_leak():
            structlog.get_logger().info("callback", supi="imsi-208930000000001")
    """,
    "stdlib_ue_address": """
        import logging
        def test_leak():
            logging.getLogger("aiokafka").warning("peer %s went away", "10.60.0.1")
    """,
    "subprocess_log_file": """
        def test_leak(tmp_path):
            (tmp_path / "serve.log").write_text('{"event": "callback", "gpsi": "msisdn-3361"}')
    """,
    "log_file_beside_a_control_plane": """
        def test_leak(tmp_path):
            (tmp_path / "control-plane-notes").mkdir()
            (tmp_path / "control-plane-notes" / "x.log").write_text("ue 10.60.0.1")
    """,
    "clean": """
        import logging
        import structlog
        from subscriber.logs import pseudonym
        def test_clean(tmp_path):
            structlog.get_logger().info("callback", ue=pseudonym("imsi-208930000000001"))
            logging.getLogger("aiokafka").warning("broker 127.0.0.1:9092 away")
            (tmp_path / "serve.log").write_text("consumer.event ue=~0123456789ab")
            stack = tmp_path / "stack0" / "kafka"
            stack.mkdir(parents=True)
            (stack / "00000000000000000000.log").write_text("imsi-208930000000001")
            control_plane = tmp_path / "kube0" / "a" / "control-plane"
            control_plane.mkdir(parents=True)
            (control_plane / "kube-apiserver.log").write_text("allocated clusterIPs 10.96.0.1")
    """,
}


@pytest.mark.parametrize("case", list(LEAKS))
def test_a_session_with_a_leak_fails_even_if_its_tests_pass(tmp_path: Path, case: str) -> None:
    """A session whose test logs a SUPI, GPSI or UE address exits 1; a clean one exits 0."""
    (tmp_path / "test_case.py").write_text(textwrap.dedent(LEAKS[case]))
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
    )
    result = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-p", "tests.support.log_scan",
            "-p", "no:cacheprovider", "-c", str(tmp_path / "pytest.ini"),
            "--rootdir", str(tmp_path), "--basetemp", str(tmp_path / "base"),
            str(tmp_path / "test_case.py"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    # The inner session's leaking log file must not fail this (outer) session's own scan.
    shutil.rmtree(tmp_path / "base")
    if case == "clean":
        assert result.returncode == 0, result.stdout
        assert "log scan" not in result.stdout
    else:
        assert result.returncode == 1, result.stdout
        assert "1 passed" in result.stdout
        assert "identities in clear" in result.stdout
