"""The MEC topology: coverage zones, edge clusters, the latency graph and the applications.

A topology file (YAML) is validated in two passes: pydantic checks the shape of each entry, then
:func:`compile_topology` checks the references between entries (a cell's zone exists, a link joins
known nodes, ...). Every problem is reported with the YAML path that holds it, e.g.
``clusters[2].zone: unknown zone 'z9'``.

The compiled :class:`Topology` is made of plain, immutable lookups built once: cell key to zone,
zone to the latency of every reachable cluster (Dijkstra from each zone over the link graph), so
the decision hot path never touches pydantic.
"""

from __future__ import annotations

import heapq
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from subscriber.decide.yamldoc import Source, invalid, read_yaml, validation_problems
from subscriber.errors import PolicyUnavailable
from subscriber.events import Cell, LocationEvent
from subscriber.relocation import DNS_LABEL, ContextPolicy, OnTransferFailure, SteeringPolicy

_HEX = frozenset("0123456789abcdef")


class ClusterState(StrEnum):
    """Whether a cluster takes new applications."""

    ACTIVE = "active"
    MAINTENANCE = "maintenance"
    DRAINING = "draining"


def _quoted(kind: str, lengths: tuple[int, ...], alphabet: frozenset[str]) -> Callable[[Any], str]:
    """A validator for digit strings that YAML would silently turn into numbers if unquoted."""
    wanted = " or ".join(str(n) for n in lengths)

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(
                f"must be a quoted string of {wanted} {kind} (YAML read it as "
                f"{type(value).__name__} {value!r}; write it in quotes)"
            )
        text = value.lower()
        if len(text) not in lengths or not set(text) <= alphabet:
            raise ValueError(f"{value!r} is not {wanted} {kind}")
        return text

    return check


def _identifier(value: str) -> str:
    # Cluster and app ids become parts of workflow ids, Kubernetes names and DNS names, and zone
    # ids share the cluster ids' namespace: one rule for all, the act layer's.
    if not DNS_LABEL.match(value):
        raise ValueError(
            f"{value!r} is not an id: use a DNS label, 1-63 lowercase letters, digits and "
            "inner '-' (ids end up in workflow ids and DNS names)"
        )
    return value


def _ipv4(value: str) -> str:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is not an IPv4 address (a hostname is not accepted: the app's DNS "
            "record points at this address)"
        ) from None
    return value


Ident = Annotated[str, AfterValidator(_identifier)]

_DNAI = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def _dnai(value: str) -> str:
    # TS 29.571 leaves a DNAI free text; it travels in NEF requests and in log fields.
    if not _DNAI.match(value):
        raise ValueError(
            f"{value!r} is not a DNAI: use 1-63 letters, digits, '-', '.', '_', starting with "
            "a letter or digit"
        )
    return value


Dnai = Annotated[str, AfterValidator(_dnai)]


def _steering(value: Any) -> Any:
    # ``steering: traffic_influence`` is short for ``steering: {via: traffic_influence}``.
    return {"via": value} if isinstance(value, str) else value


Tac = Annotated[str, BeforeValidator(_quoted("hex digits", (4, 6), _HEX))]
CellId = Annotated[str, BeforeValidator(_quoted("hex digits", (7, 9), _HEX))]
Mcc = Annotated[str, BeforeValidator(_quoted("digits", (3,), frozenset("0123456789")))]
Mnc = Annotated[str, BeforeValidator(_quoted("digits", (2, 3), frozenset("0123456789")))]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlmnDoc(_Doc):
    """A PLMN: mobile country code and mobile network code."""

    mcc: Mcc
    mnc: Mnc

    @property
    def key(self) -> str:
        """MCC followed by MNC, as :class:`subscriber.events.Cell` writes it."""
        return self.mcc + self.mnc


class CellDoc(_Doc):
    """One radio cell and the coverage zone it belongs to."""

    rat: Literal["NR", "EUTRA"] = "NR"
    cell_id: CellId = Field(description="NR: 9 hex digits; E-UTRA: 7 hex digits.")
    zone: str
    name: str | None = Field(None, description="Free text, e.g. the tower it is on.")

    @field_validator("cell_id")
    @classmethod
    def _length_matches_rat(cls, value: str, info: ValidationInfo) -> str:
        want = 9 if info.data.get("rat", "NR") == "NR" else 7
        if len(value) != want:
            raise ValueError(f"{info.data.get('rat')} cell ids have {want} hex digits")
        return value


class TrackingAreaDoc(_Doc):
    """A tracking area: a zone for the whole area, and/or zones for some of its cells."""

    tac: Tac
    plmn: PlmnDoc | None = Field(None, description="Defaults to the topology's PLMN.")
    zone: str | None = Field(None, description="Zone of every cell of the area not listed below.")
    cells: list[CellDoc] = []


class ZoneDoc(_Doc):
    """A coverage zone: the unit of location the policy reasons about."""

    id: Ident
    name: str | None = None


class Capacity(_Doc):
    """What a cluster offers."""

    cpu: float = Field(gt=0, description="Cores.")
    memory_mib: int = Field(gt=0)
    app_slots: int = Field(gt=0, description="How many application instances it may run.")


class Load(_Doc):
    """What a cluster (or an application) uses."""

    cpu: float = Field(0.0, ge=0)
    memory_mib: int = Field(0, ge=0)
    apps: int = Field(0, ge=0)


_DNS_LABEL = DNS_LABEL


def _namespace(value: str) -> str:
    if not _DNS_LABEL.match(value):
        raise ValueError(f"{value!r} is not a namespace name: 1-63 of a-z, 0-9 and inner '-'")
    return value


class KubernetesDoc(_Doc):
    """Makes a cluster a Kubernetes relocation target: its API, credentials and namespace.

    Credentials come from a kubeconfig file, or from ``server`` with ``token_file`` and
    ``ca_file``. Relative paths are read from the topology file's folder. No secret goes in the
    topology itself.
    """

    kubeconfig: str | None = Field(
        None, description="Kubeconfig file giving the API server, its CA and the credentials."
    )
    context: str | None = Field(None, description="Kubeconfig context; its current one if unset.")
    server: str | None = Field(
        None, description="API server URL (https://...), with token_file and ca_file."
    )
    token_file: str | None = Field(None, description="Bearer token file, e.g. a service account's.")
    ca_file: str | None = Field(
        None, description="CA bundle that signs the API server's certificate."
    )
    namespace: Annotated[str, AfterValidator(_namespace)] = Field(
        "default", description="Where the app's Deployment and Service go."
    )
    endpoint: Literal["node_port", "load_balancer"] = Field(
        "node_port",
        description="What the move steers to: a node address and the Service's node port, or "
        "the address the load balancer gave the Service.",
    )
    node_address: Annotated[str, AfterValidator(_ipv4)] | None = Field(
        None,
        description="node_port: the address to report (e.g. a virtual IP before the nodes); "
        "the first Ready node's InternalIP when unset.",
    )

    @model_validator(mode="after")
    def _one_way_in(self) -> KubernetesDoc:
        if self.kubeconfig is not None:
            if self.server or self.token_file or self.ca_file:
                raise ValueError("give kubeconfig, or server with token_file and ca_file, not both")
        elif not (self.server and self.token_file and self.ca_file):
            raise ValueError("give kubeconfig, or server with token_file and ca_file")
        elif self.context is not None:
            raise ValueError("context goes with kubeconfig")
        if self.server is not None and not re.fullmatch(r"https://[^/\s]+(/\S*)?", self.server):
            raise ValueError(f"server {self.server!r} is not an https:// URL")
        return self


class ClusterDoc(_Doc):
    """An edge or regional cluster that can run application instances."""

    id: Ident
    site: str
    zone: str = Field(description="The zone it stands in; link it to the graph with its latency.")
    state: ClusterState = ClusterState.ACTIVE
    capacity: Capacity
    load: Load = Load()
    labels: dict[str, str] = {}
    address: Annotated[str, AfterValidator(_ipv4)] | None = Field(
        None,
        description="IPv4 address the cluster's instances answer at; the app's DNS record "
        "points there. Required, but for a Kubernetes cluster, which reports it at deploy time.",
    )
    kubernetes: KubernetesDoc | None = Field(
        None, description="Deploy on it through its Kubernetes API (docs/relocation.md)."
    )
    dnais: list[Dnai] = Field(
        [],
        description="The DNAIs whose user-plane path reaches its instances (the local data "
        "network it stands in); traffic influence routes a UE's traffic to the first one.",
    )


class LinkDoc(_Doc):
    """An undirected link of the latency graph between two zones or clusters."""

    a: str
    b: str
    latency_ms: float = Field(ge=0)


class Needs(_Doc):
    """What one application instance needs."""

    cpu: float = Field(0.0, ge=0)
    memory_mib: int = Field(0, ge=0)


class AppDoc(_Doc):
    """An application that follows its users."""

    name: Ident
    latency_budget_ms: float = Field(gt=0)
    needs: Needs = Needs()
    allowed_clusters: list[str] | None = Field(None, description="Only these; all when unset.")
    required_labels: dict[str, str] = Field({}, description="A cluster must carry all of these.")
    stateful: bool = Field(False, description="Moving it costs a state transfer.")
    context_transfer: ContextPolicy | None = Field(
        None,
        description="How a move treats the user context of this app when it registers with the "
        "AMS (ETSI GS MEC 021): deadline_s (30) and on_failure: abort (the default for "
        "stateful apps) or move_without_context (the default for the others).",
    )
    workload: str | None = Field(
        None,
        description="Template of its Deployment and Service, for clusters with a kubernetes "
        "section; relative to the topology file's folder.",
    )
    steering: Annotated[SteeringPolicy | None, BeforeValidator(_steering)] = Field(
        None,
        description="How traffic follows a move: dns (the default), traffic_influence (the "
        "NEF routes the UE's user plane to the target cluster's DNAI) or both; a mapping "
        "also takes confirm_deadline_s (docs/relocation.md).",
    )


class TopologyDoc(_Doc):
    """The topology file as written."""

    plmn: PlmnDoc
    zones: list[ZoneDoc] = Field(min_length=1)
    tracking_areas: list[TrackingAreaDoc] = []
    dnais: dict[str, str] = Field({}, description="DNAI -> zone, for SMF UP_PATH_CH events.")
    clusters: list[ClusterDoc] = Field(min_length=1)
    links: list[LinkDoc] = []
    applications: list[AppDoc] = []


@dataclass(frozen=True, slots=True)
class Cluster:
    """A cluster as the hot path sees it."""

    id: str
    site: str
    zone: str
    state: ClusterState
    cpu: float
    memory_mib: int
    app_slots: int
    cpu_used: float
    memory_used_mib: int
    apps_used: int
    labels: Mapping[str, str]
    address: str | None
    dnais: tuple[str, ...] = ()
    """The DNAIs that reach it; traffic influence steers to the first."""


@dataclass(frozen=True, slots=True)
class App:
    """An application as the hot path sees it."""

    name: str
    latency_budget_ms: float
    cpu: float
    memory_mib: int
    allowed: frozenset[str] | None
    required_labels: tuple[tuple[str, str], ...]
    stateful: bool
    context: ContextPolicy = field(default_factory=ContextPolicy)
    """How a move treats the user context (the topology's, or the default for its kind)."""
    steering: SteeringPolicy | None = None
    """How traffic follows a move; None is DNS."""

    def allows(self, cluster: Cluster) -> bool:
        """Whether the app may run on ``cluster`` (allow-list and labels)."""
        if self.allowed is not None and cluster.id not in self.allowed:
            return False
        return all(cluster.labels.get(k) == v for k, v in self.required_labels)


@dataclass(frozen=True, slots=True)
class Topology:
    """The compiled topology: immutable lookups built once at load."""

    doc: TopologyDoc
    plmn: str
    zones: tuple[str, ...]
    cells: Mapping[tuple[str, str, str], str]
    tracking_areas: Mapping[tuple[str, str], str]
    dnais: Mapping[str, str]
    """DNAI -> zone: the top-level map, and each cluster's DNAIs in the cluster's zone."""
    clusters: Mapping[str, Cluster]
    apps: Mapping[str, App]
    latency_ms: Mapping[str, Mapping[str, float]] = field(
        metadata={"doc": "zone -> cluster -> shortest-path latency; unreachable clusters absent"}
    )
    warnings: tuple[str, ...] = ()

    def zone_of_cell(self, cell: Cell) -> str | None:
        """The zone of a cell: its own mapping first, else its tracking area's."""
        if cell.cell_id is not None:
            zone = self.cells.get((cell.plmn, cell.tac, cell.cell_id))
            if zone is not None:
                return zone
        return self.tracking_areas.get((cell.plmn, cell.tac))

    def zone_of(self, event: LocationEvent) -> str | None:
        """The zone an event places its UE in, or None when the topology does not map it."""
        cell = event.location
        if cell is not None:
            zone = self.cells.get((cell.plmn, cell.tac, cell.cell_id or ""))
            if zone is None:
                zone = self.tracking_areas.get((cell.plmn, cell.tac))
            if zone is not None:
                return zone
        change = event.dnai_change
        if change is not None and change.target_dnai is not None:
            return self.dnais.get(change.target_dnai)
        return None


def parse_topology(text: str | bytes, *, source: str = "topology") -> Topology:
    """Parse, validate and compile a topology file.

    Args:
        text: the YAML content.
        source: how to name the file in messages.

    Raises:
        PolicyUnavailable: the file is invalid; the message lists every problem with its YAML path.
    """
    data, where = read_yaml(text, source=source)
    try:
        doc = TopologyDoc.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise invalid(where, validation_problems(exc, TopologyDoc)) from exc
    return compile_topology(doc, source=where)


def _unique_ids(doc: TopologyDoc, problems: list[str]) -> None:
    seen: dict[str, str] = {}
    for i, z in enumerate(doc.zones):
        if z.id in seen:
            problems.append(f"zones[{i}].id: duplicate id '{z.id}'")
        seen[z.id] = "zone"
    for i, c in enumerate(doc.clusters):
        if c.id in seen:
            problems.append(f"clusters[{i}].id: '{c.id}' is already a {seen[c.id]} id")
        seen[c.id] = "cluster"
    apps: set[str] = set()
    for i, a in enumerate(doc.applications):
        if a.name in apps:
            problems.append(f"applications[{i}].name: duplicate application '{a.name}'")
        apps.add(a.name)


def _map_cells(
    doc: TopologyDoc, zones: set[str], problems: list[str]
) -> tuple[dict[tuple[str, str, str], str], dict[tuple[str, str], str]]:
    cells: dict[tuple[str, str, str], str] = {}
    areas: dict[tuple[str, str], str] = {}
    seen_areas: set[tuple[str, str]] = set()
    for i, ta in enumerate(doc.tracking_areas):
        plmn = (ta.plmn or doc.plmn).key
        path = f"tracking_areas[{i}]"
        if (plmn, ta.tac) in seen_areas:
            problems.append(f"{path}.tac: duplicate tracking area {plmn}/{ta.tac}")
        seen_areas.add((plmn, ta.tac))
        if ta.zone is None and not ta.cells:
            problems.append(f"{path}: maps nothing: give it a 'zone', 'cells', or both")
        if ta.zone is not None:
            if ta.zone in zones:
                areas[(plmn, ta.tac)] = ta.zone
            else:
                problems.append(f"{path}.zone: unknown zone '{ta.zone}'")
        for j, cell in enumerate(ta.cells):
            key = (plmn, ta.tac, cell.cell_id)
            if cell.zone not in zones:
                problems.append(f"{path}.cells[{j}].zone: unknown zone '{cell.zone}'")
            elif key in cells:
                problems.append(f"{path}.cells[{j}].cell_id: duplicate cell '{cell.cell_id}'")
            else:
                cells[key] = cell.zone
    return cells, areas


def _check_links(doc: TopologyDoc, nodes: set[str], problems: list[str]) -> None:
    pairs: set[frozenset[str]] = set()
    for i, link in enumerate(doc.links):
        for end in ("a", "b"):
            name = getattr(link, end)
            if name not in nodes:
                problems.append(f"links[{i}].{end}: unknown zone or cluster '{name}'")
        if link.a == link.b:
            problems.append(f"links[{i}]: links '{link.a}' to itself")
        pair = frozenset((link.a, link.b))
        if pair in pairs:
            problems.append(f"links[{i}]: duplicate link between '{link.a}' and '{link.b}'")
        pairs.add(pair)


def _check_refs(doc: TopologyDoc, zones: set[str], clusters: set[str], problems: list[str]) -> None:
    for i, c in enumerate(doc.clusters):
        if c.zone not in zones:
            problems.append(f"clusters[{i}].zone: unknown zone '{c.zone}'")
    for dnai, zone in doc.dnais.items():
        if zone not in zones:
            problems.append(f"dnais.{dnai}: unknown zone '{zone}'")
    for i, a in enumerate(doc.applications):
        for j, name in enumerate(a.allowed_clusters or ()):
            if name not in clusters:
                problems.append(
                    f"applications[{i}].allowed_clusters[{j}]: unknown cluster '{name}'"
                )


def _check_dnais(doc: TopologyDoc, problems: list[str]) -> dict[str, str]:
    """Each DNAI reaches one cluster, in the zone the top-level map gives it; DNAI -> zone."""
    zones = dict(doc.dnais)
    served: dict[str, str] = {}
    for i, c in enumerate(doc.clusters):
        for j, dnai in enumerate(c.dnais):
            where = f"clusters[{i}].dnais[{j}]"
            if dnai in served:
                problems.append(
                    f"{where}: DNAI '{dnai}' already reaches cluster '{served[dnai]}'; a DNAI "
                    "must name one cluster"
                )
                continue
            served[dnai] = c.id
            if zones.setdefault(dnai, c.zone) != c.zone:
                problems.append(
                    f"{where}: dnais.{dnai} puts DNAI '{dnai}' in zone '{zones[dnai]}', but "
                    f"cluster '{c.id}' stands in zone '{c.zone}'"
                )
    return zones


def _check_steering(doc: TopologyDoc, clusters: Mapping[str, Cluster], problems: list[str]) -> None:
    for i, a in enumerate(doc.applications):
        if a.steering is None or not a.steering.via.uses_traffic_influence:
            continue
        app = _app(a)
        lacking = [c.id for c in clusters.values() if app.allows(c) and not c.dnais]
        if lacking:
            problems.append(
                f"applications[{i}].steering: {a.steering.via.value} needs a DNAI on every "
                f"cluster the app may run on; cluster '{lacking[0]}' has none (give it dnais)"
            )


def _check_actionable(doc: TopologyDoc, problems: list[str]) -> None:
    """What the act layer needs to move an app to a cluster: where its instances answer (a
    Kubernetes cluster learns it from its API at deploy time)."""
    for i, c in enumerate(doc.clusters):
        if c.address is None and c.kubernetes is None:
            problems.append(
                f"clusters[{i}].address: required: the IPv4 address '{c.id}' serves its "
                "instances at (a relocation to it could not be carried out)"
            )


def _check_workloads(
    doc: TopologyDoc, clusters: Mapping[str, Cluster], problems: list[str]
) -> None:
    kube = [c.id for c in doc.clusters if c.kubernetes is not None]
    for i, a in enumerate(doc.applications):
        if a.workload is not None:
            continue
        app = _app(a)
        where = [cid for cid in kube if app.allows(clusters[cid])]
        if where:
            problems.append(
                f"applications[{i}].workload: required, as the app may run on Kubernetes "
                f"cluster '{where[0]}'"
            )


def shortest_paths(
    links: Sequence[tuple[str, str, float]], sources: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Dijkstra from each source over an undirected weighted graph.

    Args:
        links: ``(a, b, latency)`` edges.
        sources: the nodes to start from.

    Returns:
        source -> node -> shortest distance, for every node reachable from the source.
    """
    graph: dict[str, list[tuple[str, float]]] = {}
    for a, b, w in links:
        graph.setdefault(a, []).append((b, w))
        graph.setdefault(b, []).append((a, w))
    result: dict[str, dict[str, float]] = {}
    for source in sources:
        dist = {source: 0.0}
        heap = [(0.0, source)]
        while heap:
            d, node = heapq.heappop(heap)
            if d > dist[node]:
                continue
            for nxt, w in graph.get(node, ()):
                nd = d + w
                if nd < dist.get(nxt, float("inf")):
                    dist[nxt] = nd
                    heapq.heappush(heap, (nd, nxt))
        result[source] = dist
    return result


def _cluster(c: ClusterDoc) -> Cluster:
    return Cluster(
        id=c.id,
        site=c.site,
        zone=c.zone,
        state=c.state,
        cpu=c.capacity.cpu,
        memory_mib=c.capacity.memory_mib,
        app_slots=c.capacity.app_slots,
        cpu_used=c.load.cpu,
        memory_used_mib=c.load.memory_mib,
        apps_used=c.load.apps,
        labels=MappingProxyType(dict(c.labels)),
        address=c.address,
        dnais=tuple(c.dnais),
    )


def _app(a: AppDoc) -> App:
    return App(
        name=a.name,
        latency_budget_ms=a.latency_budget_ms,
        cpu=a.needs.cpu,
        memory_mib=a.needs.memory_mib,
        allowed=frozenset(a.allowed_clusters) if a.allowed_clusters is not None else None,
        required_labels=tuple(sorted(a.required_labels.items())),
        stateful=a.stateful,
        context=a.context_transfer
        or ContextPolicy(
            on_failure=OnTransferFailure.ABORT
            if a.stateful
            else OnTransferFailure.MOVE_WITHOUT_CONTEXT
        ),
        steering=a.steering,
    )


def compile_topology(doc: TopologyDoc, *, source: Source | str = "topology") -> Topology:
    """Check the references between entries and build the lookups.

    Raises:
        PolicyUnavailable: a reference is broken; the message lists every problem with its path.
    """
    problems: list[str] = []
    _unique_ids(doc, problems)
    zones = {z.id for z in doc.zones}
    cluster_ids = {c.id for c in doc.clusters}
    cells, areas = _map_cells(doc, zones, problems)
    _check_refs(doc, zones, cluster_ids, problems)
    _check_links(doc, zones | cluster_ids, problems)
    dnais = _check_dnais(doc, problems)
    _check_actionable(doc, problems)
    if problems:
        raise invalid(source if isinstance(source, Source) else Source(source), problems)

    clusters = {c.id: _cluster(c) for c in doc.clusters}
    _check_workloads(doc, clusters, problems)
    _check_steering(doc, clusters, problems)
    if problems:
        raise invalid(source if isinstance(source, Source) else Source(source), problems)

    edges = [(link.a, link.b, link.latency_ms) for link in doc.links]
    zone_ids = tuple(z.id for z in doc.zones)
    dist = shortest_paths(edges, zone_ids)
    latency = {
        z: MappingProxyType({c: d for c, d in sorted(dist[z].items()) if c in cluster_ids})
        for z in zone_ids
    }
    warnings = _warnings(doc, latency, cells, areas)
    return Topology(
        doc=doc,
        plmn=doc.plmn.key,
        zones=zone_ids,
        # Plain dicts on the hot path: a mappingproxy lookup costs twice as much.
        cells=cells,
        tracking_areas=areas,
        dnais=dnais,
        clusters=MappingProxyType(clusters),
        apps=MappingProxyType({a.name: _app(a) for a in doc.applications}),
        latency_ms=MappingProxyType(latency),
        warnings=tuple(warnings),
    )


def _warnings(
    doc: TopologyDoc,
    latency: Mapping[str, Mapping[str, float]],
    cells: Mapping[tuple[str, str, str], str],
    areas: Mapping[tuple[str, str], str],
) -> list[str]:
    out = []
    mapped = set(cells.values()) | set(areas.values()) | set(doc.dnais.values())
    mapped |= {c.zone for c in doc.clusters if c.dnais}
    for z in doc.zones:
        if z.id not in mapped:
            out.append(f"zone '{z.id}' has no cell, tracking area or DNAI mapped to it")
    for c in doc.clusters:
        if not any(c.id in reach for reach in latency.values()):
            out.append(f"cluster '{c.id}' is not reachable from any zone: give it a link")
    for a in doc.applications:
        for z in doc.zones:
            if not any(d <= a.latency_budget_ms for d in latency[z.id].values()):
                out.append(f"application '{a.name}': no cluster within budget from zone '{z.id}'")
    return out


def with_cluster(
    topology: Topology,
    cluster_id: str,
    *,
    state: ClusterState | None = None,
    load: Load | None = None,
) -> Topology:
    """A copy of the topology with one cluster's state or load changed (e.g. from metrics).

    Raises:
        PolicyUnavailable: no such cluster.
    """
    if cluster_id not in topology.clusters:
        raise PolicyUnavailable(f"no cluster '{cluster_id}' in the topology")
    clusters = []
    for c in topology.doc.clusters:
        if c.id == cluster_id:
            update: dict[str, Any] = {}
            if state is not None:
                update["state"] = state
            if load is not None:
                update["load"] = load
            c = c.model_copy(update=update)
        clusters.append(c)
    return compile_topology(topology.doc.model_copy(update={"clusters": clusters}))


@dataclass(frozen=True, slots=True)
class ClusterReading:
    """What a cluster's own API says: allocatable resources of its Ready, schedulable nodes, and
    what our workloads there request."""

    cpu: float
    memory_mib: int
    cpu_requested: float
    memory_requested_mib: int
    apps: int


def with_readings(topology: Topology, readings: Mapping[str, ClusterReading]) -> Topology:
    """A copy of the topology with the capacity and load of the clusters that were read.

    A cluster that reports nothing allocatable (no Ready node) is taken as full. Clusters without
    a reading keep the topology's figures.
    """
    if not readings:
        return topology
    clusters = []
    for c in topology.doc.clusters:
        r = readings.get(c.id)
        if r is not None:
            if r.cpu > 0 and r.memory_mib > 0:
                capacity = c.capacity.model_copy(update={"cpu": r.cpu, "memory_mib": r.memory_mib})
                load = Load(cpu=r.cpu_requested, memory_mib=r.memory_requested_mib, apps=r.apps)
            else:
                capacity = c.capacity
                load = Load(cpu=capacity.cpu, memory_mib=capacity.memory_mib, apps=r.apps)
            c = c.model_copy(update={"capacity": capacity, "load": load})
        clusters.append(c)
    return compile_topology(topology.doc.model_copy(update={"clusters": clusters}))
