"""Tests for the capacity ledger: moves count against clusters before the next snapshot."""

from __future__ import annotations

from subscriber.decide.bundle import load_bundle
from subscriber.decide.ledger import Ledger
from subscriber.decide.scoring import Rejection

TOPOLOGY = """
plmn: {mcc: "208", mnc: "93"}
zones: [{id: za}]
tracking_areas: [{tac: "000001", zone: za}]
clusters:
  - {id: ca, site: a, zone: za, capacity: {cpu: 4, memory_mib: 4096, app_slots: 2},
     load: {cpu: 1, memory_mib: 1024, apps: 1}, address: 127.0.10.1}
  - {id: cb, site: b, zone: za, capacity: {cpu: 4, memory_mib: 4096, app_slots: 9},
     address: 127.0.10.2}
links: [{a: za, b: ca, latency_ms: 1}, {a: za, b: cb, latency_ms: 5}]
applications: [{name: game, latency_budget_ms: 10, needs: {cpu: 1, memory_mib: 512}}]
"""


def test_a_reserved_slot_is_gone_for_the_next_decision() -> None:
    """ca has one free slot: after one reservation the ranking rejects it with NO_SLOTS."""
    base = load_bundle(TOPOLOGY)
    ledger = Ledger()
    assert ledger.applied(base) is base
    assert base.evaluation("za", "game", None).best.cluster == "ca"  # type: ignore[union-attr]
    ledger.reserve(base, "ca", "game")
    corrected = ledger.applied(base)
    assert corrected.version == base.version
    assert corrected.topology.clusters["ca"].apps_used == 2
    assert corrected.topology.clusters["ca"].cpu_used == 2.0
    ranked = corrected.evaluation("za", "game", None).ranked
    assert {c.cluster: c.rejected for c in ranked}["ca"] is Rejection.NO_SLOTS
    assert corrected.evaluation("za", "game", None).best.cluster == "cb"  # type: ignore[union-attr]
    assert ledger.applied(base) is corrected  # kept until the ledger changes


def test_a_move_frees_its_source_and_load_never_goes_below_zero() -> None:
    """A move takes on the target and gives back on the source; giving back more than the
    snapshot holds stops at zero; a reset forgets everything."""
    base = load_bundle(TOPOLOGY)
    ledger = Ledger()
    ledger.moved(base, "game", "ca", "cb")
    ledger.moved(base, "game", "ca", "cb")
    clusters = ledger.applied(base).topology.clusters
    assert (clusters["ca"].apps_used, clusters["ca"].cpu_used) == (0, 0.0)
    assert (clusters["cb"].apps_used, clusters["cb"].memory_used_mib) == (2, 1024)
    ledger.moved(base, "nope", None, "cb")  # unknown apps take nothing
    ledger.reset()
    assert ledger.applied(base) is base
