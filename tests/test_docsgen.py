"""The generated docs are current, complete, and the same on every machine."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

import pytest

from subscriber.cli import main
from subscriber.docsgen import (
    GENERATED,
    env_name,
    iter_fields,
    render_configuration,
    toml_example,
    type_text,
)
from subscriber.settings import ENV_PREFIX, Settings

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _clear_settings_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(ENV_PREFIX):
            monkeypatch.delenv(key)


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_checked_in_docs_match_the_code(name: str) -> None:
    """Each generated file in docs/ equals what the current code renders."""
    checked_in = (DOCS / name).read_text(encoding="utf-8") if (DOCS / name).is_file() else ""
    assert checked_in == GENERATED[name](), f"docs/{name} is out of date; run: subscriber docs"


def test_every_setting_has_a_row_with_its_variable() -> None:
    """Each leaf setting appears with its dotted name and its SUBSCRIBER_* variable."""
    text = render_configuration()
    for path, _field in iter_fields(Settings):
        assert f"| `{'.'.join(path)}` | `{env_name(path)}` |" in text


def test_env_names_follow_the_settings_convention() -> None:
    """Prefix SUBSCRIBER_, groups joined by a double underscore, upper case."""
    assert env_name(("kafka", "bootstrap_servers")) == "SUBSCRIBER_KAFKA__BOOTSTRAP_SERVERS"
    assert env_name(("shutdown_grace_s",)) == "SUBSCRIBER_SHUTDOWN_GRACE_S"


@pytest.mark.parametrize(
    ("annotation", "text"),
    [
        (int, "int"),
        (Path, "path"),
        (str | None, "str (optional)"),
        (Literal["a", "b"], '"a" | "b"'),
        (list[str], "list of str (JSON in env)"),
        (dict[str, Any], "mapping (JSON in env)"),
    ],
)
def test_type_text(annotation: Any, text: str) -> None:
    """Types read the way an operator writes the value."""
    assert type_text(annotation) == text


def test_toml_example_parses_to_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """The TOML example is valid and, loaded as settings, changes nothing."""
    _clear_settings_env(monkeypatch)
    data = tomllib.loads(toml_example())
    assert Settings(**data).model_dump() == Settings().model_dump()


def test_rendering_does_not_depend_on_the_machine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Cache-directory defaults render as ~/.cache/subscriber whatever XDG_CACHE_HOME is."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "one"))
    first = render_configuration()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "two"))
    assert render_configuration() == first
    assert str(tmp_path) not in first


def test_docs_command_writes_and_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``subscriber docs`` writes the files; ``--check`` passes, then fails once one is edited."""
    _clear_settings_env(monkeypatch)
    assert main(["docs", "--dir", str(tmp_path)]) == 0
    assert main(["docs", "--dir", str(tmp_path), "--check"]) == 0
    (tmp_path / "configuration.md").write_text("edited by hand\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["docs", "--dir", str(tmp_path), "--check"]) == 1
    assert "run: subscriber docs" in capsys.readouterr().err
