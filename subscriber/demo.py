"""``subscriber demo``: the edge-relocation scenario on the local stack."""

from __future__ import annotations

import argparse
import time

from subscriber.settings import Settings
from subscriber.stack import status, up


async def run(settings: Settings, _args: argparse.Namespace) -> int:
    """Bring the stack up and show that every service answers."""
    started = time.monotonic()
    _, how = await up(settings)
    for name, what in how.items():
        print(f"[{time.monotonic() - started:6.2f}s] {name}: {what}")
    report = await status(settings)
    for name, word in report.items():
        print(f"[{time.monotonic() - started:6.2f}s] {name}: {word}")
    return 0 if all(word == "healthy" for word in report.values()) else 1
