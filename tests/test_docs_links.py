"""The docs' relative links and anchors resolve, and the event examples are real events."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from subscriber.events import decode_event

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading ids: lowercase, punctuation dropped, spaces to dashes."""
    anchors = set()
    for line in FENCE.sub("", markdown).splitlines():
        if line.startswith("#"):
            text = line.lstrip("#").strip().lower()
            text = re.sub(r"[^\w\- ]", "", text)
            anchors.add(text.replace(" ", "-"))
    return anchors


def _links(doc: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", doc.read_text(encoding="utf-8")))


@pytest.mark.parametrize("doc", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_relative_links_and_anchors_resolve(doc: Path) -> None:
    """Every relative link in a doc names an existing file and, if given, an existing heading."""
    broken = []
    for link in _links(doc):
        if re.match(r"^[a-z]+:", link):
            continue
        target, _, anchor = link.partition("#")
        path = (doc.parent / target).resolve() if target else doc
        missing_anchor = (
            path.exists()
            and bool(anchor)
            and path.suffix == ".md"
            and anchor not in _anchors(path.read_text("utf-8"))
        )
        if not path.exists() or missing_anchor:
            broken.append(link)
    assert broken == [], f"{doc.name}: broken links {broken}"


def test_event_examples_decode_and_match_the_schema() -> None:
    """Each JSON example in docs/events.md decodes as a LocationEvent and validates."""
    schema = json.loads((ROOT / "schemas" / "location-event.v1.json").read_text("utf-8"))
    text = (DOCS / "events.md").read_text(encoding="utf-8")
    examples = re.findall(r"^```json\n(.*?)^```", text, re.S | re.M)
    assert len(examples) >= 4
    for example in examples:
        event = decode_event(example.encode())
        jsonschema.validate(json.loads(example), schema)
        assert json.loads(event.model_dump_json(exclude_none=True)) == json.loads(example)
