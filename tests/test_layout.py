"""The package's layout rules: a pure decide side, and fakes kept apart from the product."""

from __future__ import annotations

import ast
import re
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


# A section sign cites a public document by name ("TS 29.518 §6.2", "RFC 9113 §8.1"), possibly
# across a line break; a bare "§1.3" points at notes outside the repository a reader cannot open.
_BARE_SECTION = re.compile(r"§\s*\d")
_NAMED_BEFORE = re.compile(
    r"\b(?:TS|TR|RFC)\s?[\d.]+[\s,'\"]*(?:clause\s*)?(?:§\s*[\d.]+(?:,|\s|and)*)*$"
)


def _bare_section_references(text: str) -> list[str]:
    found = []
    for match in _BARE_SECTION.finditer(text):
        before = " ".join(text[max(0, match.start() - 60) : match.start()].split())
        if not _NAMED_BEFORE.search(before):
            start = text.rfind("\n", 0, match.start()) + 1
            end = text.find("\n", match.start())
            found.append(text[start : end if end != -1 else len(text)].strip())
    return found


def test_the_product_cites_no_bare_section_of_internal_notes() -> None:
    """Every § in the package, benchmarks and docs follows the public document it cites."""
    root = PACKAGE.parent
    offenders = [
        f"{path.relative_to(root)}: {line}"
        for folder in ("subscriber", "bench", "docs")
        for path in sorted((root / folder).rglob("*"))
        if path.suffix in {".py", ".md", ".yaml", ".toml"}
        for line in _bare_section_references(path.read_text(encoding="utf-8"))
    ]
    assert offenders == [], "\n".join(offenders)


def test_the_section_check_tells_a_named_source_from_a_bare_one() -> None:
    """The check refuses "free5gc.md §1.1" and "(§4)" and accepts "TS 29.518 §6.2.2"."""
    assert _bare_section_references("# no Location header (free5gc.md §1.1)")
    assert _bare_section_references('"""Token scope (§4)."""')
    assert not _bare_section_references("# HTTP/2 per TS 29.500 §5 and RFC 9113 §8.1")
    assert not _bare_section_references("# (TS 29.571 §5.3.2, §5.3.3)")
    assert not _bare_section_references('"""A model (TS 29.522\n    §5.4.3.3.5), renamed."""')


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
