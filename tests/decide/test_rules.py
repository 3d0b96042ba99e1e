"""Policy files: defaults, switches, stateful scaling and precise validation errors."""

from __future__ import annotations

import re

import pytest

from subscriber.decide.rules import DEFAULT_RULES, parse_rules
from subscriber.errors import PolicyUnavailable
from tests.support.policy import EXAMPLE_POLICY


def test_example_policy_equals_the_defaults() -> None:
    """The shipped example spells out the defaults, label aside."""
    rules = parse_rules(EXAMPLE_POLICY.read_bytes())
    assert rules.doc.model_dump(exclude={"label"}) == DEFAULT_RULES.doc.model_dump(
        exclude={"label"}
    )


@pytest.mark.parametrize("text", [None, "", "# nothing\n"])
def test_missing_or_empty_policy_gives_defaults(text: str | None) -> None:
    """No policy file, or an empty one, means the defaults."""
    assert parse_rules(text) == DEFAULT_RULES


def test_stateful_apps_get_stretched_gates() -> None:
    """Dwell and cooldown scale by the stateful factor; the ping-pong window does not."""
    rules = parse_rules(
        "dwell: {min_dwell_s: 4, min_reports: 3}\nstateful: {hysteresis_factor: 1.5}"
    )
    assert (rules.stateless.dwell_s, rules.stateless.dwell_reports) == (4, 3)
    assert (rules.stateful.dwell_s, rules.stateful.dwell_reports) == (6, 5)
    assert rules.stateful.cooldown_s == 90
    assert rules.stateful.ping_pong_s == rules.stateless.ping_pong_s == 600


def test_switched_off_rules_compile_to_none() -> None:
    """A disabled rule leaves no threshold behind."""
    rules = parse_rules(
        "stay_if_ok: {enabled: false}\ncapacity: {enabled: false}\ndwell: {enabled: false}\n"
        "ping_pong: {enabled: false}\ncooldown: {enabled: false}\nevacuate: {enabled: false}\n"
    )
    assert not rules.stay_if_ok
    assert rules.max_utilisation is None
    assert rules.stateless.dwell_s is None
    assert rules.stateless.dwell_reports is None
    assert rules.stateless.ping_pong_s is None
    assert rules.stateless.cooldown_s is None
    assert not rules.evacuate_maintenance
    assert not rules.evacuate_draining


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("capacity: {max_utilisation: 1.5}", "capacity.max_utilisation: Input should be less"),
        ("score: {latency_weight: 0, load_weight: 0}", "score: latency_weight and load_weight"),
        ("dwell: {min_dwell_s: null, min_reports: null}", "dwell: set min_dwell_s or min_reports"),
        ("cooldown: {cooldown_s: -1}", "cooldown.cooldown_s: Input should be greater than 0"),
        ("stateful: {hysteresis_factor: 0.5}", "stateful.hysteresis_factor: Input should be"),
        ("hysteresis: {}", "hysteresis: unknown key 'hysteresis'; expected one of: label, stay"),
        ("dwell: [1, 2]", "dwell: expected a mapping (key: value lines), got a list"),
        ("- 1", "(top level): expected a mapping (key: value lines), got a list"),
    ],
)
def test_validation_errors_name_the_yaml_path(text: str, message: str) -> None:
    """Each broken policy is refused with a message naming the YAML path of the problem."""
    with pytest.raises(PolicyUnavailable) as caught:
        parse_rules(text, source="p.yaml")
    lines = str(caught.value).splitlines()
    assert any(re.match(r"p\.yaml:1: " + re.escape(message), line) for line in lines), lines
