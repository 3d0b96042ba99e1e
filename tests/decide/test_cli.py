"""``subscriber policy check``: exit 0 with a summary, exit 1 with every problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from subscriber.cli import main
from tests.support.policy import EXAMPLE_POLICY, EXAMPLE_TOPOLOGY


def test_valid_files_print_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    """A valid topology and policy exit 0 and summarize zones, clusters, apps and rules."""
    rc = main(["policy", "check", str(EXAMPLE_TOPOLOGY), "--policy", str(EXAMPLE_POLICY)])
    out = capsys.readouterr().out
    assert rc == 0
    assert f"{EXAMPLE_TOPOLOGY}: valid, with {EXAMPLE_POLICY}" in out
    assert "PLMN 20893: 5 zones, 4 tracking areas, 6 cells, 3 DNAIs" in out
    assert "edge-1: site tower-1, zone zone-tower-1, active" in out
    assert (
        "video-analytics (10 ms, stateful): zone-tower-1 -> edge-1; zone-tower-2 -> edge-2" in out
    )
    assert "rules: stay-if-OK on, capacity cap 80%" in out
    assert "warning: application 'video-analytics': no cluster within budget" in out


def test_invalid_topology_exits_1_with_the_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A broken reference exits 1 and prints the file and YAML path of the problem."""
    bad = tmp_path / "topology.yaml"
    bad.write_text(EXAMPLE_TOPOLOGY.read_text().replace("zone: zone-tower-3\n", "zone: z9\n"))
    rc = main(["policy", "check", str(bad)])
    err = capsys.readouterr().err
    assert rc == 1
    assert f"{bad}: clusters[2].zone: unknown zone 'z9'" in err


def test_invalid_policy_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A broken policy file exits 1 naming its problem."""
    bad = tmp_path / "policy.yaml"
    bad.write_text("dwell: {min_reports: 0}\n")
    rc = main(["policy", "check", str(EXAMPLE_TOPOLOGY), "--policy", str(bad)])
    assert rc == 1
    assert f"{bad}: dwell.min_reports: Input should be greater than or equal to 1" in (
        capsys.readouterr().err
    )


def test_missing_file_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file that does not exist exits 1 and says so."""
    rc = main(["policy", "check", str(tmp_path / "nope.yaml")])
    assert rc == 1
    assert "nope.yaml: cannot read" in capsys.readouterr().err


def test_file_defaults_to_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without FILE, the topology file comes from settings.policy.topology_file."""
    monkeypatch.setenv("SUBSCRIBER_POLICY__TOPOLOGY_FILE", str(EXAMPLE_TOPOLOGY))
    assert main(["policy", "check"]) == 0
    assert "valid" in capsys.readouterr().out
    monkeypatch.delenv("SUBSCRIBER_POLICY__TOPOLOGY_FILE")
    assert main(["policy", "check"]) == 1
    assert "no topology file" in capsys.readouterr().err
