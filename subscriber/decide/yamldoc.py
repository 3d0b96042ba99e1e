"""Reading the YAML files an SRE writes (topology, policy, instances), and saying what is wrong.

Every problem is one line that names the file, the line in it, the YAML path of the value and
what was expected, for example::

    topology.yaml:41: clusters[2].address: '10.0.0.1.5' is not an IPv4 address
    instances.yaml:3: instances[0].clsuter: unknown key 'clsuter'; expected one of: ue, app, ...
    topology.yaml:1: (top level): expected a mapping (key: value lines), got a list

Lines come from the YAML parser's own marks (a second, node-level parse of the same text), so
they are exact for every value the file holds. Pure: text in, data or messages out.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from subscriber.errors import PolicyUnavailable

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Source:
    """A file's name and the line of each YAML path in it."""

    name: str
    lines: Mapping[Path, int] = field(default_factory=dict)

    def line_of(self, path: Path) -> int | None:
        """The line of ``path``, else of its nearest enclosing value that has one."""
        for end in range(len(path), -1, -1):
            found = self.lines.get(path[:end])
            if found is not None:
                return found
        return None

    def where(self, path: Path) -> str:
        """``file:line`` (or ``file`` when the text had no lines, e.g. an empty file)."""
        line = self.line_of(path)
        return f"{self.name}:{line}" if line is not None else self.name


def yaml_path(loc: Sequence[int | str]) -> str:
    """A pydantic location as a YAML path: ``('clusters', 2, 'zone')`` -> ``clusters[2].zone``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _PLAIN.fullmatch(str(part)):
            out += f"[{str(part)!r}]"  # a key with dots, brackets or odd characters, quoted
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


_PLAIN = re.compile(r"[A-Za-z0-9_-]+")


def _printable(text: str) -> str:
    """``text`` with control characters escaped: one problem stays one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


_STEP = re.compile(r"\[(\d+)\]|\['((?:[^'\\]|\\.)*)'\]|([^.\[\]]+)")


def parse_path(text: str) -> Path:
    """The inverse of :func:`yaml_path` (keys holding dots are read as nested keys)."""
    if text == "(top level)":
        return ()
    return tuple(
        int(m[1]) if m[1] is not None else m[2] if m[2] is not None else m[3]
        for m in _STEP.finditer(text)
    )


def _lines(node: yaml.Node, path: Path, out: dict[Path, int]) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else str(key.value)
            out.setdefault((*path, name), key.start_mark.line + 1)
            _lines(value, (*path, name), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, (*path, i), out)


def read_yaml(text: str | bytes, *, source: str) -> tuple[Any, Source]:
    """Parse YAML text, and note the line of every value.

    Raises:
        PolicyUnavailable: the text is not YAML; the message names the line and column.
    """
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise PolicyUnavailable(f"{where}: not valid YAML: {problem}") from exc
    except (UnicodeDecodeError, ValueError) as exc:  # bytes that are not UTF-8, NUL characters
        raise PolicyUnavailable(f"{source}: not a text file: {' '.join(str(exc).split())}") from exc
    except RecursionError as exc:
        raise PolicyUnavailable(f"{source}: nested too deeply to be a topology") from exc
    lines: dict[Path, int] = {}
    if node is not None:
        _lines(node, (), lines)
    return data, Source(source, lines)


def _kind(value: Any) -> str:
    """How YAML wrote ``value``, in the SRE's words."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _model_at(model: type[BaseModel], loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model class that holds the value at ``loc`` (to list the keys it accepts)."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            found = current.model_fields.get(str(part))
            if found is None:
                return None
            current = found.annotation
            continue
        # A list item or a mapping value: step into the element type.
        current = _element(current)
        if current is None:
            return None
    current = _element(current) if not isinstance(current, type) else current
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _element(annotation: Any) -> Any:
    """The one model inside ``X | None``, ``list[X]`` or ``dict[str, X]``, else the type."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _element(args[0])
    if origin in (typing.Union, types.UnionType):
        models = [a for a in args if a is not type(None)]
        return _element(models[0]) if len(models) == 1 else None
    if origin in (list, tuple, Sequence):
        return args[0] if args else None
    if origin in (dict, Mapping):
        return args[1] if len(args) == 2 else None
    return annotation


def message_of(error: Mapping[str, Any], model: type[BaseModel]) -> str:
    """One pydantic error as what was expected, without pydantic's or our class names."""
    kind, loc, given = error["type"], error["loc"], error.get("input")
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"expected a mapping (key: value lines), got {_kind(given)}"
    if kind == "list_type":
        return f"expected a list ('- item' lines), got {_kind(given)}"
    if kind == "extra_forbidden":
        holder = _model_at(model, loc[:-1])
        known = f"; expected one of: {', '.join(holder.model_fields)}" if holder else ""
        return f"unknown key {str(loc[-1])!r}{known}"
    if kind == "missing":
        return "required, and missing"
    text = str(error["msg"]).removeprefix("Value error, ")
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"{text[0].lower()}{text[1:]}, got {_kind(given)}"
    return text


def validation_problems(exc: ValidationError, model: type[BaseModel]) -> list[tuple[Path, str]]:
    """``(path, message)`` per pydantic error, in the file's words."""
    return [(tuple(err["loc"]), message_of(err, model)) for err in exc.errors(include_url=False)]


def invalid(source: Source, problems: Sequence[tuple[Path, str] | str]) -> PolicyUnavailable:
    """The error for a file with problems: one ``file:line: path: message`` line per problem.

    A problem is ``(path, message)``, or a string ``"path: message"`` as the reference checks
    write them.
    """
    lines = []
    for problem in problems:
        if isinstance(problem, str):
            head, _, message = problem.partition(": ")
            path = parse_path(head)
            if not message:
                path, message = (), problem
        else:
            path, message = problem
        lines.append(_printable(f"{source.where(path)}: {yaml_path(path)}: {message}"))
    return PolicyUnavailable("\n".join(lines))
