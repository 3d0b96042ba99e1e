"""Documentation generated from the code, so it cannot drift: ``subscriber docs``.

Each generated file has a renderer here, registered in :data:`GENERATED`. ``subscriber docs``
writes them into ``docs/``; ``subscriber docs --check`` (and ``tests/test_docsgen.py``) fails when
a checked-in file differs from what the current code renders.
"""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from subscriber.options import DocsOptions
from subscriber.settings import (
    CONFIG_ENV,
    DEFAULT_SECRETS_DIR,
    ENV_PREFIX,
    SECRETS_DIR_ENV,
    Settings,
    default_cache_dir,
)

NESTED_DELIMITER = "__"
CACHE_DIR_TEXT = "~/.cache/subscriber"


def _cache_dir_prefix() -> str:
    return str(default_cache_dir())


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _optional_inner(annotation: Any) -> Any | None:
    """``X`` for ``X | None``, else ``None``."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(get_args(annotation)) == 2:
            return args[0]
    return None


def type_text(annotation: Any) -> str:
    """How a field's type reads in the reference: ``int``, ``"a" | "b"``, ``path (optional)``."""
    inner = _optional_inner(annotation)
    if inner is not None:
        return f"{type_text(inner)} (optional)"
    origin = get_origin(annotation)
    if origin is Literal:
        return " | ".join(json.dumps(a) for a in get_args(annotation))
    if origin in (list, tuple, set, frozenset):
        (item, *_) = get_args(annotation) or (Any,)
        return f"list of {type_text(item)} (JSON in env)"
    if origin is dict:
        return "mapping (JSON in env)"
    if annotation is Path:
        return "path"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def default_value(field: FieldInfo) -> Any:
    """The field's default, from its factory if it has one; ``PydanticUndefined`` if required."""
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]
    return field.default


def _path_text(value: Path) -> str:
    text = str(value)
    prefix = _cache_dir_prefix()
    if text == prefix or text.startswith(prefix + "/"):
        # The real value depends on $XDG_CACHE_HOME and $HOME; render it the same everywhere.
        return CACHE_DIR_TEXT + text[len(prefix) :]
    return text


def default_text(field: FieldInfo) -> str:
    """The default as an operator would type it."""
    value = default_value(field)
    if value is PydanticUndefined:
        return "required"
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path):
        return _path_text(value)
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, list | dict | tuple):
        return json.dumps(value)
    return str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    return f"`{text}`" if text else ""


def env_name(path: tuple[str, ...]) -> str:
    """The environment variable for a dotted setting: ``('kafka', 'linger_ms')`` ->
    ``SUBSCRIBER_KAFKA__LINGER_MS``."""
    return ENV_PREFIX + NESTED_DELIMITER.join(part.upper() for part in path)


def iter_fields(
    model: type[BaseModel], prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], FieldInfo]]:
    """Every leaf setting of ``model`` with its dotted path, depth first, in declaration order."""
    for name, field in model.model_fields.items():
        if _is_model(field.annotation):
            yield from iter_fields(field.annotation, (*prefix, name))  # type: ignore[arg-type]
        else:
            yield (*prefix, name), field


def _groups(model: type[BaseModel]) -> list[tuple[str, type[BaseModel] | None]]:
    """Top-level groups in order; ``None`` stands for the ungrouped top-level fields."""
    groups: list[tuple[str, type[BaseModel] | None]] = []
    if any(not _is_model(f.annotation) for f in model.model_fields.values()):
        groups.append(("general", None))
    for name, field in model.model_fields.items():
        if _is_model(field.annotation):
            groups.append((name, field.annotation))  # type: ignore[arg-type]
    return groups


def _summary(model: type[BaseModel]) -> str:
    doc = (model.__doc__ or "").strip()
    return doc.split("\n\n")[0].replace("\n", " ")


def _table(rows: list[tuple[tuple[str, ...], FieldInfo]]) -> list[str]:
    lines = [
        "| Setting | Environment variable | Type | Default | Description |",
        "|---|---|---|---|---|",
    ]
    for path, field in rows:
        lines.append(
            "| "
            + " | ".join(
                [
                    _code(".".join(path)),
                    _code(env_name(path)),
                    _cell(type_text(field.annotation)),
                    _cell(_code(default_text(field))),
                    _cell(field.description or ""),
                ]
            )
            + " |"
        )
    return lines


def _toml_value(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Path):
        return json.dumps(str(value))
    if isinstance(value, list | tuple) and all(
        isinstance(v, str | int | float) and not isinstance(v, bool) for v in value
    ):
        return json.dumps(list(value))
    return None


def _toml_line(name: str, field: FieldInfo) -> str:
    type_ = type_text(field.annotation)
    if field.default_factory is not None:
        return f'# {name} = "{default_text(field)}"  # default depends on the machine ({type_})'
    value = default_value(field)
    if value is None:
        return f"# {name} =   # unset by default ({type_})"
    rendered = _toml_value(value)
    if rendered is None:
        return f"# {name} = ...   # {type_}"
    return f"{name} = {rendered}"


def toml_example(model: type[BaseModel] = Settings) -> str:
    """A TOML file that spells out every default (commented where there is none to spell)."""
    lines: list[str] = []
    for name, field in model.model_fields.items():
        if not _is_model(field.annotation):
            lines.append(_toml_line(name, field))

    def table(prefix: tuple[str, ...], sub: type[BaseModel]) -> None:
        lines.extend(["", f"[{'.'.join(prefix)}]"])
        nested: list[tuple[str, type[BaseModel]]] = []
        for name, field in sub.model_fields.items():
            if _is_model(field.annotation):
                nested.append((name, field.annotation))  # type: ignore[arg-type]
            else:
                lines.append(_toml_line(name, field))
        for name, inner in nested:
            table((*prefix, name), inner)

    for name, field in model.model_fields.items():
        if _is_model(field.annotation):
            table((name,), field.annotation)  # type: ignore[arg-type]
    return "\n".join(lines).lstrip("\n") + "\n"


def render_configuration(model: type[BaseModel] = Settings) -> str:
    """docs/configuration.md: every setting with its variable, type, default and meaning."""
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated by `subscriber docs` from subscriber/settings.py. Do not edit by hand:",
        "     change the settings and run `subscriber docs`; a test fails when this is stale. -->",
        "",
        "Every process (`serve`, `consume`, `worker`, ...) reads the same settings. Each value",
        "comes from, highest priority first:",
        "",
        f"1. an environment variable: `{ENV_PREFIX}` then the group and the field, upper case,",
        f"   joined by `{NESTED_DELIMITER}` (for example "
        f"`{env_name(('kafka', 'bootstrap_servers'))}=kafka:9092`);",
        f"2. a file named like that variable (any case) in `{SECRETS_DIR_ENV}`, by default",
        f"   `{DEFAULT_SECRETS_DIR}` where Docker mounts secrets: for keys, which a variable",
        "   would expose ([deployment.md](deployment.md#keys-and-configuration));",
        f"3. a TOML file named by `--config FILE` or `{CONFIG_ENV}=FILE` "
        "(see the [example](#toml-example));",
        "4. the default below.",
        "",
        "Booleans accept `true`/`false` (or `1`/`0`); lists and mappings are JSON in environment",
        f"variables. Paths under `{CACHE_DIR_TEXT}` follow `$XDG_CACHE_HOME` when it is set.",
        "An unknown top-level key in the TOML file is an error, but an unknown key inside a group",
        "and an unknown `SUBSCRIBER_*` variable are silently ignored: check spellings here.",
        "",
    ]
    groups = _groups(model)
    out += ["Groups: " + ", ".join(f"[`{name}`](#{name})" for name, _ in groups) + ".", ""]
    for name, group in groups:
        out.append(f"## {name}")
        out.append("")
        if group is None:
            out += ["Settings outside any group.", ""]
            rows: list[tuple[tuple[str, ...], FieldInfo]] = [
                ((n,), f) for n, f in model.model_fields.items() if not _is_model(f.annotation)
            ]
        else:
            out += [_summary(group), ""]
            rows = list(iter_fields(group, (name,)))
        out += _table(rows)
        out.append("")
    out += ["## TOML example", "", "```toml", toml_example(model).rstrip("\n"), "```", ""]
    return "\n".join(out)


def render_openapi() -> str:
    """``docs/openapi.yaml``: the receiver's OpenAPI document (:mod:`subscriber.openapi`)."""
    from subscriber.openapi import render_openapi as render

    return render()


GENERATED: dict[str, Callable[[], str]] = {
    "configuration.md": render_configuration,
    "openapi.yaml": render_openapi,
}
"""Generated files, by name under ``docs/``, and the function that renders each."""


def stale_files(docs_dir: Path) -> list[str]:
    """Names of generated files missing from ``docs_dir`` or different from their rendering."""
    stale = []
    for name, render in GENERATED.items():
        target = docs_dir / name
        if not target.is_file() or target.read_text(encoding="utf-8") != render():
            stale.append(name)
    return stale


def write_all(docs_dir: Path) -> list[str]:
    """Write every generated file that changed; return their names."""
    changed = stale_files(docs_dir)
    docs_dir.mkdir(parents=True, exist_ok=True)
    for name in changed:
        (docs_dir / name).write_text(GENERATED[name](), encoding="utf-8")
    return changed


def run(_settings: Settings, options: DocsOptions) -> int:
    """CLI handler for ``subscriber docs [--dir DIR] [--check]``."""
    docs_dir: Path = options.dir
    if options.check:
        stale = stale_files(docs_dir)
        for name in stale:
            print(f"{docs_dir / name} is out of date; run: subscriber docs", file=sys.stderr)
        return 1 if stale else 0
    changed = write_all(docs_dir)
    for name in changed:
        print(f"wrote {docs_dir / name}")
    if not changed:
        print(f"{docs_dir}: generated docs are up to date")
    return 0
