"""The console script parses, configures, dispatches and reports errors without a traceback."""

from __future__ import annotations

import asyncio
import gzip
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from subscriber.cli import main
from tests.support.h2sink import serving


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
    assert "invalid setting receiver.port" in err
    assert "Traceback" not in err


def test_stack_down_when_nothing_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``stack down`` with nothing started is a no-op that says so."""
    monkeypatch.setenv("SUBSCRIBER_STACK__DIR", str(tmp_path))
    assert main(["stack", "down"]) == 0
    assert "nothing was running" in capsys.readouterr().out


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize(
    ("variable", "value", "setting"),
    [
        ("SUBSCRIBER_RECEIVER__PORT", "70000", "receiver.port"),
        ("SUBSCRIBER_KAFKA__PUBLISH_TIMEOUT_MS", "0", "kafka.publish_timeout_ms"),
        ("SUBSCRIBER_RECEIVER__MAX_BODY_BYTES", "-1", "receiver.max_body_bytes"),
        ("SUBSCRIBER_CORE__REQUEST_TIMEOUT_S", "0", "core.request_timeout_s"),
        ("SUBSCRIBER_RECEIVER__SPOOL_MAX_BYTES", "0", "receiver.spool_max_bytes"),
        ("SUBSCRIBER_POWERDNS__DNS_PORT", "0", "powerdns.dns_port"),
        ("SUBSCRIBER_ACT__FETCH_WAIT_MS", "-1", "act.fetch_wait_ms"),
        ("SUBSCRIBER_ACT__FETCH_WAIT_MS", "60001", "act.fetch_wait_ms"),
        ("SUBSCRIBER_KAFKA__COMPRESSION", "brotli", "kafka.compression"),
    ],
)
def test_out_of_bounds_settings_are_refused_at_start(
    variable: str,
    value: str,
    setting: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A timeout, size or port out of bounds stops every command with one line naming it."""
    monkeypatch.setenv(variable, value)
    assert main(["serve"]) == 2
    assert f"invalid setting {setting}:" in _one_line(capsys)


def test_a_missing_config_file_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--config (or SUBSCRIBER_CONFIG) naming a missing file is refused, not run on defaults."""
    monkeypatch.setenv("SUBSCRIBER_CONFIG", str(tmp_path / "missing.toml"))
    assert main(["stack", "status"]) == 2
    assert "missing.toml does not exist" in _one_line(capsys)
    (tmp_path / "bad.toml").write_text("[receiver\nport = 1\n")
    monkeypatch.setenv("SUBSCRIBER_CONFIG", str(tmp_path / "bad.toml"))
    assert main(["stack", "status"]) == 2
    assert "bad.toml" in _one_line(capsys)


@pytest.mark.parametrize("command", ["serve", "track", "consume"])
@pytest.mark.parametrize("key", ["", "change-me", "short-key"])
def test_commands_that_log_identities_refuse_a_weak_pseudonym_key(
    command: str, key: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """serve, track and consume will not start with an empty, example or short pseudonym key."""
    monkeypatch.setenv("SUBSCRIBER_LOG__PSEUDONYM_KEY", key)
    assert main([command]) == 1
    assert "log.pseudonym_key" in _one_line(capsys)


def test_the_development_setting_lets_an_empty_key_through(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """log.insecure_pseudonyms accepts an empty key: track then fails on what comes next."""
    monkeypatch.setenv("SUBSCRIBER_LOG__PSEUDONYM_KEY", "")
    monkeypatch.setenv("SUBSCRIBER_LOG__INSECURE_PSEUDONYMS", "true")
    assert main(["track"]) == 1
    assert "nothing to track" in _one_line(capsys)


def test_the_key_can_come_from_a_secret_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A container secret (subscriber_log__pseudonym_key in the secrets dir) supplies the key."""
    monkeypatch.delenv("SUBSCRIBER_LOG__PSEUDONYM_KEY")
    monkeypatch.setenv("SUBSCRIBER_SECRETS_DIR", str(tmp_path))
    assert main(["track"]) == 1
    assert "log.pseudonym_key" in _one_line(capsys)
    (tmp_path / "subscriber_log__pseudonym_key").write_text("0123456789abcdef0123\n")
    assert main(["track"]) == 1
    assert "nothing to track" in _one_line(capsys)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--speed", "abc"], "--speed 'abc'"),
        (["--speed", "-2"], "--speed '-2'"),
        (["--start", "garbage"], "'garbage' is neither"),
        (["--end", "+soon"], "'+soon' is neither"),
    ],
)
def test_bad_replay_arguments_are_one_line(
    args: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """replay's --speed, --start and --end are checked with a message, not a traceback."""
    recording = tmp_path / "capture.jsonl"
    recording.write_bytes(_capture_lines(3))
    assert main(["replay", str(recording), "--url", "http://127.0.0.1:9", *args]) == 1
    assert says in _one_line(capsys)


async def test_a_truncated_recording_is_reported_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A recording cut in the middle of its gzip stream ends replay with one line and exit 1."""
    data = gzip.compress(_capture_lines(2000))
    recording = tmp_path / "capture.jsonl.gz"
    recording.write_bytes(data[: len(data) // 2])
    async with serving() as sink:  # replay connects before it reads: a target must answer
        argv = ["replay", str(recording), "--url", sink.url, "--speed", "max", "--no-progress"]
        assert await asyncio.to_thread(main, argv) == 1
    assert "truncated" in _one_line(capsys)


def test_a_port_out_of_range_is_an_argument_error(capsys: pytest.CaptureFixture[str]) -> None:
    """--port 70000 is refused by the argument parser with one line and exit 2."""
    with pytest.raises(SystemExit) as exit_:
        main(["fakecore", "--port", "70000"])
    assert exit_.value.code == 2
    assert "70000 is not a port" in _one_line(capsys)


def test_an_error_message_never_shows_an_identity(tmp_path: Path) -> None:
    """A malformed instances file quoting an IMSI is reported with the IMSI masked."""
    instances = tmp_path / "instances.yaml"
    instances.write_text("apps:\n  - ues: [imsi-208930000000001\n")
    env = {
        **os.environ,
        "SUBSCRIBER_ACT__INSTANCES_FILE": str(instances),
        "SUBSCRIBER_POLICY__TOPOLOGY_FILE": str(
            Path(__file__).parent.parent / "subscriber/data/topology.example.yaml"
        ),
    }
    # A process of its own: loggers used here would otherwise keep pytest's captured stream.
    done = subprocess.run(
        [sys.executable, "-m", "subscriber", "consume"],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert b"208930000000001" not in done.stderr
    assert b"instances.yaml" in done.stderr


def _capture_lines(count: int) -> bytes:
    line = orjson.dumps(
        {
            "received_at": "2026-07-01T08:00:00+00:00",
            "method": "POST",
            "path": "/callbacks/amf/loc-1",
            "headers": [["content-type", "application/json"]],
            "body": '{"notifyCorrelationId":"loc-1","reportList":[]}',
        }
    )
    return b"".join(line + b"\n" for _ in range(count))
