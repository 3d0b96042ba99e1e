"""``subscriber policy check``: exit 0 with a summary, exit 1 with every problem."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from subscriber.cli import main
from tests.support.kube import worked_example
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


def test_kubernetes_clusters_are_checked_with_their_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The worked example passes with its files and the summary names each cluster's access."""
    topology = worked_example(tmp_path)
    assert main(["policy", "check", str(topology)]) == 0
    out = capsys.readouterr().out
    assert "kubernetes: namespace edge-apps, endpoint node_port, credentials from kubeconfig" in out
    assert "endpoint load_balancer, credentials from token_file and ca_file" in out


@pytest.mark.parametrize(
    ("breakage", "problem"),
    [
        (
            lambda d: (d / "edge-b.token").unlink(),
            "clusters[1].kubernetes: cannot use its Kubernetes credentials: *edge-b.token not",
        ),
        (
            lambda d: (d / "edge-a-ca.crt").unlink(),
            "clusters[0].kubernetes: cannot use its "
            "Kubernetes credentials: *edge-a-ca.crt not found",
        ),
        (
            lambda d: (d / "edge-a.kubeconfig").write_text("contexts: []\nclusters: []\n"),
            "clusters[0].kubernetes: *Context 'subscriber@edge-a' not found",
        ),
        (lambda d: (d / "web.yaml").unlink(), "applications[0].workload: cannot read web.yaml"),
        (
            lambda d: (d / "web.yaml").write_text(
                (d / "web.yaml").read_text().replace("replicas: 2", "replicas: 2\n  paused: 3")
            ),
            "applications[0].workload: workload template web.yaml: not a valid object",
        ),
        (
            lambda d: (d / "edge-b-ca.crt").write_text("-----BEGIN NOTHING-----\n"),
            "clusters[1].kubernetes: cannot use its Kubernetes credentials: *holds no PEM",
        ),
        (
            lambda d: (d / "web.yaml").write_text("kind: Secret\n"),
            "applications[0].workload: workload template web.yaml: must hold one apps/v1",
        ),
    ],
)
def test_kubernetes_problems_exit_1_with_their_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], breakage: Any, problem: str
) -> None:
    """A missing credential file, context or template is found before any cluster is called."""
    topology = worked_example(tmp_path)
    breakage(tmp_path)
    assert main(["policy", "check", str(topology)]) == 1
    err = capsys.readouterr().err
    pattern = re.escape(f"subscriber: {topology}: {problem}").replace(r"\*", ".*")
    assert re.match(pattern, err), err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
