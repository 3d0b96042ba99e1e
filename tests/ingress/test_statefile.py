"""Tests for the atomic JSON state files."""

from __future__ import annotations

from pathlib import Path

from subscriber.ingress.statefile import read_json, write_atomic


def test_write_replaces_whole_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    """A write creates missing directories, replaces the content, and leaves no temp file."""
    path = tmp_path / "a" / "state.json"
    write_atomic(path, b'{"v":1}')
    write_atomic(path, b'{"v":2}')
    assert read_json(path, None) == {"v": 2}
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]


def test_read_gives_the_default_for_missing_or_corrupt_files(tmp_path: Path) -> None:
    """A missing or unreadable file yields the default instead of an error."""
    assert read_json(tmp_path / "none.json", {"empty": True}) == {"empty": True}
    (tmp_path / "bad.json").write_bytes(b"{not json")
    assert read_json(tmp_path / "bad.json", []) == []
