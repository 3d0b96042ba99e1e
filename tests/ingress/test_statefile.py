"""Tests for the atomic JSON state files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from subscriber.ingress.statefile import load_or_set_aside, write_atomic


def _ints(doc: Any) -> list[int]:
    return [int(x) for x in doc["v"]]


def test_write_replaces_whole_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    """A write creates missing directories, replaces the content, and leaves no temp file."""
    path = tmp_path / "a" / "state.json"
    write_atomic(path, b'{"v":[1]}')
    write_atomic(path, b'{"v":[2]}')
    assert load_or_set_aside(path, _ints, []) == [2]
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]


def test_a_missing_file_gives_the_default(tmp_path: Path) -> None:
    """A missing file yields the default and nothing is created."""
    assert load_or_set_aside(tmp_path / "none.json", _ints, [7]) == [7]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "content",
    [b"{not json", b'{"v": {"a": 1}}', b'{"w": []}', b"[1, 2]", b'{"v": ["x"]}', b"\xff\xfe"],
)
def test_an_unusable_file_is_set_aside_not_obeyed(tmp_path: Path, content: bytes) -> None:
    """A file that is not JSON or of the wrong shape is moved aside, kept, and the default used."""
    path = tmp_path / "state.json"
    path.write_bytes(content)
    assert load_or_set_aside(path, _ints, []) == []
    assert not path.exists()
    (aside,) = tmp_path.glob("state.json.invalid-*")
    assert aside.read_bytes() == content
    write_atomic(path, orjson.dumps({"v": [3]}))
    assert load_or_set_aside(path, _ints, []) == [3]
