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
from tests.support.scenario import T0, UE1, UE2, event, script_events, write_files
from tests.support.scenario import TOPOLOGY as TOPOLOGY_TEXT

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


def test_moves_use_up_capacity_so_later_ues_find_the_cluster_full(tmp_path: Path) -> None:
    """With room for one more app on cb, the first UE to need cb gets it; the second finds cb
    full (NO_SLOTS), gets NO_CANDIDATE, and that is reported as un-actionable. Without the
    ledger both would have moved there."""
    topology = tmp_path / "full.yaml"
    topology.write_text(
        TOPOLOGY_TEXT.replace("address: 127.0.10.2}", "address: 127.0.10.2, load: {apps: 99}}")
    )
    bundle = read_bundle(topology, None)
    eager = read_bundle(topology, write_files(tmp_path)["eager"])
    events = [
        event(0, UE1, "za"),
        event(0, UE2, "za"),
        event(10, UE1, "zb"),
        event(11, UE2, "zb"),
    ]
    out = run_policy(events, eager, auto_instances(bundle, ["game"]), label="e", end_s=END_S)
    assert [m["target"] for m in out.moves_by_ue[UE1]] == ["cb"]
    assert UE2 not in out.moves_by_ue
    assert out.reasons["NO_CANDIDATE"] == 1
    (example,) = out.unactionable_examples
    assert example["ue"] == UE2
    assert example["why"] == "no cluster qualifies"
    assert [c["rejected"] for c in example["candidates"]] == ["NO_SLOTS", "OVER_BUDGET"]


def test_a_move_records_who_what_where_when_why_and_the_candidates(
    files: dict[str, Path],
) -> None:
    """Each move says its UE, instance, source, target, time, reason, trigger and zone, and
    lists the candidates with scores and rejection codes; the trail shows where the UE was."""
    out = _run(files, "guarded")
    (move,) = out.moves_by_ue[UE1]
    assert {k: move[k] for k in ("ue", "app", "source", "target", "reason", "trigger", "zone")} == {
        "ue": UE1,
        "app": "game",
        "source": "ca",
        "target": "cb",
        "reason": "RELOCATE_BEST_CANDIDATE",
        "trigger": "recheck",
        "zone": "zb",
    }
    assert move["t"] == T0.timestamp() + 19
    best, miss = move["candidates"]
    assert (best["cluster"], best["rejected"], best["latency_ms"]) == ("cb", None, 1.0)
    assert (miss["cluster"], miss["rejected"]) == ("ca", "OVER_BUDGET")
    trail = out.trails[UE1]
    assert [e[2] for e in trail if e[1] == "where"][:3] == ["000000010", "000000020", "000000010"]
    decisions = [(e[3], e[4], e[7]) for e in trail if e[1] == "decision"]
    assert ("relocate", "RELOCATE_BEST_CANDIDATE", "recheck") in decisions
    assert ("defer", "PING_PONG_SUPPRESSED", "recheck") in decisions


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


def _shadow(files: dict[str, Path], tmp_path: Path, *extra: str) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    html, summary = tmp_path / "report.html", tmp_path / "summary.json"
    argv = ["shadow", str(files["recording"]), "--policy", str(files["guarded"])]
    argv += ["--html", str(html), "--json", str(summary), *extra]
    code = main(argv)
    if code:
        return code, {}, ""
    return code, orjson.loads(summary.read_bytes()), html.read_text()


def test_every_report_starts_with_the_files_it_used(files: dict[str, Path], tmp_path: Path) -> None:
    """The JSON's first key and the HTML's first table name the recording, the topology, each
    policy (path, digest, version) and where the instances came from."""
    code, doc, page = _shadow(files, tmp_path, "--topology", str(files["topology"]))
    assert code == 0
    assert next(iter(doc)) == "inputs"
    inputs = doc["inputs"]
    assert inputs["topology"]["path"] == str(files["topology"])
    assert inputs["topology"]["plmn"] == "208/93"
    (policy,) = inputs["policies"]
    assert policy["path"] == str(files["guarded"])
    assert policy["version"] == read_bundle(files["topology"], files["guarded"]).version
    assert inputs["instances"].startswith("made up")
    first_table = page[page.index("<table") : page.index("</table>")]
    for wanted in (str(files["topology"]), str(files["guarded"]), policy["version"]):
        assert wanted in first_table


def test_the_html_shows_each_move_its_candidates_and_the_ues_timeline(
    files: dict[str, Path], tmp_path: Path
) -> None:
    """The moves table has from → to, reason, trigger and the scored and rejected candidates;
    the timeline of the UE that moved lists its cells and decisions; no SUPI anywhere."""
    code, doc, page = _shadow(files, tmp_path, "--topology", str(files["topology"]))
    assert code == 0
    (move,) = doc["moves"]["guarded"]
    assert move["ue"].startswith("~")
    assert "ca → cb" in page
    assert "cb 0.0" in page  # the winner's score
    assert "ca OVER_BUDGET" in page
    (timeline,) = doc["timelines"]
    assert timeline["ue"] == move["ue"]
    assert "in 000000020 (zb)" in page
    assert "PING_PONG_SUPPRESSED" in page
    assert UE1 not in page
    assert UE1 not in orjson.dumps(doc).decode()


def test_without_topology_shadow_says_which_it_uses_or_refuses(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """No --topology and none configured: one line saying what to give, exit 1. Configured:
    it is used, and stderr says so."""
    monkeypatch.delenv("SUBSCRIBER_POLICY__TOPOLOGY_FILE", raising=False)
    code, _, _ = _shadow(files, tmp_path)
    assert code == 1
    err = capsys.readouterr().err
    assert "give --topology FILE" in err
    assert len(err.strip().splitlines()) == 1
    monkeypatch.setenv("SUBSCRIBER_POLICY__TOPOLOGY_FILE", str(files["topology"]))
    code, doc, _ = _shadow(files, tmp_path)
    assert code == 0
    assert f"topology {files['topology']} (policy.topology_file)" in capsys.readouterr().err
    assert doc["inputs"]["topology"]["path"] == str(files["topology"])


def test_a_topology_of_another_network_is_called_out(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A recording none of whose cells the topology maps gets a warning, in both reports."""
    other = tmp_path / "other.yaml"
    other.write_text(TOPOLOGY_TEXT.replace('mnc: "93"', 'mnc: "01"'))
    code, doc, page = _shadow(files, tmp_path, "--topology", str(other))
    assert code == 0
    warning, no_instances = doc["warnings"]
    assert "none of the 10 events falls in a zone" in warning
    assert "no UE of the recording has an instance" in no_instances
    assert "208/01" in warning
    assert "Warning: none of the 10 events" in page
    assert "warning: none of the 10 events" in capsys.readouterr().err
