"""The README's main command runs the whole scenario on the real stack."""

from __future__ import annotations

import re

import pytest

from subscriber.cli import main
from subscriber.settings import Settings

pytestmark = pytest.mark.stack


def test_demo_moves_the_app_and_the_client_follows(
    stack_base_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`subscriber demo` exits 0 only after the client reached the instance on edge-2."""
    monkeypatch.setenv("SUBSCRIBER_STACK__DIR", str(stack_base_settings.stack.dir))
    code = main(["demo", "--timeout", "60"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "RELOCATE RELOCATE_BEST_CANDIDATE" in out
    assert "-> edge-2, count" in out
    # The live step lines come from polling a query and may miss a fast step; the
    # outcome the workflow recorded lists every step it ran.
    assert re.search(r"workflow: completed edge-1 -> edge-2: .*context_transfer \d+ ms", out), out
    assert "the user's context: transferred" in out
    assert "proof: no request failed: yes" in out
    assert "proof: edge-2 holds exactly the user's state: yes" in out
    assert "old instance on edge-1 gone" in out
    assert "imsi-" not in out, "the demo shows pseudonyms, never a SUPI"


def test_demo_with_traffic_influence_moves_the_users_path(
    stack_base_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`subscriber demo --steering traffic_influence`: the client, at one address, reaches the
    instance on edge-2 once the SMF moved its path; DNS plays no part."""
    monkeypatch.setenv("SUBSCRIBER_STACK__DIR", str(stack_base_settings.stack.dir))
    code = main(["demo", "--timeout", "60", "--steering", "traffic_influence"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert re.search(r"workflow: completed edge-1 -> edge-2: .*traffic_confirm \d+ ms", out), out
    assert not re.search(r"workflow: completed .*\bdns \d+ ms", out), out
    assert "proof: no request failed: yes" in out
    assert "old instance on edge-1 gone" in out
    assert "imsi-" not in out, "the demo shows pseudonyms, never a SUPI"


def test_demo_with_prewarming_moves_onto_a_warm_instance(
    stack_base_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`subscriber demo --prewarm`: commuters teach the predictor tower 1 -> 2, the app is
    warmed on edge-2 before the UE roams, and the move the workflow recorded has no deploy and
    no readiness step."""
    monkeypatch.setenv("SUBSCRIBER_STACK__DIR", str(stack_base_settings.stack.dir))
    code = main(["demo", "--timeout", "60", "--prewarm"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "prewarm: PREWARM video-analytics on edge-2" in out
    assert "RELOCATE RELOCATE_PREWARMED" in out
    (moved,) = re.findall(r"workflow: completed edge-1 -> edge-2: (.*)", out)
    assert "context_transfer" in moved
    assert "deploy" not in moved
    assert "readiness" not in moved
    assert "pre-warmed move: yes" in out
    assert "roam -> client on edge-2" in out
    assert "proof: edge-2 holds exactly the user's state: yes" in out
    assert "imsi-" not in out, "the demo shows pseudonyms, never a SUPI"
