"""One settings object: defaults, environment with a prefix, and a TOML file."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from subscriber.settings import Settings, load_settings


def test_environment_overrides_nested_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    """SUBSCRIBER_GROUP__FIELD variables set nested fields."""
    monkeypatch.setenv("SUBSCRIBER_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1234")
    monkeypatch.setenv("SUBSCRIBER_RECEIVER__MAX_BODY_BYTES", "2048")
    settings = Settings()
    assert settings.kafka.bootstrap_servers == "127.0.0.1:1234"
    assert settings.receiver.max_body_bytes == 2048


def test_toml_file_is_read_and_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A TOML config file sets values; the environment still overrides it."""
    config = tmp_path / "subscriber.toml"
    config.write_text('[kafka]\nevents_topic = "from-file"\n[temporal]\nnamespace = "file-ns"\n')
    monkeypatch.delenv("SUBSCRIBER_CONFIG", raising=False)
    monkeypatch.setenv("SUBSCRIBER_TEMPORAL__NAMESPACE", "env-ns")
    settings = load_settings(config)
    assert settings.kafka.events_topic == "from-file"
    assert settings.temporal.namespace == "env-ns"


def test_unknown_setting_is_an_error() -> None:
    """A misspelt setting fails loudly instead of being ignored."""
    with pytest.raises(ValidationError):
        Settings(kafak={})  # type: ignore[call-arg]


def test_to_env_rebuilds_the_same_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A child process given to_env(settings) builds equal settings."""
    from subscriber.settings import to_env

    original = Settings()
    changed = original.model_copy(
        update={
            "kafka": original.kafka.model_copy(update={"events_topic": "t", "linger_ms": 7}),
            "act": original.act.model_copy(update={"instances_file": tmp_path / "i.yaml"}),
            "shutdown_grace_s": 3.5,
        }
    )
    for key, value in to_env(changed).items():
        monkeypatch.setenv(key, value)
    assert Settings() == changed
