"""``subscriber policy check``: exit 0 with a summary, exit 1 with every problem."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from subscriber.cli import main
from subscriber.decide.cli import summarize, validate
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
    line = bad.read_text().splitlines().index("    zone: z9") + 1
    assert f"{bad}:{line}: clusters[2].zone: unknown zone 'z9'" in err


def test_invalid_policy_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A broken policy file exits 1 naming its problem."""
    bad = tmp_path / "policy.yaml"
    bad.write_text("dwell: {min_reports: 0}\n")
    rc = main(["policy", "check", str(EXAMPLE_TOPOLOGY), "--policy", str(bad)])
    assert rc == 1
    assert f"{bad}:1: dwell.min_reports: Input should be greater than or equal to 1" in (
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


def test_every_problem_of_every_file_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Topology, policy and instances problems all come out in one run, one line each, each
    naming its file, line and YAML path; nothing but those lines, and no traceback."""
    topology = tmp_path / "topology.yaml"
    topology.write_text(
        EXAMPLE_TOPOLOGY.read_text()
        .replace("id: edge-3", "id: edge_3")
        .replace("address: 127.0.20.1", "address: regional.example.net")
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text("dwell:\n  min_reports: 0\nping_pong: [600]\n")
    instances = tmp_path / "instances.yaml"
    instances.write_text("instances:\n  - {ue: '208930000000001', app: ar-guide, clsuter: x}\n")
    argv = ["policy", "check", str(topology), "--policy", str(policy)]
    rc = main([*argv, "--instances", str(instances)])
    err = capsys.readouterr().err.splitlines()
    assert rc == 1
    assert "Traceback" not in "\n".join(err)
    wanted = [
        rf"{topology}:\d+: clusters\[2\]\.id: 'edge_3' is not an id: use a DNS label",
        rf"{topology}:\d+: clusters\[3\]\.address: 'regional\.example\.net' is not an IPv4",
        rf"{policy}:2: dwell\.min_reports: Input should be greater than or equal to 1",
        rf"{policy}:3: ping_pong: expected a mapping \(key: value lines\), got a list",
        rf"{instances}:2: instances\[0\]\.ue: '208930000000001' is not a SUPI or GPSI",
        rf"{instances}:2: instances\[0\]\.instance: required, and missing",
        rf"{instances}:2: instances\[0\]\.clsuter: unknown key 'clsuter'; expected one of: ue, "
        "app, instance, cluster",
    ]
    for pattern in wanted:
        assert any(re.fullmatch("subscriber: " + pattern + ".*", line) for line in err), (
            pattern,
            err,
        )
    assert all(line.startswith("subscriber: ") for line in err)
    assert "TopologyDoc" not in "\n".join(err)
    assert "InstanceDoc" not in "\n".join(err)


def test_a_cluster_without_address_is_refused_with_what_to_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The daemon could not move an app to it, so the check (and the daemon) refuse it."""
    topology = tmp_path / "topology.yaml"
    topology.write_text(EXAMPLE_TOPOLOGY.read_text().replace("    address: 127.0.30.1\n", ""))
    assert main(["policy", "check", str(topology)]) == 1
    assert "clusters[4].address: required: the IPv4 address 'central-1' serves" in (
        capsys.readouterr().err
    )


def test_the_summary_shows_the_gates_stateful_apps_get(capsys: pytest.CaptureFixture[str]) -> None:
    """The stateful factor stretches dwell time, dwell reports and cooldown: all three shown."""
    assert main(["policy", "check", str(EXAMPLE_TOPOLOGY), "--policy", str(EXAMPLE_POLICY)]) == 0
    out = capsys.readouterr().out
    assert "dwell 5 s or 3 reports, ping-pong 600 s, cooldown 60 s" in out
    assert "stateful apps (x2): dwell 10 s or 6 reports, ping-pong 600 s, cooldown 120 s" in out


_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True),
    st.text(max_size=12), st.sampled_from(["edge-1", "zone-tower-1", "127.0.0.1", "000001"]),
)  # fmt: skip
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += _paths(value, (*prefix, i))
    return out


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    doc[path[0]] = _replace(doc[path[0]], path[1:], value)
    return doc


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_input_makes_the_check_crash(data: st.DataObject, tmp_path_factory: Any) -> None:
    """Any value anywhere in the topology, policy or instances, or any text at all, gives a
    valid result or problems that each name their file: never an exception."""
    tmp = tmp_path_factory.mktemp("fuzz")
    files = {}
    for name, base in (
        ("topology", yaml.safe_load(EXAMPLE_TOPOLOGY.read_text())),
        ("policy", yaml.safe_load(EXAMPLE_POLICY.read_text())),
        ("instances", {"instances": [
            {"ue": "imsi-208930000000001", "app": "ar-guide", "instance": "a", "cluster": "edge-1"}
        ]}),
    ):  # fmt: skip
        path = tmp / f"{name}.yaml"
        if data.draw(st.booleans(), label=f"{name} as raw text"):
            path.write_bytes(
                data.draw(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
            )
        else:
            where = data.draw(st.sampled_from(_paths(base)), label=f"{name} path")
            doc = _replace(base, where, data.draw(_VALUES, label="value"))
            path.write_text(yaml.safe_dump(doc, allow_unicode=True))
        files[name] = path
    bundle, _, problems = validate(files["topology"], files["policy"], files["instances"])
    assert (bundle is None) == bool(
        [p for p in problems if not p.startswith(str(files["instances"]))]
    )
    for line in problems:
        assert line.startswith(tuple(str(p) for p in files.values())), line
        assert "\n" not in line
    if bundle is not None:
        summarize(bundle)  # what a valid result prints must not fail either


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
    pattern = (
        re.escape(f"subscriber: {topology}:") + r"\d+: " + re.escape(problem).replace(r"\*", ".*")
    )
    assert re.match(pattern, err), err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
