"""The kubernetes section of a topology's clusters, the workload of its apps, and live capacity."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from subscriber.decide.engine import PolicyHolder
from subscriber.decide.topology import (
    ClusterReading,
    parse_topology,
    with_readings,
)
from subscriber.errors import PolicyUnavailable
from subscriber.settings import PolicySettings

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "kubernetes" / "topology.yaml"


def example() -> dict[str, Any]:
    """The worked example of docs/relocation.md, as data."""
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return doc


def problems_of(doc: dict[str, Any]) -> str:
    """The error text of an invalid topology."""
    with pytest.raises(PolicyUnavailable) as err:
        parse_topology(yaml.safe_dump(doc), source="t.yaml")
    return str(err.value)


def test_worked_example_is_valid() -> None:
    """Both ways in (kubeconfig, token and CA) and both endpoint modes parse."""
    topo = parse_topology(EXAMPLE.read_bytes())
    a, b = (c.kubernetes for c in topo.doc.clusters)
    assert a is not None
    assert a.kubeconfig == "edge-a.kubeconfig"
    assert a.endpoint == "node_port"
    assert a.node_address == "203.0.113.10"
    assert b is not None
    assert b.token_file == "edge-b.token"
    assert b.endpoint == "load_balancer"


@pytest.mark.parametrize(
    ("kubernetes", "problem"),
    [
        ({"namespace": "x"}, "give kubeconfig, or server with token_file and ca_file"),
        ({"kubeconfig": "k", "token_file": "t"}, "not both"),
        ({"server": "https://h:6443", "token_file": "t"}, "give kubeconfig, or server"),
        ({"server": "http://h:6443", "token_file": "t", "ca_file": "c"}, "not an https:// URL"),
        (
            {"server": "https://h:6443", "token_file": "t", "ca_file": "c", "context": "x"},
            "context goes with kubeconfig",
        ),
        ({"kubeconfig": "k", "namespace": "Edge_Apps"}, "not a namespace name"),
        ({"kubeconfig": "k", "namespace": "n" * 64}, "not a namespace name"),
        ({"kubeconfig": "k", "endpoint": "ingress"}, "endpoint"),
        ({"kubeconfig": "k", "node_address": "edge-a.example"}, "not an IPv4 address"),
        (
            {"kubeconfig": "k", "token": "s3cret"},
            "token: unknown key 'token'; expected one of: kubeconfig",
        ),
    ],
)
def test_bad_kubernetes_sections_name_their_path(kubernetes: dict[str, Any], problem: str) -> None:
    """Each mistake is reported at clusters[0].kubernetes, and a secret inline is refused."""
    doc = example()
    doc["clusters"][0]["kubernetes"] = kubernetes
    text = problems_of(doc)
    assert re.search(r"t\.yaml:\d+: clusters\[0\]\.kubernetes", text), text
    assert problem in text


def test_app_that_may_run_on_kubernetes_needs_a_workload() -> None:
    """Without a template an app could be placed where nothing can deploy it: refused at load."""
    doc = example()
    del doc["applications"][0]["workload"]
    assert "applications[0].workload: required" in problems_of(doc)
    doc["applications"][0]["allowed_clusters"] = []
    doc["clusters"].append(
        {
            "id": "plain",
            "site": "s",
            "zone": "zone-north",
            "capacity": {"cpu": 1, "memory_mib": 1, "app_slots": 1},
            "address": "127.0.10.9",
        }
    )
    doc["applications"][0]["allowed_clusters"] = ["plain"]
    parse_topology(yaml.safe_dump(doc))


def test_readings_replace_capacity_and_load_of_the_clusters_read() -> None:
    """A reading replaces the topology's figures; unread clusters keep theirs; empty is full."""
    topo = parse_topology(EXAMPLE.read_bytes())
    live = with_readings(
        topo,
        {
            "edge-a": ClusterReading(
                cpu=8, memory_mib=16384, cpu_requested=1.5, memory_requested_mib=1024, apps=2
            ),
            "edge-b": ClusterReading(
                cpu=0, memory_mib=0, cpu_requested=0, memory_requested_mib=0, apps=0
            ),
        },
    )
    a, b = live.clusters["edge-a"], live.clusters["edge-b"]
    assert (a.cpu, a.memory_mib, a.cpu_used, a.memory_used_mib, a.apps_used) == (
        8,
        16384,
        1.5,
        1024,
        2,
    )
    assert b.cpu_used == b.cpu == 16
    assert with_readings(topo, {}) is topo


READING = ClusterReading(
    cpu=2, memory_mib=4096, cpu_requested=1.9, memory_requested_mib=100, apps=1
)


async def holder_with(tmp_path: Path, from_clusters: bool) -> PolicyHolder:
    """A policy holder on the worked example, with ``capacity.from_clusters`` set as given."""
    (tmp_path / "topology.yaml").write_bytes(EXAMPLE.read_bytes())
    (tmp_path / "policy.yaml").write_text(
        f"capacity: {{from_clusters: {str(from_clusters).lower()}}}\n"
    )
    return PolicyHolder(
        PolicySettings(
            topology_file=tmp_path / "topology.yaml", policy_file=tmp_path / "policy.yaml"
        )
    )


async def test_holder_uses_readings_only_when_the_policy_asks(tmp_path: Path) -> None:
    """from_clusters on: the running bundle sees the reading (and a new version); off: not."""
    async with await holder_with(tmp_path, True) as holder:
        base = holder.bundle
        holder.update_capacity({"edge-a": READING})
        live = holder.bundle
        assert live.version != base.version
        assert live.topology.clusters["edge-a"].cpu == 2
        # A nearly full edge-a is no longer a candidate for a 1-CPU app (cap 80 %).
        assert live.evaluation("zone-north", "ar-guide", None).best.cluster == "edge-b"  # type: ignore[union-attr]
        assert base.evaluation("zone-north", "ar-guide", None).best.cluster == "edge-a"  # type: ignore[union-attr]
        holder.update_capacity({})
        assert holder.bundle.version == base.version
    async with await holder_with(tmp_path, False) as holder:
        holder.update_capacity({"edge-a": READING})
        assert holder.bundle.topology.clusters["edge-a"].cpu == 16


async def test_reloaded_files_keep_the_readings(tmp_path: Path) -> None:
    """A topology edit reloads the files; the live readings still apply to the new version."""
    async with await holder_with(tmp_path, True) as holder:
        holder.update_capacity({"edge-a": READING})
        topo = tmp_path / "topology.yaml"
        topo.write_text(topo.read_text().replace("app_slots: 20}", "app_slots: 21}", 1))
        assert await holder.reload()
        assert holder.bundle.topology.clusters["edge-a"].cpu == 2
        assert holder.bundle.topology.clusters["edge-a"].app_slots == 21
