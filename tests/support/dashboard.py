"""The Grafana dashboard of compose/ as the tests read it: its panels' PromQL expressions and
the metric names each selects."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

JSON = (
    Path(__file__).resolve().parents[2] / "compose" / "grafana" / "dashboards" / "subscriber.json"
)
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def dashboard() -> dict[str, Any]:
    """The committed dashboard JSON."""
    doc: dict[str, Any] = json.loads(JSON.read_text(encoding="utf-8"))
    return doc


def expressions(doc: dict[str, Any]) -> list[str]:
    """Every PromQL expression of every panel."""
    return [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (labels, functions, keywords left out)."""
    text = expr.replace("$__rate_interval", "5m")
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\boffset\s+\w+", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        rest = text[match.end() :].lstrip()
        if not rest.startswith("(") and match[0].lower() not in _KEYWORDS:
            names.add(match[0])
    return names
