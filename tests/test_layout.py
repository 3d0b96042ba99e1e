"""The package's layout rules: a pure decide side."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import subscriber

PACKAGE = Path(subscriber.__file__).parent
IO_LIBRARIES = ("temporalio", "aiokafka", "aiohttp")


def _pure_modules() -> list[str]:
    decide = sorted(
        f"subscriber.decide.{p.stem}"
        for p in (PACKAGE / "decide").glob("*.py")
        if p.stem != "__init__"
    )
    return ["subscriber.relocation", *decide]


@pytest.mark.parametrize("module", _pure_modules())
def test_decide_and_the_relocation_contract_load_no_io_library(module: str) -> None:
    """Importing a decide module or the payload module loads no Temporal, Kafka or HTTP client."""
    probe = (
        f"import sys, {module}\n"
        f"print(','.join(sorted(m for m in {IO_LIBRARIES!r} if m in sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "", f"{module} loads {done.stdout.strip()}"
