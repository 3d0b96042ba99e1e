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


def _secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **files: str) -> Path:
    directory = tmp_path / "secrets"
    directory.mkdir()
    for name, value in files.items():
        (directory / name).write_text(value)
    monkeypatch.setenv("SUBSCRIBER_SECRETS_DIR", str(directory))
    return directory


def test_secret_files_set_nested_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file named like the variable (any case) in the secrets directory sets that field."""
    _secrets(
        tmp_path,
        monkeypatch,
        subscriber_log__pseudonym_key="k3y-from-a-file\n",
        SUBSCRIBER_POWERDNS__API_KEY="pdns-key",
    )
    monkeypatch.delenv("SUBSCRIBER_LOG__PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("SUBSCRIBER_POWERDNS__API_KEY", raising=False)
    settings = Settings()
    assert settings.log.pseudonym_key == "k3y-from-a-file"
    assert settings.powerdns.api_key == "pdns-key"


def test_a_variable_wins_over_a_secret_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment overrides a secret file, as it overrides the TOML file."""
    _secrets(tmp_path, monkeypatch, subscriber_log__pseudonym_key="from-file")
    monkeypatch.setenv("SUBSCRIBER_LOG__PSEUDONYM_KEY", "from-env")
    assert Settings().log.pseudonym_key == "from-env"


def test_no_secrets_directory_is_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside a container there is no /run/secrets: the defaults stand, with no warning."""
    monkeypatch.setenv("SUBSCRIBER_SECRETS_DIR", str(tmp_path / "absent"))
    assert Settings().powerdns.api_key == "subscriber-local"


def test_a_secret_that_is_not_a_valid_value_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret file is validated like a variable: a port that is not a number is an error."""
    _secrets(tmp_path, monkeypatch, subscriber_powerdns__dns_port="fifty-three")
    monkeypatch.delenv("SUBSCRIBER_POWERDNS__DNS_PORT", raising=False)
    with pytest.raises(ValidationError):
        Settings()


def test_a_secret_linking_outside_its_directory_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A symlink that leads out of the secrets directory is not followed."""
    outside = tmp_path / "elsewhere"
    outside.write_text("stolen")
    directory = _secrets(tmp_path, monkeypatch)
    (directory / "subscriber_log__pseudonym_key").symlink_to(outside)
    monkeypatch.delenv("SUBSCRIBER_LOG__PSEUDONYM_KEY", raising=False)
    assert Settings().log.pseudonym_key == ""
