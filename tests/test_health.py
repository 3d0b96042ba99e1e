"""``subscriber check`` passes against the real stack and names each dependency that is down."""

from __future__ import annotations

from pathlib import Path

import pytest

from subscriber.app.receiver import serving_receiver
from subscriber.cli import main
from subscriber.health import CHECKS, receiver_url, run_checks
from subscriber.settings import ENV_PREFIX, ReceiverSettings, Settings
from tests.support.ports import free_port
from tests.support.registry import StaticRegistry


def _use_env(settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Point ``main()`` at ``settings`` through SUBSCRIBER_* variables, as a container would."""
    import os

    for key in list(os.environ):
        if key.startswith(ENV_PREFIX):
            monkeypatch.delenv(key)
    env = {
        "KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "TEMPORAL__ADDRESS": settings.temporal.address,
        "POWERDNS__API_URL": settings.powerdns.api_url,
        "POWERDNS__API_KEY": settings.powerdns.api_key,
        "POWERDNS__DNS_PORT": str(settings.powerdns.dns_port),
        "RECEIVER__HOST": settings.receiver.host,
        "RECEIVER__PORT": str(settings.receiver.port),
        "RECEIVER__SPOOL_DIR": str(tmp_path / "spool"),
    }
    for key, value in env.items():
        monkeypatch.setenv(ENV_PREFIX + key, value)


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("0.0.0.0", "http://127.0.0.1:8800/readyz"),
        ("::", "http://[::1]:8800/readyz"),
        ("10.0.0.7", "http://10.0.0.7:8800/readyz"),
        ("receiver", "http://receiver:8800/readyz"),
    ],
)
def test_receiver_url_dials_loopback_for_a_wildcard_bind(host: str, url: str) -> None:
    """A receiver bound to every interface is checked through loopback; others as configured."""
    assert receiver_url(ReceiverSettings(host=host, port=8800)) == url


@pytest.mark.stack
async def test_every_stack_dependency_answers(stack_settings: Settings) -> None:
    """Kafka metadata, Temporal health and the PowerDNS API and listener all answer."""
    results = await run_checks(stack_settings, ["kafka", "temporal", "powerdns"], timeout_s=10)
    assert results == {"kafka": None, "temporal": None, "powerdns": None}


@pytest.mark.stack
async def test_a_running_receiver_is_ready(stack_settings: Settings) -> None:
    """The real receiver, with Kafka reachable, answers /readyz with 200."""
    async with serving_receiver(stack_settings, registry=StaticRegistry()) as served:
        # Configured for every interface, as in a container: the check dials loopback.
        receiver = served.settings.receiver.model_copy(update={"host": "0.0.0.0"})
        settings = served.settings.model_copy(update={"receiver": receiver})
        results = await run_checks(settings, ["receiver"], timeout_s=10)
    assert results == {"receiver": None}


@pytest.mark.stack
async def test_a_wrong_powerdns_key_is_reported(stack_settings: Settings) -> None:
    """A rejected API key fails the PowerDNS check and says so."""
    settings = stack_settings.model_copy(
        update={"powerdns": stack_settings.powerdns.model_copy(update={"api_key": "wrong"})}
    )
    results = await run_checks(settings, ["powerdns"], timeout_s=10)
    assert "401" in (results["powerdns"] or "")


@pytest.mark.stack
def test_cli_exits_0_when_everything_answers(
    stack_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``subscriber check`` with every dependency up exits 0 and prints one ok line for each."""
    _use_env(stack_settings, monkeypatch, tmp_path)
    assert main(["check", "--what", "kafka", "temporal", "--what", "powerdns"]) == 0
    out = capsys.readouterr().out
    for name in ("kafka", "temporal", "powerdns"):
        assert f"{name}: ok" in out


def test_cli_exits_1_with_one_line_per_stopped_dependency(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Against addresses where nothing listens, every check fails with its own stderr line."""
    port = free_port()  # nothing listens there
    settings = Settings.model_validate(
        {
            "kafka": {"bootstrap_servers": f"127.0.0.1:{port}"},
            "temporal": {"address": f"127.0.0.1:{port}"},
            "powerdns": {"api_url": f"http://127.0.0.1:{port}", "dns_port": port},
            "receiver": {"host": "127.0.0.1", "port": port},
        }
    )
    _use_env(settings, monkeypatch, tmp_path)
    assert main(["check", "--timeout", "2"]) == 1
    failures = capsys.readouterr().err.strip().splitlines()
    assert [line.split(":")[0] for line in failures] == list(CHECKS)
    assert all(": FAILED: " in line for line in failures)
