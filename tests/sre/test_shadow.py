"""Tests for the what-if engine and its report, on a hand-computed scenario."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from subscriber.cli import main
from subscriber.decide.engine import read_bundle
from subscriber.sre.shadow import (
    Outcome,
    auto_instances,
    differing_ues,
    run_policy,
)
from subscriber.sre.whatif import recorded_events
from tests.support.scenario import T0, UE1, UE2, script_events, write_files

END_S = T0.timestamp() + 60


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """The scenario's files."""
    return write_files(tmp_path)


def _run(files: dict[str, Path], policy: str) -> Outcome:
    bundle = read_bundle(files["topology"], files[policy])
    guarded = read_bundle(files["topology"], files["guarded"])
    return run_policy(
        script_events(), bundle, auto_instances(guarded, ["game"]), label=policy, end_s=END_S
    )


def test_guarded_policy_counts_match_the_hand_computation(files: dict[str, Path]) -> None:
    """Guarded: dwell defers the border flips, one move at the 19 s recheck, return refused."""
    out = _run(files, "guarded")
    # UE1: t0 ok; 10 dwell (recheck 15); 12 back in za, ok; 14 dwell (recheck 19);
    # recheck 19 relocates ca->cb; 40 ok; 50 dwell (recheck 55); recheck 55 and event 60 refuse
    # the return to ca, left at 19. UE2: ok, unmapped cell, ok.
    assert out.reasons == {
        "CURRENT_OK": 5,
        "DWELL_NOT_REACHED": 3,
        "RELOCATE_BEST_CANDIDATE": 1,
        "PING_PONG_SUPPRESSED": 2,
        "UNKNOWN_CELL": 1,
    }
    assert (out.events, out.rechecks, out.relocations) == (10, 2, 1)
    assert (out.ping_pong_suppressed, out.ping_pong_episodes, out.flips) == (2, 1, 0)
    assert out.relocation_times == [T0.timestamp() + 19]
    # Out of budget: 10-12 and 14-19 in zb on ca, 50-60 in za on cb.
    assert out.out_of_budget_s[f"{UE1}|game/{_label(out, UE1)}"] == pytest.approx(17.0)
    assert sum(out.out_of_budget_s.values()) == pytest.approx(17.0)


def _label(out: Outcome, ue: str) -> str:
    (key,) = out.start_by_ue[ue]
    return key.partition("/")[2]


def test_eager_policy_flips_with_every_oscillation(files: dict[str, Path]) -> None:
    """Eager: every zone change moves the app; three of the four moves go back (A->B->A)."""
    out = _run(files, "eager")
    assert out.reasons == {"CURRENT_OK": 5, "RELOCATE_BEST_CANDIDATE": 4, "UNKNOWN_CELL": 1}
    assert (out.relocations, out.flips, out.ping_pong_suppressed, out.rechecks) == (4, 3, 0, 0)
    assert [m["target"] for m in out.moves_by_ue[UE1]] == ["cb", "ca", "cb", "ca"]
    assert sum(out.out_of_budget_s.values()) == 0.0


def test_only_the_oscillating_ue_differs(files: dict[str, Path]) -> None:
    """UE1's moves differ between the policies; UE2 never moved under either."""
    assert differing_ues(_run(files, "guarded"), _run(files, "eager")) == [UE1]
    assert UE2 not in _run(files, "eager").moves_by_ue


def test_both_start_from_the_best_cluster_of_the_first_zone(files: dict[str, Path]) -> None:
    """Without an instances file each UE's instance starts where policy A ranks best."""
    out = _run(files, "eager")
    assert list(out.start_by_ue[UE1].values()) == ["ca"]
    assert list(out.start_by_ue[UE2].values()) == ["ca"]


def test_an_instances_file_decides_where_apps_start(files: dict[str, Path], tmp_path: Path) -> None:
    """With an instances file, only the listed UE has an app, starting where the file says."""
    instances = tmp_path / "instances.yaml"
    instances.write_text(f"instances:\n  - {{ue: {UE1}, app: game, instance: g1, cluster: cb}}\n")
    summary = tmp_path / "summary.json"
    code = main(
        [
            "shadow",
            str(files["recording"]),
            "--policy",
            str(files["eager"]),
            "--topology",
            str(files["topology"]),
            "--instances",
            str(instances),
            "--json",
            str(summary),
        ]
    )
    assert code == 0
    (policy,) = orjson.loads(summary.read_bytes())["policies"]
    # Starting on cb in za: moves to ca at 0, then cb at 10, ca at 12, cb at 14, ca at 50.
    assert policy["relocations"] == 5
    assert policy["instances"] == 1


def test_the_command_writes_a_self_contained_html_report(
    files: dict[str, Path], tmp_path: Path
) -> None:
    """The HTML has the three plots inline and fetches nothing; the JSON has both policies."""
    html, summary = tmp_path / "report.html", tmp_path / "summary.json"
    code = main(
        [
            "shadow",
            str(files["recording"]),
            "--policy",
            str(files["guarded"]),
            "--policy-b",
            str(files["eager"]),
            "--topology",
            str(files["topology"]),
            "--app",
            "game",
            "--html",
            str(html),
            "--json",
            str(summary),
        ]
    )
    assert code == 0
    page = html.read_text()
    assert page.count("<svg") == 3
    assert not re.search(r"""(src|href)\s*=\s*["']?https?://""", page)
    assert "<script" not in page
    assert "<link" not in page
    assert UE1 not in page  # pseudonyms, unless --clear-ids
    doc = orjson.loads(summary.read_bytes())
    assert [p["relocations"] for p in doc["policies"]] == [1, 4]
    assert [p["flips"] for p in doc["policies"]] == [0, 3]
    assert doc["comparison"]["differing_ues"] == 1


def test_a_callbacks_recording_is_normalized_first(tmp_path: Path) -> None:
    """A raw-callback recording yields the events the receiver would have published."""
    from subscriber.sre.recording import Item, RawCallback, RecordingWriter
    from subscriber.sre.simulate import RadioCell, location_report

    path = tmp_path / "callbacks.jsonl.gz"
    cell = RadioCell("20893", "000001", "000000010", "za")
    with RecordingWriter(path, kind="callbacks", source={"type": "hand"}) as w:
        body = location_report(UE1, cell, T0, "c1")
        w.write(Item(T0.timestamp(), UE1, callback=RawCallback("/callbacks/amf/c1", body)))
        w.write(Item(T0.timestamp(), UE1, callback=RawCallback("/callbacks/amf/c1", b"{")))
    header, events = recorded_events(path)
    assert header.kind == "callbacks"
    assert [(e.ue.supi, e.location.cell_id if e.location else None) for e in events] == [
        (UE1, "000000010")
    ]


def test_splitting_the_ues_into_shards_gives_the_same_outcome(tmp_path: Path) -> None:
    """Runs over disjoint shards of UEs, merged, equal one run over all UEs."""
    from dataclasses import replace

    from subscriber.sre.shadow import merge_outcomes
    from subscriber.sre.simulate import Mobility, simulate, to_recording
    from subscriber.sre.whatif import Job, recording_span, run_job
    from tests.support.events import TOPOLOGY

    params = Mobility(ues=40, duration_s=900, oscillation_p=0.5)
    moves = simulate(read_bundle(TOPOLOGY).topology, params, 13)
    path = tmp_path / "sim.jsonl.gz"
    to_recording(path, moves, params, start=T0, correlation_id="c", callbacks=False, source={})
    eager = tmp_path / "eager.yaml"
    eager.write_text("dwell: {enabled: false}\nping_pong: {enabled: false}\n")
    _, _, end_s = recording_span(path)
    job = Job(
        recording=path,
        topology=TOPOLOGY,
        policies=(("example", None), ("eager", eager)),
        instances_file=None,
        apps=(),
        flip_window_s=600.0,
        end_s=end_s,
    )
    whole = run_job(job)
    parts = [run_job(replace(job, shard=i, shards=3)) for i in range(3)]
    for n, outcome in enumerate(whole):
        merged = merge_outcomes([p[n] for p in parts])
        assert merged.summary() == outcome.summary()
        assert merged.moves_by_ue == outcome.moves_by_ue
        assert merged.relocation_times == outcome.relocation_times
        assert outcome.relocations > 0


def test_the_command_with_two_worker_processes_matches_one(
    files: dict[str, Path], tmp_path: Path
) -> None:
    """``--workers 2`` writes the same summary as ``--workers 1``."""
    docs = []
    for workers in ("1", "2"):
        out = tmp_path / f"summary-{workers}.json"
        argv = ["shadow", str(files["recording"]), "--policy", str(files["guarded"])]
        argv += ["--policy-b", str(files["eager"]), "--topology", str(files["topology"])]
        argv += ["--json", str(out), "--workers", workers]
        assert main(argv) == 0
        docs.append(orjson.loads(out.read_bytes()))
    assert docs[0] == docs[1]


def test_an_unknown_app_is_refused_with_exit_1(files: dict[str, Path]) -> None:
    """``--app`` naming no application of the topology is an error, not a crash."""
    argv = ["shadow", str(files["recording"]), "--policy", str(files["guarded"])]
    argv += ["--topology", str(files["topology"]), "--app", "nope", "--workers", "1"]
    assert main(argv) == 1
