"""A topology and a policy that are used together, with the version that names the pair.

The version is a content hash of both documents in canonical form, so comments and formatting do
not change it and any change of substance does. Every decision records it.

A bundle is immutable; it memoizes the ranking per (zone, app) and the evaluation per (zone, app,
current cluster), which depend only on its contents, so the hot path ranks each zone once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from subscriber.decide.rules import Rules, parse_rules
from subscriber.decide.scoring import Candidate, Evaluation, assess, rank
from subscriber.decide.topology import Topology, parse_topology

_EvalKey = tuple[str, str, str | None]


def content_version(topology: Topology, rules: Rules) -> str:
    """The first 16 hex digits of a SHA-256 over both documents in canonical JSON."""
    doc = {
        "topology": topology.doc.model_dump(mode="json"),
        # A policy with pre-warming off keeps the version it had before the option existed.
        "policy": rules.doc.model_dump(
            mode="json", exclude={"label"} if rules.prewarm else {"label", "prewarm"}
        ),
    }
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Bundle:
    """The topology and policy one decision uses, and their version."""

    topology: Topology
    rules: Rules
    version: str
    _evaluations: dict[_EvalKey, Evaluation] = field(
        default_factory=dict, compare=False, repr=False
    )
    _rankings: dict[tuple[str, str], tuple[Candidate, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )
    memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)
    """Values derived from this bundle alone, memoized by the policy's hot path."""

    def evaluation(self, zone: str, app: str, current: str | None) -> Evaluation:
        """Candidates for ``app`` seen from ``zone`` while it runs on ``current`` (memoized).

        Raises:
            KeyError: unknown app.
        """
        key = (zone, app, current)
        found = self._evaluations.get(key)
        if found is None:
            spec = self.topology.apps[app]
            ranked = self._rankings.get((zone, app))
            if ranked is None:
                ranked = rank(self.topology, self.rules, zone, spec)
                self._rankings[(zone, app)] = ranked
            found = assess(self.topology, self.rules, zone, spec, current, ranked)
            self._evaluations[key] = found
        return found


def make_bundle(topology: Topology, rules: Rules) -> Bundle:
    """Pair a topology with a policy and compute their version."""
    return Bundle(topology, rules, content_version(topology, rules))


def load_bundle(
    topology_text: str | bytes,
    policy_text: str | bytes | None = None,
    *,
    topology_source: str = "topology",
    policy_source: str = "policy",
) -> Bundle:
    """Parse both files and pair them; the pure half of loading.

    Raises:
        PolicyUnavailable: either file is invalid; the message names the file and each problem.
    """
    topology = parse_topology(topology_text, source=topology_source)
    rules = parse_rules(policy_text, source=policy_source)
    return make_bundle(topology, rules)
