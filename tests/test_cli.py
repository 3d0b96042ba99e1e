"""The console script parses, configures, dispatches and reports errors without a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from subscriber.cli import main


def test_stack_status_on_an_empty_directory_reports_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``stack status`` exits 1 and says 'stopped' when nothing runs."""
    monkeypatch.setenv("SUBSCRIBER_STACK__DIR", str(tmp_path))
    assert main(["stack", "status"]) == 1
    out = capsys.readouterr().out
    assert out.count("stopped") == 3


def test_invalid_settings_exit_2_with_a_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad setting gives exit code 2 and one clear line, not a traceback."""
    monkeypatch.setenv("SUBSCRIBER_RECEIVER__PORT", "not-a-port")
    assert main(["stack", "status"]) == 2
    err = capsys.readouterr().err
    assert "invalid settings" in err
    assert "Traceback" not in err


def test_stack_down_when_nothing_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``stack down`` with nothing started is a no-op that says so."""
    monkeypatch.setenv("SUBSCRIBER_STACK__DIR", str(tmp_path))
    assert main(["stack", "down"]) == 0
    assert "nothing was running" in capsys.readouterr().out
