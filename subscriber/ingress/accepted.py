"""The log record of accepted callbacks: one line per subscription and interval, not per callback.

Every refused callback (any answer but 204) keeps a line of its own. An accepted one is already
recorded, durably and in full, as its events on the events topic (ingest time, source NF,
correlation id, the core's trace context in the headers); a line each only repeated that, at
about 12 µs of the receiver's CPU per callback, a seventh of its cost (docs/performance.md). So
accepted callbacks are counted per kind and subscription and logged once per interval
(``callbacks_accepted``: callbacks, events, mean and max duration), and on shutdown. With
``log.level=debug`` each one also gets its own ``callback`` line, as before.
"""

from __future__ import annotations

import asyncio
import time

import structlog

INTERVAL_S = 10.0
"""How often the counts are logged."""


class AcceptedLog:
    """Accepted callbacks counted per (kind, subscription name) until the next :meth:`flush`."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str | None], list[float]] = {}
        self._since = time.monotonic()

    def add(self, kind: str, name: str | None, events: int, duration_s: float) -> None:
        """Count one accepted callback."""
        entry = self._counts.get((kind, name))
        if entry is None:
            self._counts[(kind, name)] = [1, events, duration_s, duration_s]
            return
        entry[0] += 1
        entry[1] += events
        entry[2] += duration_s
        if duration_s > entry[3]:
            entry[3] = duration_s

    def flush(self) -> None:
        """Log one ``callbacks_accepted`` line per kind and subscription counted, and start over."""
        counts, self._counts = self._counts, {}
        now = time.monotonic()
        interval_s, self._since = now - self._since, now
        # A logger per flush (a few a minute), not one cached at import: it follows the logging
        # configuration in force now.
        log = structlog.get_logger()
        for (kind, name), (callbacks, events, total_s, max_s) in counts.items():
            log.info(
                "callbacks_accepted",
                kind=kind,
                subscription=name,
                callbacks=int(callbacks),
                events=int(events),
                duration_ms_mean=round(total_s / callbacks * 1000, 2),
                duration_ms_max=round(max_s * 1000, 2),
                interval_s=round(interval_s, 1),
            )

    async def flush_forever(self, interval_s: float = INTERVAL_S) -> None:
        """Flush every ``interval_s`` until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            self.flush()
