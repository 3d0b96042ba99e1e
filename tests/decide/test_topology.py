"""Topology files: mapping cells to zones, shortest paths, and precise validation errors."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from subscriber.decide.topology import (
    ClusterState,
    parse_topology,
    shortest_paths,
    with_cluster,
)
from subscriber.decide.yamldoc import yaml_path
from subscriber.errors import PolicyUnavailable
from subscriber.events import Cell
from tests.support.policy import EXAMPLE_TOPOLOGY, at, example_doc, up_path


def test_example_topology_loads() -> None:
    """The shipped example has the free5GC PLMN, two towers with their edge clusters, and apps."""
    topo = parse_topology(EXAMPLE_TOPOLOGY.read_bytes())
    assert topo.plmn == "20893"
    assert topo.cells[("20893", "000001", "000000010")] == "zone-tower-1"
    assert topo.cells[("20893", "000002", "000000020")] == "zone-tower-2"
    assert topo.clusters["edge-1"].zone == "zone-tower-1"
    assert topo.clusters["edge-2"].zone == "zone-tower-2"
    assert topo.apps["video-analytics"].stateful
    assert topo.apps["video-analytics"].latency_budget_ms == 10


@pytest.mark.parametrize(
    ("cell", "zone"),
    [
        (Cell(rat="NR", plmn="20893", tac="000001", cell_id="000000010"), "zone-tower-1"),
        (Cell(rat="NR", plmn="20893", tac="000003", cell_id="000000030"), "zone-tower-3"),
        (Cell(rat="EUTRA", plmn="20893", tac="000003", cell_id="0000301"), "zone-tower-3"),
        (Cell(rat="NR", plmn="20893", tac="000003", cell_id="000000099"), "zone-suburb"),
        (Cell(rat="NR", plmn="20893", tac="000004"), "zone-highway"),
        (Cell(rat="NR", plmn="20893", tac="000001", cell_id="000000099"), None),
        (Cell(rat="NR", plmn="00101", tac="000001", cell_id="000000010"), None),
    ],
)
def test_zone_of_cell(cell: Cell, zone: str | None) -> None:
    """Cells map to their own zone, else to their tracking area's, else to nothing."""
    assert parse_topology(EXAMPLE_TOPOLOGY.read_bytes()).zone_of_cell(cell) == zone


def test_zone_of_event() -> None:
    """Events map through their cell, or through the DNAI of an UP_PATH_CH change."""
    topo = parse_topology(EXAMPLE_TOPOLOGY.read_bytes())
    assert topo.zone_of(at("tower-2", 0.0)) == "zone-tower-2"
    assert topo.zone_of(up_path("mec-metro", 0.0)) == "zone-suburb"
    assert topo.zone_of(up_path("unknown-dnai", 0.0)) is None


def test_cluster_dnais_map_to_the_cluster_zone() -> None:
    """A cluster's DNAIs are kept in order and locate an UP_PATH_CH event in its zone."""
    topo = parse_topology(EXAMPLE_TOPOLOGY.read_bytes())
    assert topo.clusters["edge-2"].dnais == ("mec-tower-2",)
    assert topo.clusters["central-1"].dnais == ()
    assert topo.dnais["mec-tower-2"] == "zone-tower-2"
    assert topo.zone_of(up_path("mec-tower-2", 0.0)) == "zone-tower-2"


def test_steering_is_dns_unless_the_app_says_otherwise() -> None:
    """No steering means DNS; the short form names the way, the long one adds a deadline."""
    doc = example_doc()
    doc["applications"][0]["steering"] = "traffic_influence"
    doc["applications"][2]["steering"] = {"via": "both", "confirm_deadline_s": 3}
    doc["applications"][2]["required_labels"] = {"gpu": "true"}
    topo = parse_topology(yaml.safe_dump(doc))
    va, sink = topo.apps["video-analytics"].steering, topo.apps["telemetry-sink"].steering
    assert va is not None
    assert va.via.value == "traffic_influence"
    assert va.confirm_deadline_s == 10.0
    assert sink is not None
    assert (sink.via.value, sink.confirm_deadline_s) == ("both", 3.0)
    assert topo.apps["ar-guide"].steering is None


def test_latency_is_the_shortest_path() -> None:
    """Cluster latency from a zone is the shortest path over the link graph."""
    latency = parse_topology(EXAMPLE_TOPOLOGY.read_bytes()).latency_ms
    assert latency["zone-tower-1"]["edge-1"] == 2
    assert latency["zone-tower-1"]["regional-1"] == 8  # via edge-1
    assert latency["zone-tower-1"]["edge-2"] == 11  # the direct 9 ms backhaul beats 14 via metro
    assert latency["zone-tower-3"]["central-1"] == 35


def test_shortest_paths_unreachable_nodes_are_absent() -> None:
    """Dijkstra leaves out nodes with no path from the source."""
    dist = shortest_paths([("a", "b", 1.0), ("b", "c", 2.0), ("a", "c", 5.0), ("x", "y", 1)], ["a"])
    assert dist == {"a": {"a": 0.0, "b": 1.0, "c": 3.0}}


def test_yaml_path() -> None:
    """pydantic locations render as YAML paths."""
    assert yaml_path(("clusters", 2, "zone")) == "clusters[2].zone"
    assert yaml_path(("tracking_areas", 0, "cells", 1, "cell_id")) == (
        "tracking_areas[0].cells[1].cell_id"
    )
    assert yaml_path(()) == "(top level)"


def _edit(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(doc: dict[str, Any]) -> None:
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return apply


def _append(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda doc: doc[key].append(value)


INVALID = [
    (_edit(["clusters", 2, "zone"], "z9"), "clusters[2].zone: unknown zone 'z9'"),
    (
        _edit(["tracking_areas", 0, "cells", 1, "zone"], "z9"),
        "tracking_areas[0].cells[1].zone: unknown zone 'z9'",
    ),
    (_edit(["tracking_areas", 2, "zone"], "z9"), "tracking_areas[2].zone: unknown zone 'z9'"),
    (_edit(["dnais", "mec-metro"], "z9"), "dnais.mec-metro: unknown zone 'z9'"),
    (_edit(["links", 3, "b"], "edge-9"), "links[3].b: unknown zone or cluster 'edge-9'"),
    (_edit(["links", 0, "b"], "zone-tower-1"), "links[0]: links 'zone-tower-1' to itself"),
    (
        _append("links", {"a": "edge-1", "b": "zone-tower-1", "latency_ms": 1}),
        "links[10]: duplicate link between 'edge-1' and 'zone-tower-1'",
    ),
    (_edit(["links", 0, "latency_ms"], -1), "links[0].latency_ms: Input should be greater"),
    (
        _edit(["applications", 1, "allowed_clusters", 0], "edge-9"),
        "applications[1].allowed_clusters[0]: unknown cluster 'edge-9'",
    ),
    (_edit(["clusters", 1, "id"], "edge-1"), "clusters[1].id: 'edge-1' is already a cluster id"),
    (
        _edit(["clusters", 1, "id"], "zone-tower-1"),
        "clusters[1].id: 'zone-tower-1' is already a zone id",
    ),
    (_edit(["zones", 1, "id"], "zone-tower-1"), "zones[1].id: duplicate id 'zone-tower-1'"),
    (
        _edit(["applications", 1, "name"], "video-analytics"),
        "applications[1].name: duplicate application 'video-analytics'",
    ),
    (_edit(["clusters", 0, "id"], "Edge 1"), "clusters[0].id: 'Edge 1' is not an id"),
    (
        _edit(["tracking_areas", 0, "tac"], 1),
        "tracking_areas[0].tac: must be a quoted string of 4 or 6 hex digits (YAML read it as "
        "int 1; write it in quotes)",
    ),
    (_edit(["tracking_areas", 0, "tac"], "00001"), "tracking_areas[0].tac: '00001' is not 4 or 6"),
    (
        _edit(["tracking_areas", 0, "cells", 0, "cell_id"], "0000010"),
        "tracking_areas[0].cells[0].cell_id: NR cell ids have 9 hex digits",
    ),
    (
        _edit(["tracking_areas", 0, "cells", 0, "cell_id"], "00000001g"),
        "tracking_areas[0].cells[0].cell_id: '00000001g' is not 7 or 9 hex digits",
    ),
    (
        _edit(["tracking_areas", 1, "cells", 0, "cell_id"], "000000010"),
        None,  # the same cell id in another tracking area is another cell
    ),
    (
        _edit(["tracking_areas", 0, "cells", 1, "cell_id"], "000000010"),
        "tracking_areas[0].cells[1].cell_id: duplicate cell '000000010'",
    ),
    (_edit(["tracking_areas", 1, "tac"], "000001"), "tracking_areas[1].tac: duplicate tracking"),
    (
        _append("tracking_areas", {"tac": "000009"}),
        "tracking_areas[4]: maps nothing: give it a 'zone', 'cells', or both",
    ),
    (_edit(["plmn", "mnc"], 93), "plmn.mnc: must be a quoted string of 2 or 3 digits"),
    (_edit(["clusters", 0, "state"], "broken"), "clusters[0].state: Input should be 'active'"),
    (_edit(["clusters", 0, "capacity", "cpu"], 0), "clusters[0].capacity.cpu: Input should be"),
    (
        _edit(["clusters", 0, "colour"], "red"),
        "clusters[0].colour: unknown key 'colour'; expected one of: id, site, zone, state,",
    ),
    (_edit(["clusters", 1, "id"], "edge_2"), "clusters[1].id: 'edge_2' is not an id: use a DNS"),
    (_edit(["applications", 0, "name"], "video.analytics"), "applications[0].name: 'video.an"),
    (_edit(["clusters", 2, "address"], "edge-3.example.net"), "clusters[2].address: 'edge-3.e"),
    (_edit(["clusters", 2, "address"], "::1"), "clusters[2].address: '::1' is not an IPv4"),
    (
        lambda doc: doc["clusters"][3].pop("address"),
        "clusters[3].address: required: the IPv4 address 'regional-1' serves its instances at",
    ),
    (_edit(["clusters"], {"edge-1": {}}), "clusters: expected a list ('- item' lines), got a map"),
    (_edit(["zones", 0], "zone-x"), "zones[0]: expected a mapping (key: value lines), got the te"),
    (_edit(["clusters"], []), "clusters: List should have at least 1 item"),
    (_edit(["applications", 0, "latency_budget_ms"], 0), "applications[0].latency_budget_ms:"),
    (
        _edit(["clusters", 1, "dnais"], ["mec-tower-1"]),
        "clusters[1].dnais[0]: DNAI 'mec-tower-1' already reaches cluster 'edge-1'",
    ),
    (
        _edit(["clusters", 0, "dnais"], ["mec-tower-1", "mec-tower-1"]),
        "clusters[0].dnais[1]: DNAI 'mec-tower-1' already reaches cluster 'edge-1'",
    ),
    (
        _edit(["clusters", 0, "dnais"], ["mec-metro"]),
        "clusters[0].dnais[0]: dnais.mec-metro puts DNAI 'mec-metro' in zone 'zone-suburb', "
        "but cluster 'edge-1' stands in zone 'zone-tower-1'",
    ),
    (_edit(["clusters", 0, "dnais"], ["mec tower"]), "clusters[0].dnais[0]: 'mec tower' is not"),
    (_edit(["clusters", 0, "dnais"], ["-mec"]), "clusters[0].dnais[0]: '-mec' is not a DNAI"),
    (_edit(["clusters", 0, "dnais"], ["m" * 64]), "clusters[0].dnais[0]: 'mmmm"),
    (
        _edit(["applications", 1, "steering"], "traffic_influence"),
        "applications[1].steering: traffic_influence needs a DNAI on every cluster the app may "
        "run on; cluster 'edge-3' has none (give it dnais)",
    ),
    (
        _edit(["applications", 0, "steering"], {"via": "both", "confirm_deadline_s": 5}),
        None,  # every gpu cluster it may run on has a DNAI
    ),
    (_edit(["applications", 0, "steering"], "carrier-pigeon"), "applications[0].steering.via:"),
    (
        _edit(["applications", 0, "steering"], {"via": "dns", "confirm_deadline_s": 0}),
        "applications[0].steering.confirm_deadline_s: Input should be greater than 0",
    ),
]


@pytest.mark.parametrize(("edit", "message"), INVALID)
def test_validation_errors_name_the_yaml_path(
    edit: Callable[[dict[str, Any]], None], message: str | None
) -> None:
    """Each broken topology is refused with a message naming the YAML path of the problem."""
    doc = example_doc()
    edit(doc)
    text = yaml.safe_dump(doc)
    if message is None:
        parse_topology(text)
        return
    with pytest.raises(PolicyUnavailable) as caught:
        parse_topology(text, source="topo.yaml")
    lines = str(caught.value).splitlines()
    # file:line: path: message, the line being where the value (or its section) is written
    assert any(re.match(r"topo\.yaml:\d+: " + re.escape(message), line) for line in lines), lines


def test_every_problem_is_reported_at_once() -> None:
    """Several broken references are listed together, one line each."""
    doc = example_doc()
    doc["clusters"][0]["zone"] = "z1"
    doc["clusters"][1]["zone"] = "z2"
    with pytest.raises(PolicyUnavailable) as caught:
        parse_topology(yaml.safe_dump(doc, sort_keys=False))
    text = yaml.safe_dump(doc, sort_keys=False).splitlines()
    first, second = (
        i + 1 for i, line in enumerate(text) if line.strip() in ("zone: z1", "zone: z2")
    )
    assert str(caught.value).splitlines() == [
        f"topology:{first}: clusters[0].zone: unknown zone 'z1'",
        f"topology:{second}: clusters[1].zone: unknown zone 'z2'",
    ]


def test_unquoted_tac_in_yaml_text_is_explained() -> None:
    """A TAC written without quotes (YAML turns 000001 into 1) gets a how-to-fix message."""
    text = EXAMPLE_TOPOLOGY.read_text().replace('tac: "000004"', "tac: 000004")
    with pytest.raises(PolicyUnavailable, match=r"tracking_areas\[3\]\.tac: .*write it in quotes"):
        parse_topology(text)


def test_yaml_syntax_error_names_line_and_column() -> None:
    """Broken YAML is reported with its line and column."""
    with pytest.raises(PolicyUnavailable, match=r"t\.yaml:2:\d+: not valid YAML"):
        parse_topology("plmn: {mcc: '208'\nzones: [", source="t.yaml")


def test_empty_file_lists_the_missing_sections() -> None:
    """An empty file is refused with every required section named."""
    with pytest.raises(PolicyUnavailable) as caught:
        parse_topology("")
    text = str(caught.value)
    for section in ("plmn", "zones", "clusters"):
        assert f"topology: {section}: required, and missing" in text


def test_warnings_flag_unreachable_clusters_and_uncovered_zones() -> None:
    """Legal but suspicious topologies load with warnings."""
    doc = example_doc()
    doc["links"] = [link for link in doc["links"] if "central-1" not in (link["a"], link["b"])]
    topo = parse_topology(yaml.safe_dump(doc))
    assert "cluster 'central-1' is not reachable from any zone: give it a link" in topo.warnings
    assert any("no cluster within budget from zone 'zone-highway'" in w for w in topo.warnings)


def test_with_cluster_changes_state_and_refuses_unknown_clusters() -> None:
    """with_cluster returns a changed copy and leaves the original alone."""
    topo = parse_topology(EXAMPLE_TOPOLOGY.read_bytes())
    changed = with_cluster(topo, "edge-2", state=ClusterState.DRAINING)
    assert changed.clusters["edge-2"].state is ClusterState.DRAINING
    assert topo.clusters["edge-2"].state is ClusterState.ACTIVE
    with pytest.raises(PolicyUnavailable, match="no cluster 'edge-9'"):
        with_cluster(topo, "edge-9", state=ClusterState.DRAINING)
