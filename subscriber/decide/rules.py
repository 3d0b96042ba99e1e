"""The policy file: which decision rules are on, and their parameters.

Every rule can be switched off (``enabled: false``) and every threshold is a parameter; the
defaults are the ones documented in docs/policy.md. :func:`parse_rules` validates the file with
the same ``path: message`` errors as the topology, and compiles it into :class:`Rules`, a flat
record the hot path reads without pydantic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from subscriber.decide.yamldoc import Source, invalid, read_yaml, validation_problems


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StayIfOkDoc(_Doc):
    """Stay while the current cluster is active, allowed and within the app's latency budget."""

    enabled: bool = True


class CapacityDoc(_Doc):
    """Refuse candidates whose CPU or memory use would exceed the cap after placing the app."""

    enabled: bool = True
    max_utilisation: float = Field(0.8, gt=0, le=1)
    from_clusters: bool = Field(
        False,
        description="Kubernetes clusters: take capacity and load from their API (allocatable "
        "resources of Ready nodes, requests of our workloads), refreshed every "
        "policy.capacity_refresh_s, instead of the topology's figures.",
    )


class ScoreDoc(_Doc):
    """Weights of the score: latency (as a share of the budget) plus load (utilisation)."""

    latency_weight: float = Field(0.7, ge=0)
    load_weight: float = Field(0.3, ge=0)

    @model_validator(mode="after")
    def _not_both_zero(self) -> ScoreDoc:
        if self.latency_weight == 0 and self.load_weight == 0:
            raise ValueError("latency_weight and load_weight cannot both be 0")
        return self


class ImprovementDoc(_Doc):
    """With stay-if-OK off: move from a valid cluster only for at least this score gain."""

    enabled: bool = False
    min_score_gain: float = Field(0.1, ge=0)


class DwellDoc(_Doc):
    """Hysteresis: a UE must settle in its new zone before its apps follow it.

    The move is allowed once either criterion that is set is met.
    """

    enabled: bool = True
    min_dwell_s: float | None = Field(5.0, ge=0)
    min_reports: int | None = Field(3, ge=1)

    @model_validator(mode="after")
    def _one_criterion(self) -> DwellDoc:
        if self.enabled and self.min_dwell_s is None and self.min_reports is None:
            raise ValueError("set min_dwell_s or min_reports (or enabled: false)")
        return self


class PingPongDoc(_Doc):
    """Refuse moving an app back to a cluster it left less than ``window_s`` ago."""

    enabled: bool = True
    window_s: float = Field(600.0, gt=0)


class CooldownDoc(_Doc):
    """No new move of an app for ``cooldown_s`` after its last one."""

    enabled: bool = True
    cooldown_s: float = Field(60.0, gt=0)


class EvacuateDoc(_Doc):
    """Move apps off clusters in maintenance or draining, whether or not their UE moved."""

    enabled: bool = True
    on_maintenance: bool = True
    on_draining: bool = True


class StatefulDoc(_Doc):
    """Stateful apps pay a state transfer per move: stretch dwell and cooldown by this factor."""

    hysteresis_factor: float = Field(2.0, ge=1)


class PrewarmDoc(_Doc):
    """Predictive pre-warming: start an app where its UE is predicted to go, without steering.

    See docs/policy.md: the prediction comes from transition counts learned online
    (:mod:`subscriber.decide.predict`); a warm instance that is not used within ``ttl_s`` is
    removed, and budgets cap how many may be warm at once.
    """

    enabled: bool = False
    min_confidence: float = Field(0.7, gt=0, le=1, description="Share of recent transitions.")
    min_evidence: float = Field(
        5.0, ge=0, description="Recent transitions the prediction's context must have seen."
    )
    ttl_s: float = Field(300.0, gt=0, description="A warm instance unused this long is removed.")
    max_per_cluster: int = Field(4, ge=1, description="Warm instances per cluster at most.")
    max_per_app: int = Field(32, ge=1, description="Warm instances per application at most.")
    warm_dwell_s: float | None = Field(
        0.0,
        ge=0,
        description="Dwell required before moving to a warm target (None: the dwell rule's).",
    )
    half_life_s: float = Field(3600.0, gt=0, description="Learned transitions halve this often.")


class RulesDoc(_Doc):
    """The policy file as written."""

    label: str | None = Field(None, description="Free text shown next to the content hash.")
    stay_if_ok: StayIfOkDoc = StayIfOkDoc()
    capacity: CapacityDoc = CapacityDoc()
    score: ScoreDoc = ScoreDoc()
    improvement: ImprovementDoc = ImprovementDoc()
    dwell: DwellDoc = DwellDoc()
    ping_pong: PingPongDoc = PingPongDoc()
    cooldown: CooldownDoc = CooldownDoc()
    evacuate: EvacuateDoc = EvacuateDoc()
    stateful: StatefulDoc = StatefulDoc()
    prewarm: PrewarmDoc = PrewarmDoc()


@dataclass(frozen=True, slots=True)
class Gates:
    """Hysteresis thresholds for one kind of app; None means the gate is off."""

    dwell_s: float | None
    dwell_reports: int | None
    cooldown_s: float | None
    ping_pong_s: float | None


@dataclass(frozen=True, slots=True)
class Rules:
    """The compiled policy: flat values for the hot path."""

    doc: RulesDoc
    stay_if_ok: bool
    max_utilisation: float | None
    latency_weight: float
    load_weight: float
    min_score_gain: float | None
    evacuate_maintenance: bool
    evacuate_draining: bool
    stateless: Gates
    stateful: Gates
    prewarm: PrewarmDoc | None = None
    """Pre-warming's parameters; None when it is off."""


def _gates(doc: RulesDoc, factor: float) -> Gates:
    dwell = doc.dwell
    on = dwell.enabled
    return Gates(
        dwell_s=dwell.min_dwell_s * factor if on and dwell.min_dwell_s is not None else None,
        dwell_reports=(
            math.ceil(dwell.min_reports * factor) if on and dwell.min_reports is not None else None
        ),
        cooldown_s=doc.cooldown.cooldown_s * factor if doc.cooldown.enabled else None,
        ping_pong_s=doc.ping_pong.window_s if doc.ping_pong.enabled else None,
    )


def compile_rules(doc: RulesDoc) -> Rules:
    """Flatten a validated policy document."""
    evac = doc.evacuate
    return Rules(
        doc=doc,
        stay_if_ok=doc.stay_if_ok.enabled,
        max_utilisation=doc.capacity.max_utilisation if doc.capacity.enabled else None,
        latency_weight=doc.score.latency_weight,
        load_weight=doc.score.load_weight,
        min_score_gain=doc.improvement.min_score_gain if doc.improvement.enabled else None,
        evacuate_maintenance=evac.enabled and evac.on_maintenance,
        evacuate_draining=evac.enabled and evac.on_draining,
        stateless=_gates(doc, 1.0),
        stateful=_gates(doc, doc.stateful.hysteresis_factor),
        prewarm=doc.prewarm if doc.prewarm.enabled else None,
    )


DEFAULT_RULES = compile_rules(RulesDoc())


def parse_rules(text: str | bytes | None, *, source: str = "policy") -> Rules:
    """Parse and compile a policy file; None or an empty file gives the defaults.

    Raises:
        PolicyUnavailable: the file is invalid; the message lists every problem with its path.
    """
    data, where = read_yaml(text, source=source) if text is not None else (None, Source(source))
    try:
        doc = RulesDoc.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise invalid(where, validation_problems(exc, RulesDoc)) from exc
    return compile_rules(doc)
