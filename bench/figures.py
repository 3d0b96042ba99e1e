"""Machine-readable figures: each benchmark records its headline numbers here.

When ``BENCH_FIGURES`` names a file (``python -m bench`` sets it), :func:`record` appends one JSON
line per figure to it; otherwise it does nothing, and the benchmark's printed lines are the output.
"""

from __future__ import annotations

import json
import os
import platform
from typing import Literal


def record(
    bench: str,
    figure: str,
    value: float,
    unit: str,
    *,
    goal: float | None = None,
    better: Literal["higher", "lower"] = "higher",
    size: float | None = None,
) -> None:
    """Append one figure.

    Args:
        bench: which benchmark (decide, poll, e2e, ...).
        figure: what was measured.
        value: the number.
        unit: its unit (decisions/s, ms, B, s, ...).
        goal: the issue's goal for it, if any.
        better: whether higher or lower values meet the goal.
        size: the load size, for figures measured at several sizes (growth curves).
    """
    path = os.environ.get("BENCH_FIGURES")
    if not path:
        return
    line = {
        "bench": bench,
        "figure": figure,
        "value": value,
        "unit": unit,
        "goal": goal,
        "better": better,
        "size": size,
    }
    with open(path, "a") as out:
        out.write(json.dumps(line) + "\n")


def machine() -> str:
    """The CPU model, core count and Python version: what every figure was measured on."""
    model = "unknown CPU"
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    return f"{model}, nproc {os.cpu_count()}, Python {platform.python_version()}"
