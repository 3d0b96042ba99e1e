"""``subscriber policy check``: validate a topology (and policy) file and summarize it."""

from __future__ import annotations

import sys
from pathlib import Path

from subscriber.decide.bundle import Bundle, make_bundle
from subscriber.decide.engine import read_file
from subscriber.decide.instances import Instances, parse_instances
from subscriber.decide.rules import Gates, Rules, parse_rules
from subscriber.decide.topology import ClusterState, Topology, parse_topology
from subscriber.decide.yamldoc import invalid, read_yaml
from subscriber.errors import PolicyUnavailable
from subscriber.options import PolicyCheckOptions
from subscriber.settings import Settings


def _gates_text(g: Gates) -> str:
    dwell = [f"{g.dwell_s:g} s" if g.dwell_s is not None else ""]
    dwell.append(f"{g.dwell_reports} reports" if g.dwell_reports is not None else "")
    dwell_text = " or ".join(d for d in dwell if d)
    parts = [f"dwell {dwell_text}" if dwell_text else "dwell off"]
    parts.append(f"ping-pong {g.ping_pong_s:g} s" if g.ping_pong_s is not None else "ping-pong off")
    parts.append(f"cooldown {g.cooldown_s:g} s" if g.cooldown_s is not None else "cooldown off")
    return ", ".join(parts)


def _rules_line(rules: Rules) -> str:
    parts = [
        f"stay-if-OK {'on' if rules.stay_if_ok else 'off'}",
        f"capacity cap {rules.max_utilisation:.0%}" if rules.max_utilisation else "capacity off",
        f"score {rules.latency_weight:g} x latency + {rules.load_weight:g} x load",
    ]
    if rules.min_score_gain is not None:
        parts.append(f"min gain {rules.min_score_gain:g}")
    parts.append(_gates_text(rules.stateless))
    evac = [
        name
        for name, on in (
            ("maintenance", rules.evacuate_maintenance),
            ("draining", rules.evacuate_draining),
        )
        if on
    ]
    parts.append(f"evacuate on {' and '.join(evac)}" if evac else "evacuate off")
    factor = rules.doc.stateful.hysteresis_factor
    # The factor stretches both dwell criteria and the cooldown (docs/policy.md): say so.
    parts.append(f"stateful apps (x{factor:g}): {_gates_text(rules.stateful)}")
    return ", ".join(parts)


def summarize(bundle: Bundle) -> str:
    """A human summary of a valid bundle: sizes, clusters, where each app goes from each zone."""
    topo = bundle.topology
    label = f" ({bundle.rules.doc.label})" if bundle.rules.doc.label else ""
    lines = [
        f"version {bundle.version}{label}",
        f"PLMN {topo.plmn}: {len(topo.zones)} zones, {len(topo.doc.tracking_areas)} tracking "
        f"areas, {len(topo.cells)} cells, {len(topo.dnais)} DNAIs",
    ]
    states = {s: sum(c.state is s for c in topo.clusters.values()) for s in ClusterState}
    lines.append(
        f"clusters: {len(topo.clusters)} ("
        + ", ".join(f"{n} {s.value}" for s, n in states.items() if n)
        + ")"
    )
    for c in topo.clusters.values():
        util = max(c.cpu_used / c.cpu, c.memory_used_mib / c.memory_mib)
        lines.append(
            f"  {c.id}: site {c.site}, zone {c.zone}, {c.state.value}, "
            f"load {util:.0%}, {c.apps_used}/{c.app_slots} apps"
        )
        kube = topo.doc.clusters[list(topo.clusters).index(c.id)].kubernetes
        if kube is not None:
            lines.append(
                f"    kubernetes: namespace {kube.namespace}, endpoint {kube.endpoint}, "
                f"credentials from {'kubeconfig' if kube.kubeconfig else 'token_file and ca_file'}"
            )
    lines.append(f"applications: {len(topo.apps)}")
    for app in topo.apps.values():
        best = []
        for zone in topo.zones:
            found = bundle.evaluation(zone, app.name, None).best
            best.append(f"{zone} -> {found.cluster if found else 'none'}")
        kind = ", stateful" if app.stateful else ""
        lines.append(f"  {app.name} ({app.latency_budget_ms:g} ms{kind}): " + "; ".join(best))
    lines.append("rules: " + _rules_line(bundle.rules))
    lines.extend(f"warning: {w}" for w in topo.warnings)
    return "\n".join(lines)


def _problems(exc: PolicyUnavailable) -> list[str]:
    return str(exc).splitlines()


def _kubernetes_problems(topology: Topology, topology_file: Path, text: bytes) -> list[str]:
    """What keeps Kubernetes clusters and templates from working (unreadable kubeconfig, CA or
    token files, bad templates), with the topology's lines."""
    from subscriber.act.kubernetes import topology_problems

    found = topology_problems(topology.doc, topology_file)
    if not found:
        return []
    _, where = read_yaml(text, source=str(topology_file))
    return _problems(invalid(where, found))


def validate(
    topology_file: Path, policy_file: Path | None, instances_file: Path | None
) -> tuple[Bundle | None, Instances | None, list[str]]:
    """Read and check every file the running system would load, the way it loads them.

    Returns:
        the bundle and the instances when valid, and every problem of every file (one line
        each, naming the file, line and YAML path); nothing is raised for a bad file.
    """
    problems: list[str] = []
    topology = rules = None
    try:
        text = read_file(topology_file)
        topology = parse_topology(text, source=str(topology_file))
        problems += _kubernetes_problems(topology, topology_file, text)
    except PolicyUnavailable as exc:
        problems += _problems(exc)
    try:
        policy = read_file(policy_file) if policy_file is not None else None
        rules = parse_rules(policy, source=str(policy_file or "policy"))
    except PolicyUnavailable as exc:
        problems += _problems(exc)
    instances = None
    if instances_file is not None:
        try:
            instances = parse_instances(
                read_file(instances_file), source=str(instances_file), topology=topology
            )
        except PolicyUnavailable as exc:
            problems += _problems(exc)
    bundle = make_bundle(topology, rules) if topology is not None and rules is not None else None
    return bundle, instances, problems


def check(settings: Settings, options: PolicyCheckOptions) -> int:
    """Validate the files; print a summary and return 0, or every problem on stderr and 1.

    Raises:
        PolicyUnavailable: no topology file given or configured.
    """
    topology_file = options.file or settings.policy.topology_file
    policy_file = options.policy or settings.policy.policy_file
    instances_file = options.instances or settings.act.instances_file
    if topology_file is None:
        raise PolicyUnavailable("no topology file: give FILE or set policy.topology_file")
    bundle, instances, problems = validate(topology_file, policy_file, instances_file)
    if problems or bundle is None:
        for line in problems:
            print(f"subscriber: {line}", file=sys.stderr)
        return 1
    used = [f"with {policy_file}" if policy_file else "default policy"]
    if instances_file is not None and instances is not None:
        used.append(f"{instances_file} ({len(instances)} instances)")
    print(f"{topology_file}: valid, " + ", ".join(used))
    print(summarize(bundle))
    return 0
