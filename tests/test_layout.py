"""The package's layout rules: a pure decide side, and fakes kept apart from the product."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import subscriber

PACKAGE = Path(subscriber.__file__).parent
IO_LIBRARIES = ("temporalio", "aiokafka", "aiohttp")
# The composition root (subscriber/app) picks the local orchestrator by setting; the demo runs
# on the fakes.
MAY_IMPORT_FAKES = {"fakes", "app", "demo.py"}


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


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_no_product_module_imports_a_fake() -> None:
    """Only the fakes themselves, the composition root and the demo import subscriber.fakes."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in MAY_IMPORT_FAKES:
            continue
        if any(name.startswith("subscriber.fakes") for name in _imports(path)):
            offenders.append(str(relative))
    assert offenders == []


def test_no_tracked_text_file_is_encoded_twice() -> None:
    """No tracked file holds UTF-8 decoded as Latin-1 and encoded again ("â‰¥" for "≥")."""
    root = PACKAGE.parent
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True, timeout=60
    ).stdout.split(b"\0")
    # A lead byte of a multi-byte sequence (U+00C2..U+00F4) re-encoded, then a continuation byte
    # (U+0080..U+00BF) re-encoded: what a second encoding leaves behind.
    twice = [
        name.decode()
        for name in listed
        if name
        and (root / name.decode()).is_file()
        and any(
            lead + b"\xc2" in (root / name.decode()).read_bytes()
            for lead in (b"\xc3\xa2", b"\xc3\x83")
        )
    ]
    assert twice == [], f"encoded twice: {twice}"
