"""Waiting for something to become true, without sleeping longer than needed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(predicate: Callable[[], object], timeout_s: float = 30) -> None:
    """Wait until ``predicate()`` is truthy (awaiting it when it returns an awaitable)."""
    async with asyncio.timeout(timeout_s):
        while True:
            value = predicate()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return
            await asyncio.sleep(0.05)
