"""``subscriber policy check``: validate a topology (and policy) file and summarize it."""

from __future__ import annotations

from subscriber.decide.bundle import Bundle
from subscriber.decide.engine import read_bundle
from subscriber.decide.rules import Rules
from subscriber.decide.topology import ClusterState
from subscriber.errors import PolicyUnavailable
from subscriber.options import PolicyCheckOptions
from subscriber.settings import Settings


def _rules_line(rules: Rules) -> str:
    g = rules.stateless
    parts = [
        f"stay-if-OK {'on' if rules.stay_if_ok else 'off'}",
        f"capacity cap {rules.max_utilisation:.0%}" if rules.max_utilisation else "capacity off",
        f"score {rules.latency_weight:g} x latency + {rules.load_weight:g} x load",
    ]
    if rules.min_score_gain is not None:
        parts.append(f"min gain {rules.min_score_gain:g}")
    dwell = [f"{g.dwell_s:g} s" if g.dwell_s is not None else ""]
    dwell.append(f"{g.dwell_reports} reports" if g.dwell_reports is not None else "")
    dwell_text = " or ".join(d for d in dwell if d)
    parts.append(f"dwell {dwell_text}" if dwell_text else "dwell off")
    parts.append(f"ping-pong {g.ping_pong_s:g} s" if g.ping_pong_s is not None else "ping-pong off")
    parts.append(f"cooldown {g.cooldown_s:g} s" if g.cooldown_s is not None else "cooldown off")
    evac = [
        name
        for name, on in (
            ("maintenance", rules.evacuate_maintenance),
            ("draining", rules.evacuate_draining),
        )
        if on
    ]
    parts.append(f"evacuate on {' and '.join(evac)}" if evac else "evacuate off")
    parts.append(f"stateful x{rules.doc.stateful.hysteresis_factor:g}")
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


def check(settings: Settings, options: PolicyCheckOptions) -> int:
    """Validate the files; print a summary and return 0, or raise with every problem (exit 1).

    Raises:
        PolicyUnavailable: a file is missing or invalid.
    """
    topology_file = options.file or settings.policy.topology_file
    policy_file = options.policy or settings.policy.policy_file
    if topology_file is None:
        raise PolicyUnavailable("no topology file: give FILE or set policy.topology_file")
    bundle = read_bundle(topology_file, policy_file)
    print(f"{topology_file}: valid" + (f", with {policy_file}" if policy_file else ""))
    print(summarize(bundle))
    return 0
